"""Nothing outside the configured roots is read or written, whatever the request says."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from pipeline_project.errors import DomainError
from transfers import services, staging
from transfers.models import Transfer

pytestmark = pytest.mark.django_db


def test_a_symlink_in_staging_pointing_outside_is_refused(roots, new_transfer, tmp_path):
    secret = tmp_path / "outside" / "passwords.txt"
    secret.parent.mkdir()
    secret.write_text("root:x")
    (roots.STAGING_ROOT / "sq010" / "sh0010" / "evil.exr").symlink_to(secret)
    (roots.STAGING_ROOT / "linked_dir").symlink_to(secret.parent, target_is_directory=True)

    with pytest.raises(DomainError, match="link to outside the staging area"):
        new_transfer(paths=["sq010/sh0010"])
    with pytest.raises(DomainError, match="outside the staging area"):
        new_transfer(paths=["sq010/sh0010/evil.exr"])
    with pytest.raises(DomainError, match="outside the staging area"):
        new_transfer(paths=["linked_dir"])
    assert not Transfer.objects.exists()
    assert "evil.exr" not in [e.name for e in staging.list_dir("sq010/sh0010")]
    assert "linked_dir" not in [e.name for e in staging.list_dir("")]


class NamedUpload:
    """An upload as an API client could hand it over, name untouched by Django's parser."""

    def __init__(self, name, data):
        self.name, self.data, self.size = name, data, len(data)

    def chunks(self):
        yield self.data


@pytest.mark.parametrize("name", ["../escape.exr", "../../etc/cron.d/job", "..\\..\\win.exr", ".."])
def test_an_upload_named_with_a_path_is_refused(roots, new_transfer, name, tmp_path):
    upload = NamedUpload(name, b"payload")
    with pytest.raises(DomainError, match=r"only plain file names|not usable"):
        new_transfer(paths=[], uploads=[upload])
    assert not Transfer.objects.exists()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"payload"]
    assert written == []


def test_uploads_are_sanitised_and_never_overwrite(roots, new_transfer):
    first = SimpleUploadedFile("plate v1?.exr", b"one")
    second = SimpleUploadedFile("plate v1?.exr", b"two")
    transfer = new_transfer(paths=[], uploads=[first, second])
    paths = sorted(transfer.files.values_list("path", flat=True))
    folder = f"uploads/{transfer.reference}"
    # "?" is replaced; the second upload of the same name gets a counter instead of overwriting.
    assert paths == [f"{folder}/plate v1_ (1).exr", f"{folder}/plate v1_.exr"]
    contents = {(roots.STAGING_ROOT / p).read_bytes() for p in paths}
    assert contents == {b"one", b"two"}


def test_a_failed_create_removes_its_uploads(roots, new_transfer, people):
    upload = SimpleUploadedFile("good.exr", b"data")
    with pytest.raises(DomainError):
        new_transfer(paths=["does/not/exist"], uploads=[upload])
    assert not list((roots.STAGING_ROOT).glob("uploads/*/*"))


def test_the_staging_browser_refuses_paths_outside(roots, people, client):
    client.force_login(people["artist"])
    page = client.get(
        reverse("transfers:staging"), {"path": "../.."}, headers={"HX-Request": "true"}
    )
    assert "outside the staging area" in page.content.decode()
    page = client.get(
        reverse("transfers:staging"), {"path": "sq010"}, headers={"HX-Request": "true"}
    )
    assert "sh0010" in page.content.decode() and "<html" not in page.content.decode()


def test_a_multipart_upload_named_with_dots_stays_in_the_requests_folder(roots, people, client):
    from django.test.client import encode_multipart

    client.force_login(people["artist"])
    body = encode_multipart("BoUnDaRy", {"name": "x", "priority": "normal"})
    body = body.replace(
        b"--BoUnDaRy--",
        b'--BoUnDaRy\r\nContent-Disposition: form-data; name="uploads"; '
        b'filename="../../escape.exr"\r\nContent-Type: image/x-exr\r\n\r\npayload\r\n--BoUnDaRy--',
    )
    response = client.post(
        reverse("transfers:new"), body, content_type="multipart/form-data; boundary=BoUnDaRy"
    )
    assert response.status_code == 302
    transfer = Transfer.objects.get()
    assert list(transfer.files.values_list("path", flat=True)) == [
        f"uploads/{transfer.reference}/escape.exr"
    ]
    assert not (roots.STAGING_ROOT.parent / "escape.exr").exists()


@pytest.mark.django_db(transaction=True)
def test_a_tampered_file_row_cannot_make_the_scan_read_outside_staging(roots, new_transfer, people):
    from transfers.models import Status, TransferFile

    roots.JOBS_INLINE, roots.CLAMD_SOCKET, roots.CLAMD_HOST = True, "", ""
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    first = transfer.files.first()
    TransferFile.objects.filter(pk=first.pk).update(path="../../../etc/passwd")
    for role in ("team_lead", "supervisor", "line_producer"):
        transfer = services.transfer_approve(transfer=transfer, by=people[role])
    transfer.refresh_from_db()
    assert transfer.status == Status.SCAN_ERROR
    assert "outside the staging area" in transfer.status_reason
    assert TransferFile.objects.get(pk=first.pk).sha256 == ""
