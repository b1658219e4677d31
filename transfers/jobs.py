"""Background work for transfers: scan (scanning queue), verified copy (transfer queue), delivery.

Each job takes an id, re-checks the request's state first (it may run twice), and leaves the
request in a state that says what happened and why. Only faults that may pass (clamd or
ShotGrid unreachable) are retried.
"""

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pipeline_project import jobs
from pipeline_project.fileops.copy import (
    ChecksumMismatch,
    copy_verified,
    move_file,
    remove_stale_parts,
)
from pipeline_project.fileops.hashing import sha256_file
from pipeline_project.fileops.paths import PathOutsideRoot, confine
from pipeline_project.fileops.scan import ScanResult, scan_file
from pipeline_project.studio.audit import record
from pipeline_project.studio.health import clamd_address
from pipeline_project.studio.services import notify

from . import services
from .models import Status, Transfer, TransferFile

log = logging.getLogger(__name__)
FileStatus = TransferFile.ScanStatus


class TransferFailed(Exception):
    """A permanent failure, already recorded on the request."""


def _root(name: str) -> Path:
    root = Path(getattr(settings, name))
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def _set_status(transfer_id, status, *, reason="", verb, expect=None, **after) -> Transfer:
    """Move the request to `status` under its row lock and audit it as the system."""
    with transaction.atomic():
        locked = Transfer.objects.select_for_update().get(pk=transfer_id)
        if expect is not None and locked.status not in expect:
            return locked
        before = locked.status
        locked.status, locked.status_reason = status, reason
        locked.save(update_fields=["status", "status_reason", "updated_at"])
        record(
            actor=None,
            verb=f"transfer.{verb}",
            target=locked,
            before={"status": before},
            after={"status": status, **({"reason": reason} if reason else {}), **after},
        )
    return locked


def _fail(transfer_id, status, verb, reason, roles) -> TransferFailed:
    transfer = _set_status(transfer_id, status, reason=reason, verb=verb)
    notify(
        title=f"{transfer.reference}: {Status(status).label.lower()}",
        body=reason,
        users=[transfer.created_by],
        roles=roles,
        url=transfer.get_absolute_url(),
        level="error",
    )
    return TransferFailed(reason)


def _another_run_is_working(transfer) -> bool:
    """True when an earlier run of this same job is still at work on the request: two scans or
    two copies of one request never interleave (a rescan or re-run while one is alive waits)."""
    with transaction.atomic():
        locked = Transfer.objects.select_for_update().get(pk=transfer.pk)
        other = jobs.earlier_live_run(locked)
    if other is not None:
        log.info("%s: run %s is still at work; this run steps aside", transfer.reference, other.pk)
        jobs.report_progress(0, 0, f"Stepped aside: run {other.pk} is still working", force=True)
    return other is not None


def _check_cleared(transfer):
    """Refuse to copy anything that has no manifest hash or was not cleared by the scan."""
    cleared = (FileStatus.CLEAN, FileStatus.OVERRIDDEN)
    for file in transfer.files.all():
        if file.scan_status not in cleared or len(file.sha256) != 64:
            raise _fail(
                transfer.pk,
                Status.FAILED,
                "transfer_failed",
                f"{file.path} is {file.get_scan_status_display().lower()} and has no verified "
                "manifest hash: nothing was copied. Rescan the request first.",
                ["it", "data_team"],
            )


# --- scan ---------------------------------------------------------------------------------------
def scan_transfer(transfer_id: int):
    """Hash every file (the manifest) and scan it with clamd, then decide the outcome."""
    transfer = Transfer.objects.get(pk=transfer_id)
    if transfer.status not in (Status.APPROVED, Status.SCANNING, Status.SCAN_ERROR):
        log.info("scan of %s skipped: it is %s", transfer.reference, transfer.status)
        return
    if _another_run_is_working(transfer):
        return
    transfer = _set_status(
        transfer_id,
        Status.SCANNING,
        verb="scan_started",
        expect=(Status.APPROVED, Status.SCAN_ERROR, Status.SCANNING),
    )
    address = clamd_address()
    staging = _root("STAGING_ROOT")
    files = list(transfer.files.all())
    total, done = sum(f.size for f in files), 0
    for index, file in enumerate(files, 1):
        message = f"Scanning file {index} of {len(files)}: {file.path}"
        jobs.report_progress(done, total, message, force=True)
        _scan_one(
            transfer,
            file,
            staging,
            address,
            lambda n, base=done, size=file.size, text=message: jobs.report_progress(
                base + min(n, size), total, text
            ),
        )
        done += file.size
    jobs.report_progress(done, total, "Scan finished", force=True)
    _finish_scan(transfer_id)


def _scan_one(transfer, file, staging, address, progress):
    try:
        path = confine(file.path, staging)
    except PathOutsideRoot:
        raise _fail(
            transfer.pk,
            Status.SCAN_ERROR,
            "scan_error",
            f"{file.path} resolves outside the staging area; it was not read.",
            ["data_team"],
        ) from None
    if not path.is_file():
        raise _fail(
            transfer.pk,
            Status.SCAN_ERROR,
            "scan_error",
            f"{file.path} is no longer in the staging area.",
            ["data_team"],
        )
    size = path.stat().st_size
    if size != file.size:
        raise _fail(
            transfer.pk,
            Status.SCAN_ERROR,
            "scan_failed",
            f"{file.path} changed after it was approved: {size} bytes now, {file.size} bytes "
            "when requested. It was not scanned; the artist must submit it again.",
            ["data_team"],
        )
    sha256 = sha256_file(path, progress=progress)
    if address.is_configured():
        result = scan_file(path, address)
    else:
        # No scanner at all is a standing fact, not a fault to retry: the files are unscanned and
        # need a data-team override, like any file clamd cannot read. Never clean.
        result = ScanResult(
            "unscanned", "no virus scanner is configured (CLAMD_SOCKET / CLAMD_HOST)"
        )
    if result.status == "error":
        # clamd down or unreachable: say so, keep the request, and let RQ retry with backoff.
        TransferFile.objects.filter(pk=file.pk).update(
            scan_status=FileStatus.ERROR, scan_detail=result.detail[:500]
        )
        if not jobs.will_retry():
            raise _fail(
                transfer.pk,
                Status.SCAN_ERROR,
                "scan_error",
                f"Scan error on {file.path}: {result.detail}. Gave up retrying; nothing was "
                "passed. Rescan once clamd answers.",
                ["data_team"],
            )
        _set_status(
            transfer.pk,
            Status.SCAN_ERROR,
            verb="scan_error",
            reason=f"Scan error on {file.path}: {result.detail}. Retrying.",
        )
        raise jobs.TransientError(result.detail)
    if result.sha256 and result.sha256 != sha256:
        # clamd read other bytes than the manifest hash: the file changed between the two reads.
        raise _fail(
            transfer.pk,
            Status.SCAN_ERROR,
            "scan_failed",
            f"{file.path} changed while it was scanned (manifest sha256 {sha256}, scanned "
            f"sha256 {result.sha256}). Nothing was passed; rescan once staging is stable.",
            ["data_team"],
        )
    TransferFile.objects.filter(pk=file.pk).update(
        sha256=sha256,
        scan_status=result.status,
        scan_detail=result.detail[:500],
        scanned_at=timezone.now(),
        verified_at=None,
        verified_sha256="",
    )


def _finish_scan(transfer_id):
    transfer = Transfer.objects.get(pk=transfer_id)
    infected = list(transfer.files.filter(scan_status=FileStatus.INFECTED))
    if infected:
        _quarantine(transfer, infected)
        names = ", ".join(f"{f.path} ({f.scan_detail})" for f in infected)
        # The scan did its job: the request stops here, and the job itself succeeded.
        _fail(
            transfer_id,
            Status.QUARANTINED,
            "quarantined",
            f"Infected: {names}. Moved to quarantine; nothing goes on.",
            ["data_team"],
        )
        return
    unscanned = transfer.files.filter(scan_status=FileStatus.UNSCANNED)
    if unscanned.exists():
        names = ", ".join(f"{f.path} ({f.scan_detail})" for f in unscanned)
        locked = _set_status(
            transfer_id,
            Status.NEEDS_OVERRIDE,
            verb="scan_unscanned",
            reason=f"clamd could not scan: {names}. A data-team override is needed.",
        )
        notify(
            title=f"{locked.reference} has files clamd could not scan",
            body=locked.status_reason,
            roles=["data_team"],
            url=locked.get_absolute_url(),
            level="warning",
        )
        return
    with transaction.atomic():
        locked = _set_status(transfer_id, Status.SCANNED, verb="scanned_clean")
        services.after_clean_scan(Transfer.objects.select_for_update().get(pk=locked.pk))


def _quarantine(transfer, infected):
    staging, quarantine = _root("STAGING_ROOT"), _root("QUARANTINE_ROOT")
    for file in infected:
        source = confine(file.path, staging)
        target = confine(f"{transfer.reference}/{file.get_relative_path()}", quarantine)
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            move_file(source, target)
        TransferFile.objects.filter(pk=file.pk).update(
            quarantine_path=str(target.relative_to(quarantine))
        )


# --- verified copy ------------------------------------------------------------------------------
def copy_transfer(transfer_id: int):
    """Copy every file not yet verified to production, verifying each against the manifest."""
    transfer = Transfer.objects.select_related("project").get(pk=transfer_id)
    if transfer.status != Status.TRANSFERRING:
        log.info("copy of %s skipped: it is %s", transfer.reference, transfer.status)
        return
    if _another_run_is_working(transfer):
        return
    _check_cleared(transfer)
    staging, production = _root("STAGING_ROOT"), _root("PRODUCTION_ROOT")
    todo = [f for f in transfer.files.all() if not f.is_verified()]
    total, done = sum(f.size for f in todo), 0
    for index, file in enumerate(todo, 1):
        message = f"Copying file {index} of {len(todo)}: {file.get_relative_path()}"
        _copy_one(transfer, file, staging, production, message, done, total)
        done += file.size
    jobs.report_progress(done, total, "All files verified in production", force=True)
    with transaction.atomic():
        locked = _set_status(
            transfer_id, Status.TRANSFERRED, verb="transferred", expect=(Status.TRANSFERRING,)
        )
        if locked.status == Status.TRANSFERRED:
            services.enqueue_delivery(locked)


def _copy_one(transfer, file, staging, production, message, base, total):
    def progress(phase, done, size):
        # Copy and read-back each count for half of the file's share of the bar.
        share = done if phase == "copy" else size + done
        jobs.report_progress(base + share // 2, total, message)

    relative = f"{transfer.get_production_dir()}/{file.get_relative_path()}"
    try:
        source, target = confine(file.path, staging), confine(relative, production)
    except PathOutsideRoot as exc:
        raise _fail(transfer.pk, Status.FAILED, "transfer_failed", str(exc), ["it"]) from None
    try:
        remove_stale_parts(target)
        if target.exists():
            sha256 = _adopt_existing(transfer, file, target)
        else:
            sha256 = copy_verified(source, target, expected_sha256=file.sha256, progress=progress)
    except FileExistsError:
        sha256 = _adopt_existing(transfer, file, target)  # another run put it in place first
    except ChecksumMismatch as exc:
        raise _fail(
            transfer.pk,
            Status.FAILED,
            "transfer_failed",
            f"Verification failed: {exc}",
            ["it", "data_team"],
        ) from None
    except FileNotFoundError as exc:
        raise _fail(
            transfer.pk,
            Status.FAILED,
            "transfer_failed",
            f"{file.path} is missing from staging: {exc}",
            ["it"],
        ) from None
    except OSError as exc:
        raise _fail(
            transfer.pk,
            Status.FAILED,
            "transfer_failed",
            f"Could not write {relative} in production: {exc.strerror or exc}",
            ["it"],
        ) from None
    TransferFile.objects.filter(pk=file.pk).update(
        verified_sha256=sha256, verified_at=timezone.now(), production_path=relative
    )


def _adopt_existing(transfer, file, target) -> str:
    """A file already sits under the final name (a run killed after the rename): keep it only if
    it is exactly the approved file."""
    sha256 = sha256_file(target)
    if sha256 != file.sha256:
        raise _fail(
            transfer.pk,
            Status.FAILED,
            "transfer_failed",
            f"A different file already exists at {target.name} in production "
            f"(sha256 {sha256}, manifest {file.sha256}); it was left untouched.",
            ["it"],
        )
    return sha256


# --- delivery -----------------------------------------------------------------------------------
def deliver_transfer(transfer_id: int):
    """Create the ShotGrid Version (when enabled and linked) and tell the artist."""
    transfer = Transfer.objects.select_related("project", "shot", "asset").get(pk=transfer_id)
    if transfer.status != Status.TRANSFERRED:
        return
    try:
        version_id = transfer.shotgrid_version_id or _create_version(transfer)
    except jobs.TransientError as exc:
        if jobs.will_retry():
            raise
        raise _delivery_failed(transfer, f"{exc}; gave up retrying") from exc
    except Exception as exc:
        raise _delivery_failed(transfer, f"{type(exc).__name__}: {exc}") from exc
    with transaction.atomic():
        locked = Transfer.objects.select_for_update().get(pk=transfer_id)
        if locked.status != Status.TRANSFERRED:
            return
        locked.status, locked.delivered_at, locked.shotgrid_version_id = (
            Status.DELIVERED,
            timezone.now(),
            version_id,
        )
        locked.save(update_fields=["status", "delivered_at", "shotgrid_version_id", "updated_at"])
        record(
            actor=None,
            verb="transfer.delivered",
            target=locked,
            before={"status": Status.TRANSFERRED},
            after={"status": Status.DELIVERED, "shotgrid_version_id": version_id},
        )
        notify(
            title=f"{locked.reference} “{locked.name}” delivered to production",
            level="success",
            body=f"{locked.file_count} files verified under {locked.get_production_dir()}.",
            users=[locked.created_by],
            url=locked.get_absolute_url(),
        )


def _delivery_failed(transfer, why) -> TransferFailed:
    """The files stay verified in production; the request waits in Transferred for IT."""
    reason = f"The ShotGrid Version could not be created ({why}). IT may retry the delivery."
    Transfer.objects.filter(pk=transfer.pk).update(status_reason=reason[:1000])
    record(actor=None, verb="transfer.delivery_failed", target=transfer, after={"reason": reason})
    notify(
        title=f"{transfer.reference}: delivery failed",
        body=reason,
        roles=["it"],
        url=transfer.get_absolute_url(),
        level="error",
    )
    return TransferFailed(reason)


def _create_version(transfer) -> int | None:
    entity = transfer.shot or transfer.asset
    if not (settings.SHOTGRID_ENABLED and transfer.project and entity and entity.shotgrid_id):
        return None
    from pipeline_project.studio import shotgrid

    try:
        sg = shotgrid.get_client()
        return shotgrid.create_version(
            sg=sg,
            project=transfer.project,
            code=f"{transfer.reference} {transfer.name}",
            description=transfer.description or f"Delivered by {transfer.created_by.username}",
            entity_type="Shot" if transfer.shot else "Asset",
            entity_shotgrid_id=entity.shotgrid_id,
            path=f"{transfer.get_production_dir()}",
        )
    except (OSError, ConnectionError) as exc:
        raise jobs.TransientError(f"ShotGrid unreachable: {exc}") from exc
