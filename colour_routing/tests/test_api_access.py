"""Who may call what in /api/colour/: a site daemon's key only registers, uploads and
heartbeats for its own site; read-only people read everything and change nothing; the OpenAPI
schema documents every colour-routing endpoint."""

import pytest
from django.urls import reverse

from colour_routing.models import MediaFile
from pipeline_project.accounts.models import User

from .conftest import media_bytes

pytestmark = pytest.mark.django_db

READS = [
    ("api:colour-files", []),
    ("api:colour-file", ["file"]),
    ("api:colour-file-audit", ["file"]),
    ("api:colour-stats", []),
    ("api:colour-sites", []),
    ("api:colour-users", []),
    ("api:colour-audit", []),
    ("api:colour-transfers", []),
]


@pytest.fixture
def tustin(make_site):
    """Tustin and its key, with one file its daemon reported."""
    site, key = make_site("tustin")
    data, sha = media_bytes("A001/clip.mov")
    media = MediaFile.objects.create(
        site=site, path="A001/clip.mov", filename="clip.mov", size=len(data), sha256=sha
    )
    return site, key, media


def url(name, args, media):
    return reverse(name, args=[media.pk if a == "file" else a for a in args])


@pytest.mark.parametrize(("name", "args"), READS, ids=[n for n, _ in READS])
def test_a_site_key_reads_nothing(tustin, daemon_client, name, args):
    _, key, media = tustin

    response = daemon_client(key).get(url(name, args, media))

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "Site daemon keys may only register and upload files and send heartbeats."
    )
    assert "storage_root" not in response.content.decode()


@pytest.mark.parametrize(("name", "args"), READS, ids=[n for n, _ in READS])
def test_readonly_reads_everything(tustin, colour_people, api_client, name, args):
    api_client.force_authenticate(colour_people["readonly"])

    response = api_client.get(url(name, args, tustin[2]))

    assert response.status_code == 200, response.json()


def test_readonly_sees_the_colour_people_and_the_sites_with_their_storage(
    tustin, colour_people, api_client
):
    api_client.force_authenticate(colour_people["readonly"])

    people = api_client.get(reverse("api:colour-users")).json()
    sites = api_client.get(reverse("api:colour-sites")).json()

    assert [p["username"] for p in people] == ["c_admin", "c_colorist", "c_engineer", "c_readonly"]
    assert [s["storage_root"] for s in sites] == ["tustin"]


def test_a_site_key_may_not_change_anything_but_its_own_reports(tustin, daemon_client):
    _, key, media = tustin
    client = daemon_client(key)
    posts = [
        (reverse("api:colour-sites"), {"code": "evil", "name": "Evil"}),
        (reverse("api:colour-rotate-key", args=["tustin"]), {}),
        (reverse("api:colour-users"), {"username": "x", "password": "p" * 12, "role": "admin"}),
        (reverse("api:colour-file-validate", args=[media.pk]), {}),
        (reverse("api:colour-file-reject", args=[media.pk]), {"reason": "no"}),
    ]
    for path, body in posts:
        assert client.post(path, body, format="json").status_code == 403, path
    assert not User.objects.filter(username="x").exists()
    assert MediaFile.objects.get().state == "detected"
    assert (
        client.post(reverse("api:colour-heartbeat", args=["tustin"]), {}, format="json").status_code
        == 200
    )


def test_readonly_creates_no_users_and_admins_do(colour_people, api_client):
    body = {"username": "grader3", "password": "long-enough-pw", "role": "colorist"}
    api_client.force_authenticate(colour_people["readonly"])
    assert api_client.post(reverse("api:colour-users"), body, format="json").status_code == 403
    api_client.force_authenticate(colour_people["engineer"])
    refused = api_client.post(reverse("api:colour-users"), body, format="json")
    assert refused.status_code == 403 and refused.json()["detail"] == "Only admins create users."

    api_client.force_authenticate(colour_people["admin"])
    created = api_client.post(reverse("api:colour-users"), body, format="json")

    assert created.status_code == 201
    assert User.objects.get(username="grader3").has_role("colorist")
    again = api_client.post(reverse("api:colour-users"), body, format="json")
    assert again.status_code == 400 and again.json()["detail"] == "That username is taken."


def test_the_openapi_schema_documents_the_colour_api(client):
    response = client.get(reverse("api:schema"), {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    paths = {p for p in schema["paths"] if p.startswith("/api/colour/")}
    assert paths >= {
        "/api/colour/files/",
        "/api/colour/files/{id}/",
        "/api/colour/files/{id}/upload/",
        "/api/colour/files/{id}/audit/",
        "/api/colour/files/{id}/validate/",
        "/api/colour/files/{id}/queue/",
        "/api/colour/files/{id}/start-transfer/",
        "/api/colour/files/{id}/complete-transfer/",
        "/api/colour/files/{id}/assign/",
        "/api/colour/files/{id}/start/",
        "/api/colour/files/{id}/deliver/",
        "/api/colour/files/{id}/archive/",
        "/api/colour/files/{id}/reject/",
        "/api/colour/stats/",
        "/api/colour/sites/",
        "/api/colour/sites/{code}/heartbeat/",
        "/api/colour/sites/{code}/rotate-key/",
        "/api/colour/users/",
        "/api/colour/audit/",
        "/api/colour/transfers/",
    }
    register = schema["paths"]["/api/colour/files/"]["post"]
    assert {"siteKey": []} in register["security"]
    assert schema["components"]["securitySchemes"]["siteKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": (
            "A site daemon's key (shown once when the site is created or its key rotated)."
        ),
    }
    upload = schema["paths"]["/api/colour/files/{id}/upload/"]["post"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert schema["paths"]["/api/colour/files/{id}/validate/"]["post"]["responses"].keys() >= {
        "200",
        "403",
        "409",
    }
