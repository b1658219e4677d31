import hashlib

import pytest


@pytest.fixture
def sites_root(settings, tmp_path):
    settings.COLOUR_SITES_ROOT = tmp_path / "sites"
    settings.MAM_DROP_FOLDER = tmp_path / "mam"
    settings.MAM_TARGET = "folder"
    return settings.COLOUR_SITES_ROOT


@pytest.fixture
def colour_people(make_user):
    return {
        role: make_user(role, username=f"c_{role}")
        for role in ("colorist", "engineer", "readonly", "admin", "artist")
    }


@pytest.fixture
def make_site(sites_root, colour_people):
    from colour_routing import services

    def make(code):
        return services.site_create(by=colour_people["admin"], code=code, name=code.title())

    return make


@pytest.fixture
def daemon_client():
    """An API client that calls as a site daemon: `daemon_client(key)`."""
    from rest_framework.test import APIClient

    def make(key):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=key)
        return client

    return make


def media_bytes(name="clip.mov", size=200_000):
    data = (name.encode() + b"\x00frame") * (size // (len(name) + 6) + 1)
    return data[:size], hashlib.sha256(data[:size]).hexdigest()
