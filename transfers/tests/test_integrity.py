"""The manifest is what was approved, scanned and copied — nothing else gets through, and no two
runs of the same work race. Real clamd, files, Mockgun and the HTTP API."""

import os
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from pipeline_project import jobs
from pipeline_project.fileops.hashing import sha256_file
from pipeline_project.studio.models import AuditEvent, JobRun, Notification
from pipeline_project.studio.tests.factories import ShotFactory
from transfers import services
from transfers.models import Status, Transfer

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PLATE = "sq010/sh0010/renders/comp_v3.1001.exr"


@pytest.fixture
def inline(roots, clamd_settings):
    roots.JOBS_INLINE = True
    roots.AUTO_TRANSFER = False
    return roots


@pytest.fixture
def as_user(api_client):
    def client(user):
        api_client.force_authenticate(user)
        return api_client

    return client


def submit_and_approve(transfer, people, *, until_last=False):
    """Submit, then approve each stage (all but the line producer's with `until_last`)."""
    transfer = services.transfer_submit(transfer=transfer, by=people["artist"])
    stages = ["team_lead", "supervisor"] + ([] if until_last else ["line_producer"])
    for role in stages:
        transfer = services.transfer_approve(transfer=transfer, by=people[role])
    return Transfer.objects.get(pk=transfer.pk)


def production_files(roots):
    return sorted(p for p in roots.PRODUCTION_ROOT.rglob("*") if p.is_file())


def test_a_file_changed_after_approval_is_refused_at_scan(inline, new_transfer, people):
    transfer = submit_and_approve(new_transfer(), people, until_last=True)
    with open(inline.STAGING_ROOT / PLATE, "ab") as f:
        f.write(b"an extra frame nobody approved")

    transfer = services.transfer_approve(transfer=transfer, by=people["line_producer"])
    transfer.refresh_from_db()

    assert transfer.status == Status.SCAN_ERROR
    assert f"{PLATE} changed after it was approved" in transfer.status_reason
    assert not transfer.files.filter(scan_status="clean", path=PLATE).exists()
    assert production_files(inline) == []
    assert Notification.objects.filter(recipient=people["data_team"], level="error").exists()


def test_bytes_changed_between_hashing_and_scanning_never_pass(
    inline, new_transfer, people, monkeypatch
):
    # Change the file right after the manifest hash has read its last byte, before clamd reads it.
    real_progress = jobs.report_progress
    target = inline.STAGING_ROOT / PLATE
    size = target.stat().st_size

    def progress(done, total=None, message="", **kwargs):
        if PLATE in message:
            start = progress.__dict__.setdefault("start", done)  # first report: file begins
            if not progress.__dict__.get("fired") and done - start >= size:
                progress.fired = True
                with open(target, "r+b") as f:  # same size, one byte flipped
                    first = f.read(1)
                    f.seek(0)
                    f.write(bytes([first[0] ^ 0xFF]))
        return real_progress(done, total, message, **kwargs)

    monkeypatch.setattr(jobs, "report_progress", progress)
    transfer = submit_and_approve(new_transfer(), people)

    assert getattr(progress, "fired", False), "the file was changed mid-scan"
    assert transfer.status == Status.SCAN_ERROR, transfer.status_reason
    assert "changed while it was scanned" in transfer.status_reason
    assert (
        "manifest sha256" in transfer.status_reason and "scanned sha256" in transfer.status_reason
    )
    assert not transfer.files.filter(path=PLATE, scan_status="clean").exists()


def test_clamd_down_inline_gives_up_says_so_and_tells_the_data_team(inline, new_transfer, people):
    # Through the settings fixture, so the address is put back after the test.
    inline.CLAMD_SOCKET, inline.CLAMD_HOST = "", "127.0.0.1"
    inline.CLAMD_PORT = 9  # discard port: nothing listens

    transfer = submit_and_approve(new_transfer(), people)

    assert transfer.status == Status.SCAN_ERROR
    assert "Gave up retrying" in transfer.status_reason
    assert not transfer.files.filter(scan_status="clean").exists()
    assert Notification.objects.filter(
        recipient=people["data_team"], title__contains="scan error"
    ).exists()


def test_a_rerun_copies_only_the_files_not_yet_verified(inline, new_transfer, people):
    transfer = submit_and_approve(new_transfer(), people)
    assert transfer.status == Status.SCANNED, transfer.status_reason
    folder = inline.PRODUCTION_ROOT / "dragon" / transfer.reference
    blocker = folder / "sq010/sh0010/renders/comp_v3.1002.exr"
    blocker.mkdir(parents=True)  # a folder where the last file must go: that copy fails

    services.transfer_start_transfer(transfer=transfer, by=people["it"])
    transfer.refresh_from_db()
    assert transfer.status == Status.FAILED, transfer.status_reason
    verified = {f.path: f for f in transfer.files.all() if f.is_verified()}
    assert sorted(verified) == ["sq010/sh0010/comp_v3.nk", PLATE]
    inodes = {p: os.stat(folder / p).st_ino for p in verified}

    blocker.rmdir()
    services.transfer_start_transfer(transfer=transfer, by=people["it"])
    transfer.refresh_from_db()

    assert transfer.status == Status.DELIVERED, transfer.status_reason
    assert {p: os.stat(folder / p).st_ino for p in verified} == inodes, "not copied again"
    rerun = JobRun.objects.filter(name__startswith="Copy").order_by("-created_at").first()
    assert rerun.total == transfer.files.get(path__endswith="1002.exr").size
    for f in transfer.files.all():
        assert sha256_file(folder / f.path) == f.sha256


def test_a_rerun_while_the_copy_is_alive_is_refused_with_409(inline, new_transfer, people, as_user):
    transfer = submit_and_approve(new_transfer(), people)
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.TRANSFERRING)
    alive = JobRun.objects.create(
        name=f"Copy {transfer.reference}",
        func="transfers.jobs.copy_transfer",
        queue="transfer",
        status=JobRun.Status.RUNNING,
        started_at=timezone.now(),
        target_type=ContentType.objects.get_for_model(Transfer),
        target_id=str(transfer.pk),
    )
    client = as_user(people["it"])
    url = reverse("api:transfer-start-transfer", args=[transfer.reference])

    response = client.post(url, {}, format="json")
    assert response.status_code == 409
    assert "still running" in response.json()["detail"]
    assert JobRun.objects.filter(name__startswith="Copy").count() == 1

    # Silent for longer than JOB_STALE_AFTER: its worker died, and the re-run goes ahead.
    JobRun.objects.filter(pk=alive.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert client.post(url, {}, format="json").status_code == 200
    transfer.refresh_from_db()
    assert transfer.status == Status.DELIVERED, transfer.status_reason


def test_a_late_approver_through_the_api_gets_409_naming_who_approved(
    roots, new_transfer, people, make_user, as_user
):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    transfer = services.transfer_approve(transfer=transfer, by=people["team_lead"])
    other_supervisor = make_user("supervisor")
    services.transfer_approve(transfer=transfer, by=people["supervisor"])

    # No expected_status sent: the API still knows which stage this supervisor meant.
    response = as_user(other_supervisor).post(
        reverse("api:transfer-approve", args=[transfer.reference]), {}, format="json"
    )

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "already approved at the Supervisor stage by" in detail
    assert people["supervisor"].username in detail
    transfer.refresh_from_db()
    assert transfer.status == Status.PENDING_LINE_PRODUCER
    assert transfer.approvals.count() == 2


def test_each_transition_is_e_mailed_to_the_next_role(roots, new_transfer, people, settings):
    settings.JOBS_INLINE, settings.NOTIFY_BY_EMAIL = True, True
    people["team_lead"].email = "lead@example.studio"
    people["team_lead"].save()

    services.transfer_submit(transfer=new_transfer(), by=people["artist"])

    to_lead = [m for m in mail.outbox if m.to == ["lead@example.studio"]]
    assert len(to_lead) == 1 and "TRF-00001" in to_lead[0].subject


def test_a_failed_shotgrid_delivery_waits_for_it_and_can_be_retried(
    roots, shotgrid_settings, sg_shot, new_transfer, people, project, as_user
):
    sg = shotgrid_settings
    shot = ShotFactory(sequence__project=project, code="sh0010", shotgrid_id=sg_shot["id"] + 50)

    transfer = submit_and_approve(new_transfer(shot=shot), people)
    services.transfer_override_unscanned(transfer=transfer, by=people["data_team"], reason="ok")
    transfer.refresh_from_db()

    assert transfer.status == Status.TRANSFERRED  # files verified in production, no Version
    assert f"no Shot with id {sg_shot['id'] + 50}" in transfer.status_reason
    assert Notification.objects.filter(recipient=people["it"], title__contains="delivery").exists()
    assert AuditEvent.objects.filter(verb="transfer.delivery_failed").count() == 1
    assert production_files(roots), "the verified files stay in production"

    shot.shotgrid_id = sg_shot["id"]
    shot.save()
    url = reverse("api:transfer-retry-delivery", args=[transfer.reference])
    assert as_user(people["artist"]).post(url, {}, format="json").status_code == 403
    response = as_user(people["it"]).post(url, {}, format="json")

    assert response.status_code == 200, response.content
    transfer.refresh_from_db()
    assert transfer.status == Status.DELIVERED and transfer.shotgrid_version_id
    assert (
        sg.find_one("Version", [["id", "is", transfer.shotgrid_version_id]], ["entity"])["entity"][
            "id"
        ]
        == sg_shot["id"]
    )


def test_nothing_without_a_clean_manifest_is_ever_copied(inline, new_transfer, people):
    transfer = submit_and_approve(new_transfer(), people)
    transfer.files.filter(path=PLATE).update(scan_status="pending", sha256="")

    services.transfer_start_transfer(transfer=transfer, by=people["it"])
    transfer.refresh_from_db()

    assert transfer.status == Status.FAILED
    assert f"{PLATE} is not scanned yet" in transfer.status_reason
    assert production_files(inline) == []


def test_a_second_copy_job_steps_aside_while_an_earlier_one_is_alive(inline, new_transfer, people):
    from transfers.jobs import copy_transfer

    transfer = submit_and_approve(new_transfer(), people)
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.TRANSFERRING)
    transfer.refresh_from_db()
    JobRun.objects.create(
        name=f"Copy {transfer.reference}",
        func="transfers.jobs.copy_transfer",
        queue="transfer",
        status=JobRun.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=5),
        target_type=ContentType.objects.get_for_model(Transfer),
        target_id=str(transfer.pk),
    )

    # A duplicate enqueued behind the services' back (a worker re-queuing it, say).
    second = jobs.enqueue(copy_transfer, transfer.pk, queue="transfer", target=transfer)

    second.refresh_from_db()
    transfer.refresh_from_db()
    assert second.message.startswith("Stepped aside")
    assert transfer.status == Status.TRANSFERRING
    assert production_files(inline) == []
    assert not [f for f in transfer.files.all() if f.is_verified()]
