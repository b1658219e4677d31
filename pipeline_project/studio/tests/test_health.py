"""/healthz against the real parts: the test database, Redis and a clamd started for the tests."""

import pyclamd
import pytest
from django.db import connection

from pipeline_project.testing.clamd import EICAR_SIGNATURE_NAME, free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_jobs(settings, redis_url):
    """Jobs through Redis, as production runs them, instead of inline."""
    settings.JOBS_INLINE = False
    settings.REDIS_URL = redis_url
    return redis_url


@pytest.fixture
def staff_client(client, make_user):
    """Error text and versions are shown to IT staff only."""
    client.force_login(make_user("it"))
    return client


@pytest.fixture
def no_clamd(settings):
    settings.CLAMD_SOCKET = ""
    settings.CLAMD_HOST = ""


@pytest.mark.services
def test_healthz_is_ok_when_every_part_answers(staff_client, redis_jobs, clamd_settings):
    client = staff_client
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert body["checks"]["database"] == {"ok": True, "vendor": connection.vendor}
    assert body["checks"]["redis"] == {"ok": True, "mode": "redis"}
    assert body["checks"]["clamd"]["configured"] is True
    assert body["checks"]["clamd"]["version"].startswith("ClamAV ")


@pytest.mark.services
def test_healthz_reaches_clamd_over_tcp(staff_client, settings, clamd, no_clamd):
    client = staff_client
    settings.CLAMD_HOST = clamd.host
    settings.CLAMD_PORT = clamd.port

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["checks"]["clamd"]["version"].startswith("ClamAV ")


@pytest.mark.services
def test_healthz_names_clamd_when_it_is_stopped(staff_client, redis_jobs, clamd_settings):
    client = staff_client
    clamd_settings.stop()

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["failing"] == ["clamd"]
    assert clamd_settings.socket in body["checks"]["clamd"]["error"]


@pytest.mark.services
def test_healthz_names_redis_when_its_port_is_closed(staff_client, settings, redis_jobs, no_clamd):
    client = staff_client
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"]


@pytest.mark.services
def test_healthz_tells_anonymous_callers_what_fails_but_not_why(client, redis_jobs, clamd_settings):
    clamd_settings.stop()

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["clamd"]
    assert body["checks"]["clamd"] == {"ok": False, "configured": True}
    assert clamd_settings.socket not in response.content.decode()


def test_healthz_is_ok_in_the_embedded_defaults(client, settings, no_clamd):
    settings.JOBS_INLINE = True
    settings.REDIS_URL = ""

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["failing"] == []
    assert body["checks"]["redis"] == {"ok": True, "mode": "inline"}
    assert body["checks"]["clamd"] == {"ok": True, "configured": False}


def test_healthz_is_never_cached(client, settings, no_clamd):
    settings.JOBS_INLINE = True

    response = client.get("/healthz")

    assert "no-cache" in response["Cache-Control"]


@pytest.mark.services
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_clamd_fixture_flags_eicar_and_passes_clean_data(clamd, eicar_bytes, transport):
    if transport == "unix":
        scanner = pyclamd.ClamdUnixSocket(filename=clamd.socket, timeout=10)
    else:
        scanner = pyclamd.ClamdNetworkSocket(host=clamd.host, port=clamd.port, timeout=10)

    assert scanner.scan_stream(eicar_bytes) == {"stream": ("FOUND", EICAR_SIGNATURE_NAME)}
    assert scanner.scan_stream(b"an ordinary frame of pixels\n" * 1000) is None


@pytest.mark.services
def test_clamd_fixture_scans_files_by_path(clamd, eicar_bytes, tmp_path):
    infected = tmp_path / "infected.exr"
    infected.write_bytes(eicar_bytes)
    scanner = pyclamd.ClamdUnixSocket(filename=clamd.socket, timeout=10)

    assert scanner.scan_file(str(infected)) == {str(infected): ("FOUND", EICAR_SIGNATURE_NAME)}


@pytest.mark.services
def test_clamd_fixture_restarts_after_a_stop(clamd):
    clamd.stop()
    assert not clamd.ping()

    clamd.start()

    assert clamd.ping()


@pytest.mark.services
def test_clamd_factory_applies_stream_max_length(clamd_factory):
    small = clamd_factory(stream_max_length="1K")
    scanner = pyclamd.ClamdUnixSocket(filename=small.socket, timeout=10)

    with pytest.raises((pyclamd.BufferTooLongError, OSError)):
        scanner.scan_stream(b"x" * 64 * 1024)
    assert small.ping()


def test_healthz_answers_head_for_load_balancers(client, settings, no_clamd):
    settings.JOBS_INLINE = True
    response = client.head("/healthz")
    assert response.status_code == 200 and response.content == b""


def test_scans_wait_the_full_clamd_timeout_but_the_probe_is_capped(settings):
    from pipeline_project.studio.health import clamd_address

    settings.CLAMD_TIMEOUT = 120
    assert clamd_address().timeout == 120
    assert clamd_address(max_timeout=5).timeout == 5
