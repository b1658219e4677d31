"""What site daemons call: register (idempotent), upload (verified), heartbeat — and what
their keys may not do."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from colour_routing.models import MediaFile, Site
from pipeline_project.studio.models import AuditEvent

from .conftest import media_bytes

pytestmark = pytest.mark.django_db


def register(client, site="tustin", path="A001/clip.mov", **extra):
    data, sha = media_bytes(path)
    body = {
        "site": site,
        "path": path,
        "size": len(data),
        "sha256": sha,
        "mtime": "2026-11-20T10:00:00Z",
        "metadata": {"filename": path.rsplit("/", 1)[-1]},
    } | extra
    return client.post(reverse("api:colour-files"), body, format="json"), data, sha


def test_registration_is_idempotent_on_site_path_and_hash(make_site, daemon_client):
    _site, key = make_site("tustin")
    client = daemon_client(key)
    first, _, sha = register(client)
    again, _, _ = register(client)
    assert (
        first.status_code == 201
        and first.json()["created"] is True
        and first.json()["upload_needed"] is True
    )
    assert again.status_code == 200 and again.json() == first.json() | {"created": False}
    assert MediaFile.objects.count() == 1
    assert MediaFile.objects.get().sha256 == sha and MediaFile.objects.get().state == "detected"
    changed, _, _ = register(client, sha256="0" * 64)
    assert changed.status_code == 201, "a new version of the file is a new registration"


def test_a_wrong_key_gets_401_and_records_nothing(make_site, daemon_client):
    make_site("tustin")
    response, _, _ = register(daemon_client("sk_tustin_not-the-key"))
    assert response.status_code == 401 and response.json() == {"detail": "Invalid site API key."}
    beat = daemon_client("nope").post(
        reverse("api:colour-heartbeat", args=["tustin"]), {}, format="json"
    )
    assert beat.status_code == 401
    assert not MediaFile.objects.exists() and Site.objects.get().last_heartbeat_at is None
    assert not AuditEvent.objects.filter(verb="colour.file.detected").exists()


def test_site_a_key_cannot_report_or_heartbeat_as_site_b(make_site, daemon_client):
    _, tustin_key = make_site("tustin")
    make_site("dallas")
    client = daemon_client(tustin_key)
    response, _, _ = register(client, site="dallas")
    assert response.status_code == 403 and "belongs to site tustin" in response.json()["detail"]
    beat = client.post(
        reverse("api:colour-heartbeat", args=["dallas"]), {"version": "1"}, format="json"
    )
    assert beat.status_code == 403
    assert (
        not MediaFile.objects.exists() and Site.objects.get(code="dallas").last_heartbeat_at is None
    )


def test_a_daemon_key_may_not_drive_the_workflow_or_read_files(make_site, daemon_client):
    _, key = make_site("tustin")
    client = daemon_client(key)
    response, _, _ = register(client)
    file_id = response.json()["id"]
    assert (
        client.post(
            reverse("api:colour-file-validate", args=[file_id]), {}, format="json"
        ).status_code
        == 403
    )
    assert client.get(reverse("api:colour-files")).status_code == 403
    assert MediaFile.objects.get().state == "detected"


def test_heartbeat_marks_the_site_online(make_site, daemon_client):
    site, key = make_site("nashville")
    assert not site.is_online()
    response = daemon_client(key).post(
        reverse("api:colour-heartbeat", args=["nashville"]),
        {"version": "1.4.0", "hostname": "ingest-01", "watch": "/mnt/ingest", "queued": 3},
        format="json",
    )
    assert response.json() == {"site": "nashville", "status": "online"}
    site.refresh_from_db()
    assert site.is_online() and site.daemon_version == "1.4.0" and site.daemon_queued == 3


def test_upload_is_stored_only_when_it_matches_the_registration(
    make_site, daemon_client, sites_root
):
    _, key = make_site("tustin")
    client = daemon_client(key)
    response, data, sha = register(client)
    url = reverse("api:colour-file-upload", args=[response.json()["id"]])

    bad = client.generic(
        "POST",
        url,
        data[:-1] + b"X",
        content_type="application/octet-stream",
        HTTP_X_CONTENT_SHA256=sha,
    )
    assert bad.status_code == 400 and "does not match its registration" in bad.json()["detail"]
    assert not (sites_root / "tustin/A001/clip.mov").exists()
    assert list((sites_root / "tustin/A001").iterdir()) == [], "no temporary file left behind"

    good = client.generic(
        "POST", url, data, content_type="application/octet-stream", HTTP_X_CONTENT_SHA256=sha
    )
    assert good.status_code == 200 and good.json() == {
        "id": response.json()["id"],
        "stored": True,
        "sha256": sha,
    }
    assert (sites_root / "tustin/A001/clip.mov").read_bytes() == data
    again, _, _ = register(client)
    assert again.json()["upload_needed"] is False


def test_another_sites_key_cannot_upload(make_site, daemon_client):
    _, tustin_key = make_site("tustin")
    _, dallas_key = make_site("dallas")
    response, data, _sha = register(daemon_client(tustin_key))
    upload = daemon_client(dallas_key).generic(
        "POST",
        reverse("api:colour-file-upload", args=[response.json()["id"]]),
        data,
        content_type="application/octet-stream",
    )
    assert upload.status_code == 403 and MediaFile.objects.get().uploaded_at is None


@pytest.mark.parametrize("path", ["../../etc/passwd", "/abs/clip.mov", "A001/../../x.mov", ""])
def test_paths_that_leave_the_watch_folder_are_refused(make_site, daemon_client, path):
    _, key = make_site("tustin")
    response, _, _ = register(daemon_client(key), path=path)
    assert response.status_code == 400 and not MediaFile.objects.exists()


def test_register_query_count_is_constant_whatever_the_table_size(make_site, daemon_client):
    _, key = make_site("tustin")
    client = daemon_client(key)
    counts = []
    for batch in (5, 200):
        for i in range(batch):
            register(client, path=f"fill/{batch}_{i}.mov")
        with CaptureQueriesContext(connection) as ctx:
            response, _, _ = register(client, path=f"probe/{batch}.mov")
        assert response.status_code == 201
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 12


def test_keys_are_hashed_at_rest_and_rotation_revokes_the_old_one(
    make_site, daemon_client, colour_people
):
    from colour_routing import services

    site, key = make_site("tustin")
    assert key not in str(Site.objects.values().get(pk=site.pk))
    new_key = services.site_rotate_key(site=site, by=colour_people["admin"])
    assert register(daemon_client(key))[0].status_code == 401
    assert register(daemon_client(new_key))[0].status_code == 201
