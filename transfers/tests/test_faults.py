"""What goes wrong must be caught: viruses, a scanner down, changed or corrupted bytes, a
destination that cannot be written, a copy killed half-way. Real clamd, files and workers."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.db import transaction
from rq.registry import ScheduledJobRegistry

from pipeline_project import jobs
from pipeline_project.studio.models import JobRun, Notification
from transfers import services
from transfers.models import Status, Transfer, TransferFile

from .conftest import ROOT

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def inline(roots):
    roots.JOBS_INLINE = True
    return roots


def approve_all(transfer, people):
    transfer = services.transfer_submit(transfer=transfer, by=people["artist"])
    for role in ("team_lead", "supervisor", "line_producer"):
        transfer = services.transfer_approve(transfer=transfer, by=people[role])
    return Transfer.objects.get(pk=transfer.pk)


def production_files(roots):
    return sorted(p for p in roots.PRODUCTION_ROOT.rglob("*") if p.is_file())


def test_eicar_in_one_file_quarantines_the_request_and_nothing_reaches_production(
    inline, clamd_settings, eicar_bytes, new_transfer, people
):
    infected = inline.STAGING_ROOT / "sq010" / "sh0010" / "renders" / "comp_v3.1003.exr"
    infected.write_bytes(eicar_bytes)

    transfer = approve_all(new_transfer(), people)

    assert transfer.status == Status.QUARANTINED
    bad = transfer.files.get(path__endswith="1003.exr")
    assert (bad.scan_status, bad.scan_detail) == ("infected", "Eicar-Test-Body.UNOFFICIAL")
    assert not infected.exists(), "the infected file left staging"
    assert (inline.QUARANTINE_ROOT / bad.quarantine_path).read_bytes() == eicar_bytes
    assert production_files(inline) == []
    assert "Eicar-Test-Body" in transfer.status_reason
    assert Notification.objects.filter(recipient=people["data_team"], level="error").exists()
    assert Notification.objects.filter(
        recipient=people["artist"], title__contains="quarantined"
    ).exists()
    assert {a for a, _ in services.allowed_actions(transfer, people["it"])} == set()


def test_clamd_down_is_a_scan_error_retried_with_backoff_never_clean(
    roots, clamd_settings, rq_worker, new_transfer, people
):
    roots.SCAN_RETRY_FIRST_DELAY = 1
    clamd_settings.stop()
    transfer = approve_all(new_transfer(), people)

    rq_worker("scanning")

    transfer.refresh_from_db()
    assert transfer.status == Status.SCAN_ERROR and "Retrying" in transfer.status_reason
    assert not transfer.files.filter(scan_status="clean").exists()
    run = JobRun.objects.get(name=f"Scan {transfer.reference}")
    assert run.status == JobRun.Status.RETRYING and run.attempts == 1
    assert ScheduledJobRegistry(queue=jobs.get_queue("scanning")).get_job_ids() == [str(run.pk)]
    assert production_files(roots) == []

    clamd_settings.start()
    time.sleep(1.5)  # the first backoff delay
    rq_worker("scanning", "transfer")

    transfer.refresh_from_db()
    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED and run.attempts == 2
    assert transfer.status == Status.TRANSFERRED
    assert set(transfer.files.values_list("scan_status", flat=True)) == {"clean"}


def test_a_file_clamd_cannot_scan_is_unscanned_and_needs_an_audited_override(
    inline, clamd_factory, new_transfer, people, settings
):
    small = clamd_factory(stream_max_length="1M")
    settings.CLAMD_SOCKET, settings.CLAMD_HOST = small.socket, ""
    inline.AUTO_TRANSFER = False
    (inline.STAGING_ROOT / "sq010/sh0010/plate_4k.exr").write_bytes(os.urandom(3 * 1024 * 1024))

    transfer = approve_all(new_transfer(), people)

    assert transfer.status == Status.NEEDS_OVERRIDE, transfer.status_reason
    assert (
        dict(transfer.files.values_list("path", "scan_status"))["sq010/sh0010/plate_4k.exr"]
        == "unscanned"
    )
    assert "StreamMaxLength" in transfer.status_reason
    with pytest.raises(Exception, match="reason"):
        services.transfer_override_unscanned(transfer=transfer, by=people["data_team"], reason="")
    transfer = services.transfer_override_unscanned(
        transfer=transfer, by=people["data_team"], reason="Checked on the isolated scan host"
    )
    assert transfer.status == Status.SCANNED
    assert transfer.files.get(path__endswith="plate_4k.exr").scan_status == "overridden"
    assert transfer.files.filter(scan_status="clean").count() == 3


def test_staging_file_changed_after_the_scan_fails_the_transfer_naming_both_hashes(
    inline, clamd_settings, new_transfer, people
):
    inline.AUTO_TRANSFER = False
    transfer = approve_all(new_transfer(), people)
    assert transfer.status == Status.SCANNED
    manifest = transfer.files.get(path__endswith="1002.exr").sha256
    (inline.STAGING_ROOT / "sq010/sh0010/renders/comp_v3.1002.exr").write_bytes(
        b"swapped after approval"
    )

    transfer = services.transfer_start_transfer(transfer=transfer, by=people["it"])
    transfer.refresh_from_db()

    assert transfer.status == Status.FAILED
    assert "comp_v3.1002.exr" in transfer.status_reason and manifest in transfer.status_reason
    import hashlib

    swapped = hashlib.sha256(b"swapped after approval").hexdigest()
    assert swapped in transfer.status_reason, "both hashes are named"
    assert not any(p.name == "comp_v3.1002.exr" for p in production_files(inline))
    assert not any(".part" in p.name for p in production_files(inline))


def test_a_read_only_production_folder_is_a_clear_failure_and_a_rerun_completes(
    inline, clamd_settings, new_transfer, people
):
    # chattr +i: even root may not create files in it (plain permissions do not stop root).
    locked = inline.PRODUCTION_ROOT / "dragon"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode:
        pytest.fail("chattr +i is needed for this test (e2fsprogs, an ext4 temp dir)")
    try:
        transfer = approve_all(new_transfer(), people)
        assert transfer.status == Status.FAILED
        assert "Could not write dragon/" in transfer.status_reason
        assert "Operation not permitted" in transfer.status_reason
        assert production_files(inline) == []
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)

    transfer = services.transfer_start_transfer(transfer=transfer, by=people["it"])
    transfer.refresh_from_db()
    assert transfer.status == Status.DELIVERED, transfer.status_reason


def test_destination_not_writable_is_a_clear_failure(inline, clamd_settings, new_transfer, people):
    (inline.PRODUCTION_ROOT / "dragon").write_bytes(b"a file where the project folder should be")

    transfer = approve_all(new_transfer(), people)

    assert transfer.status == Status.FAILED
    assert "Could not write dragon/" in transfer.status_reason
    assert Notification.objects.filter(recipient=people["it"], level="error").exists()
    # IT clears the problem and re-runs: it completes.
    (inline.PRODUCTION_ROOT / "dragon").unlink()
    services.transfer_start_transfer(transfer=transfer, by=people["it"])
    transfer.refresh_from_db()
    assert transfer.status == Status.DELIVERED


def big_transfer(roots, new_transfer, people, size_mib=384):
    block = os.urandom(1024 * 1024)
    with open(roots.STAGING_ROOT / "plate.exr", "wb") as out:
        for _ in range(size_mib):
            out.write(block)
    roots.AUTO_TRANSFER = True
    roots.CLAMD_SOCKET = roots.CLAMD_HOST = ""  # no scanner: the big plate is released by hand
    return approve_all(new_transfer(paths=["plate.exr"]), people)


def scan_and_release(transfer, rq_worker, people):
    rq_worker("scanning")
    transfer.refresh_from_db()
    assert transfer.status == Status.NEEDS_OVERRIDE
    services.transfer_override_unscanned(
        transfer=transfer, by=people["data_team"], reason="test plate"
    )


def start_worker(rq_worker, *queues):
    return subprocess.Popen(
        rq_worker.command(*queues),
        cwd=ROOT,
        env=rq_worker.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def process_tree(pid):
    """pid and all its descendants (RQ forks a work horse in its own process group)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def signal_tree(pids, sig):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_for_copy(transfer, folder, timeout=60):
    """Until the copy's temporary file holds its first MiB: a few hundredths of a second into
    a copy of several hundred MiB (its progress in the JobRun is written only twice a second,
    by when a fast disk has done most of it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = JobRun.objects.filter(name=f"Copy {transfer.reference} to production").first()
        with contextlib.suppress(FileNotFoundError):
            if run and any(p.stat().st_size >= 1 << 20 for p in folder.glob(".*.part-*")):
                return run
        time.sleep(0.002)
    raise AssertionError("the copy never started")


def test_a_copy_killed_midway_leaves_nothing_under_the_final_name_and_a_rerun_completes(
    roots, rq_worker, new_transfer, people
):
    transfer = big_transfer(roots, new_transfer, people)
    scan_and_release(transfer, rq_worker, people)
    final = roots.PRODUCTION_ROOT / "dragon" / transfer.reference / "plate.exr"

    worker = start_worker(rq_worker, "transfer")
    wait_for_copy(transfer, final.parent)
    signal_tree(process_tree(worker.pid), signal.SIGKILL)
    worker.wait()

    assert not final.exists()
    transfer.refresh_from_db()
    assert transfer.status == Status.TRANSFERRING  # the worker died; IT re-runs it
    # Its run still says "running": it is taken for dead once silent for JOB_STALE_AFTER.
    roots.JOB_STALE_AFTER = 1
    time.sleep(1.5)
    with transaction.atomic():
        services.transfer_start_transfer(transfer=transfer, by=people["it"])
    rq_worker("transfer", "default")

    transfer.refresh_from_db()
    assert transfer.status == Status.DELIVERED, transfer.status_reason
    manifest = transfer.files.get().sha256
    from pipeline_project.fileops.hashing import sha256_file

    assert sha256_file(final) == manifest
    assert [p.name for p in final.parent.iterdir()] == ["plate.exr"], (
        "the killed run's temp file is gone"
    )


def test_a_destination_byte_changed_during_the_copy_is_detected(
    roots, rq_worker, new_transfer, people
):
    transfer = big_transfer(roots, new_transfer, people)
    scan_and_release(transfer, rq_worker, people)
    folder = roots.PRODUCTION_ROOT / "dragon" / transfer.reference

    worker = start_worker(rq_worker, "transfer")
    wait_for_copy(transfer, folder)
    workers = process_tree(worker.pid)
    signal_tree(workers, signal.SIGSTOP)  # freeze the copy mid-way: the test is not a race
    try:
        assert not (folder / "plate.exr").exists(), "the copy finished before it could be frozen"
        part = next(folder.glob(".plate.exr.part-*"))
        with open(part, "r+b") as f:  # flip the first byte, already written
            first = f.read(1)
            f.seek(0)
            f.write(bytes([first[0] ^ 0xFF]))
    finally:
        signal_tree(workers, signal.SIGCONT)
    worker.wait(timeout=120)

    transfer.refresh_from_db()
    assert transfer.status == Status.FAILED, transfer.status_reason
    assert "plate.exr" in transfer.status_reason and "Verification failed" in transfer.status_reason
    assert list(folder.iterdir()) == []
    assert TransferFile.objects.get(transfer=transfer).verified_at is None
