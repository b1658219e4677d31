"""Fixtures for the whole suite. Service fixtures live in pipeline_project/testing/."""

import os

import pytest

from pipeline_project.testing import require_services, service_missing

pytest_plugins = [
    "pipeline_project.testing.slapd",
    "pipeline_project.testing.clamd",
    "pipeline_project.testing.shotgrid",
    "pipeline_project.testing.browser",
]


def pytest_sessionfinish(session, exitstatus):
    """Under REQUIRE_SERVICES=1 a skipped test is a failure: CI must exercise everything."""
    if not require_services():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"REQUIRE_SERVICES=1: {len(skipped)} test(s) skipped; failing the run.", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def redis_url():
    """A reachable, emptied Redis database for this test; skips (or fails in CI) without one.

    Like the test database, it is a separate one: the server of REDIS_URL (else 127.0.0.1:6379),
    database REDIS_TEST_DB (default 15), flushed before each test that uses it.
    """
    from urllib.parse import urlsplit, urlunsplit

    import redis

    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    # One database per xdist worker, so parallel runs never flush each other's queues.
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    db = int(os.environ.get("REDIS_TEST_DB", "15")) - worker
    url = urlunsplit(parts._replace(path=f"/{db}"))
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
    except redis.RedisError as exc:
        service_missing(f"Redis not reachable at {parts.netloc}: {exc}")
    return url


@pytest.fixture
def subprocess_env(transactional_db):
    """Environment for a child process (rq worker, manage.py) that shares the test database."""
    from django.db import connection

    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if connection.vendor == "postgresql":
        user = db.get("USER") or ""
        auth = f"{user}:{db.get('PASSWORD') or ''}@" if user else ""
        env["DATABASE_URL"] = (
            f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env["DJANGO_SETTINGS_MODULE"] = "pipeline_project.settings"
    return env


@pytest.fixture
def make_user(db):
    """`make_user("artist")` → a user holding that role (password: factories.PASSWORD)."""
    from pipeline_project.accounts.tests.factories import UserFactory

    def make(*roles, **fields):
        return UserFactory(roles=list(roles), **fields)

    return make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Real hashing costs ~0.3 s a login; tests check behaviour, not the hasher's strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
