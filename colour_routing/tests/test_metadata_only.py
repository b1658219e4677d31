"""Files a daemon reports with --metadata-only are never uploaded: the orchestrator sends them
from where it mounts the site's storage root (under COLOUR_SITES_ROOT), at the path the daemon
reported, confined to that root, and verified against the daemon's hash like any other."""

import hashlib
import os

import pytest

from colour_routing import services
from colour_routing.models import State, TransferJob
from pipeline_project.errors import DomainError

from .conftest import media_bytes

pytestmark = pytest.mark.django_db

PATH = "A002/A002_C005_0102.mxf"


@pytest.fixture
def sites(make_site, settings):
    settings.JOBS_INLINE = True
    return make_site("tustin")[0], make_site("nashville")[0]


@pytest.fixture
def reported(sites, colour_people):
    """reported(data) -> a file registered without upload, validated and queued for Nashville."""
    tustin, nashville = sites
    engineer = colour_people["engineer"]

    def report(data, path=PATH):
        media, _ = services.file_register(
            site=tustin, path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest()
        )
        media = services.file_validate(media=media, by=engineer)
        return services.file_queue(media=media, by=engineer, destination=nashville)

    return report


def in_storage(sites_root, path, data):
    target = sites_root / "tustin" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def test_a_metadata_only_file_is_sent_from_the_sites_storage_and_verified(
    reported, sites_root, colour_people, django_capture_on_commit_callbacks
):
    data, sha = media_bytes(PATH, 500_000)
    media = reported(data)
    in_storage(sites_root, PATH, data)
    assert not media.is_uploaded()

    with django_capture_on_commit_callbacks(execute=True):
        services.file_start_transfer(media=media, by=colour_people["engineer"])

    media.refresh_from_db()
    job = media.transfer_jobs.get()
    assert media.state == State.TRANSFERRED, media.state_reason
    assert (job.status, job.verified_sha256) == (TransferJob.Status.SUCCEEDED, sha)
    copy = sites_root / "nashville" / "incoming" / "tustin" / PATH
    assert copy.read_bytes() == data
    assert (sites_root / "tustin" / PATH).read_bytes() == data, "the site's own file stays"


def test_nothing_in_the_sites_storage_is_refused_with_where_it_looked(
    reported, colour_people, sites_root
):
    data, _ = media_bytes(PATH)
    media = reported(data)

    with pytest.raises(DomainError, match=f"nothing is at {PATH} in tustin's storage"):
        services.file_start_transfer(media=media, by=colour_people["engineer"])

    in_storage(sites_root, PATH, data[:-1])
    with pytest.raises(DomainError, match="its daemon reported"):
        services.file_start_transfer(media=media, by=colour_people["engineer"])
    media.refresh_from_db()
    assert media.state == State.QUEUED and not media.transfer_jobs.exists()


def test_a_symlink_out_of_the_sites_storage_is_refused(
    reported, colour_people, sites_root, tmp_path
):
    secret = tmp_path / "elsewhere" / "payroll.mxf"
    secret.parent.mkdir()
    data, _ = media_bytes(PATH)
    secret.write_bytes(data)
    (sites_root / "tustin" / "A002").mkdir(parents=True)
    os.symlink(secret, sites_root / "tustin" / PATH)
    media = reported(data)

    with pytest.raises(DomainError, match="leads outside tustin's storage"):
        services.file_start_transfer(media=media, by=colour_people["engineer"])
    assert not (sites_root / "nashville" / "incoming").exists()


def test_a_file_in_storage_that_differs_from_the_report_fails_verification(
    reported, colour_people, sites_root, django_capture_on_commit_callbacks
):
    data, _ = media_bytes(PATH)
    media = reported(data)
    in_storage(sites_root, PATH, bytes(reversed(data)))  # same size, other content

    with django_capture_on_commit_callbacks(execute=True):
        services.file_start_transfer(media=media, by=colour_people["engineer"])

    media.refresh_from_db()
    job = media.transfer_jobs.get()
    assert job.status == TransferJob.Status.FAILED and "VerificationFailed" in job.error
    assert media.state == State.TRANSFERRING and "Transfer failed" in media.state_reason
    assert not (sites_root / "nashville" / "incoming" / "tustin" / PATH).exists()
