"""Background work: site-to-site transfers (transfer queue) and MAM delivery (default queue)."""

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pipeline_project import jobs
from pipeline_project.fileops.hashing import sha256_file
from pipeline_project.fileops.paths import confine
from pipeline_project.studio.audit import record
from pipeline_project.studio.services import notify

from . import backends, mam
from .models import MamAttempt, MediaFile, Route, State, TransferJob
from .services import file_source, site_storage

log = logging.getLogger(__name__)


def transfer_file(job_id: int):
    """Copy the file to the destination site with the route's backend and verify it against
    the daemon's hash; the file becomes Transferred only then. A transient fault is retried
    with backoff; a permanent one, or the last retry, fails the job (see _transfer_failed)."""
    job = TransferJob.objects.select_related("file", "source", "destination").get(pk=job_id)
    media = job.file
    if job.status in (job.Status.SUCCEEDED, job.Status.FAILED) or media.state != State.TRANSFERRING:
        return  # run twice, or superseded by a newer transfer of the file
    job.attempts += 1
    TransferJob.objects.filter(pk=job.pk).update(
        status=TransferJob.Status.RUNNING, attempts=job.attempts, error=""
    )
    try:
        verified, relative = _send(job, media)
    except backends.TransientTransferError as exc:
        if not jobs.will_retry():
            _transfer_failed(job, media, f"gave up after {_attempts(job.attempts)}: {exc}")
            raise
        _transfer_interrupted(job, media, exc)
        raise jobs.TransientError(str(exc)) from exc
    except Exception as exc:
        _transfer_failed(job, media, f"{type(exc).__name__}: {exc}")
        raise
    _transfer_verified(job, media, verified, relative)


def _attempts(number: int) -> str:
    return f"{number} attempt{'' if number == 1 else 's'}"


def _send(job, media) -> tuple[str, str]:
    """Copy the file; (the SHA-256 read back at the destination, its path there)."""
    relative = f"incoming/{job.source.code}/{media.path}"
    target = confine(relative, site_storage(job.destination))
    if target.exists():  # an earlier run copied it and died before recording that
        verified = sha256_file(target)
        if verified != media.sha256:
            raise backends.VerificationFailed(
                f"A different file is already at {relative}",
                expected=media.sha256,
                actual=verified,
                path=str(target),
            )
        return verified, relative
    route = Route.objects.filter(source=job.source, destination=job.destination).first()
    backend = backends.make_backend(job.backend, route.options if route else {})

    def progress(done, total):
        TransferJob.objects.filter(pk=job.pk).update(bytes_done=done)
        jobs.report_progress(done, total, f"{job.backend}: {media.filename}")

    source = file_source(media)
    return backend.send(source, target, expected_sha256=media.sha256, progress=progress), relative


def _system_move(locked, state, verb, fields, **after):
    """Move a locked file to `state` on behalf of a job (no actor), setting `fields` and
    clearing the reason; audited with `after`."""
    before = locked.state
    locked.state, locked.state_reason = state, ""
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save(update_fields=["state", "state_reason", *fields, "updated_at"])
    record(
        actor=None,
        verb=verb,
        target=locked,
        before={"state": before},
        after={"state": state, **after},
    )


def _transfer_interrupted(job, media, exc):
    TransferJob.objects.filter(pk=job.pk).update(status=TransferJob.Status.RETRYING, error=str(exc))
    MediaFile.objects.filter(pk=media.pk).update(
        state_reason=f"Transfer attempt {job.attempts} failed: {exc} Retrying."
    )


def _transfer_verified(job, media, verified, relative):
    with transaction.atomic():
        locked = MediaFile.objects.select_for_update().get(pk=media.pk)
        TransferJob.objects.filter(pk=job.pk).update(
            status=TransferJob.Status.SUCCEEDED,
            verified_sha256=verified,
            bytes_done=media.size,
            error="",
            finished_at=timezone.now(),
        )
        if locked.state != State.TRANSFERRING:
            return
        _system_move(
            locked,
            State.TRANSFERRED,
            "colour.file.complete_transfer",
            {"destination_path": relative},
            verified_sha256=verified,
            backend=job.backend,
        )


def _transfer_failed(job, media, detail):
    """The transfer will not go on by itself: the job is Failed with the reason, the file
    stays Transferring with it, engineers are told, and "Retry transfer" is offered."""
    TransferJob.objects.filter(pk=job.pk).update(
        status=TransferJob.Status.FAILED, error=detail, finished_at=timezone.now()
    )
    MediaFile.objects.filter(pk=media.pk).update(
        state_reason=f"Transfer failed: {detail} Retry it once the cause is fixed."
    )
    record(
        actor=None,
        verb="colour.file.transfer_failed",
        target=media,
        after={"error": detail, "job": job.pk, "attempts": job.attempts},
    )
    notify(
        title=f"Transfer of {media.filename} failed",
        body=detail,
        roles=["engineer"],
        url=media.get_absolute_url(),
        level="error",
    )


def deliver_to_mam(file_id: int):
    """Deliver to the configured MAM target, recording every attempt. A transient fault is
    retried with backoff; the file becomes Delivered to MAM only once the target took it."""
    media = MediaFile.objects.select_related("site", "destination", "colorist").get(pk=file_id)
    if media.state != State.IN_PROGRESS:
        return
    target = settings.MAM_TARGET or "none"
    number = media.mam_attempts.count() + 1
    try:
        reference, status_code = _deliver(media, target)
    except Exception as exc:
        if _mam_attempt_failed(media, target, number, exc):
            raise jobs.TransientError(str(exc)) from exc
        raise
    MamAttempt.objects.create(
        file=media,
        target=target,
        number=number,
        ok=True,
        status_code=status_code,
        detail=reference[:2000],
    )
    _mam_delivered(media, target, reference)


def _mam_attempt_failed(media, target, number, exc) -> bool:
    """Record the failed attempt; True when it will be retried, else the delivery failed."""
    transient = isinstance(exc, mam.WebhookError) and exc.transient
    MamAttempt.objects.create(
        file=media,
        target=target,
        number=number,
        status_code=getattr(exc, "status", None),
        detail=str(exc)[:2000],
    )
    if transient and jobs.will_retry():
        MediaFile.objects.filter(pk=media.pk).update(
            state_reason=f"MAM delivery attempt {number} failed: {exc}. Retrying."
        )
        return True
    detail = f"gave up after {_attempts(number)}: {exc}" if transient else str(exc)
    _mam_failed(media, detail)
    return False


def _mam_delivered(media, target, reference):
    with transaction.atomic():
        locked = MediaFile.objects.select_for_update().get(pk=media.pk)
        if locked.state != State.IN_PROGRESS:
            return
        _system_move(
            locked,
            State.DELIVERED_TO_MAM,
            "colour.file.deliver",
            {"mam_reference": reference},
            target=target,
            reference=reference,
        )


def _graded_copy(media) -> Path:
    """The file as it sits where it was graded: the destination site's copy if it travelled."""
    if media.destination_id and media.destination_path:
        return confine(media.destination_path, site_storage(media.destination))
    return file_source(media)


def _metadata(media) -> dict:
    return {
        "id": media.pk,
        "filename": media.filename,
        "path": media.path,
        "site": media.site.code,
        "graded_at": media.destination.code if media.destination_id else media.site.code,
        "colorist": media.colorist.username if media.colorist_id else None,
        "sha256": media.sha256,
        "size": media.size,
        "metadata": media.metadata,
    }


def _deliver(media, target) -> tuple[str, int | None]:
    if target == "folder":
        folder = Path(settings.MAM_DROP_FOLDER)
        folder.mkdir(parents=True, exist_ok=True)
        placed = mam.deliver_to_folder(
            _graded_copy(media), folder, metadata=_metadata(media), sha256=media.sha256
        )
        return str(placed), None
    if target == "webhook":
        result = mam.post_webhook(
            settings.MAM_WEBHOOK_URL,
            settings.MAM_WEBHOOK_SECRET,
            {"event": "file.delivered", **_metadata(media)},
        )
        return f"webhook {result.status}", result.status
    return "recorded (no MAM target configured)", None


def _mam_failed(media, detail):
    """The delivery will not go on by itself: the file stays In progress with the reason,
    engineers and the colorist are told, and "Deliver to MAM" may be tried again."""
    MediaFile.objects.filter(pk=media.pk).update(
        state_reason=f"MAM delivery failed: {detail}. Deliver again once the cause is fixed."
    )
    record(actor=None, verb="colour.file.mam_failed", target=media, after={"error": detail})
    notify(
        title=f"MAM delivery of {media.filename} failed",
        body=detail,
        roles=["engineer"],
        users=[media.colorist] if media.colorist_id else [],
        url=media.get_absolute_url(),
        level="error",
    )
