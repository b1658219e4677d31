"""Every write to a transfer request. HTML views, the API and jobs all call these.

Each workflow action locks the request row, checks the actor's role and the current state
against ALLOWED_TRANSITIONS, writes an AuditEvent, notifies the next people, and enqueues
follow-up jobs after commit.
"""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.functions import Length
from django.utils import timezone

from pipeline_project import jobs
from pipeline_project.errors import Conflict, DomainError, IllegalTransition, RoleRequired
from pipeline_project.studio.audit import record
from pipeline_project.studio.models import JobRun
from pipeline_project.studio.services import notify

from . import staging
from .models import (
    ACTION_LABELS,
    ALLOWED_TRANSITIONS,
    NEXT_STATUS,
    STAGE_ROLE,
    Approval,
    Priority,
    Status,
    Transfer,
    TransferFile,
)

CREATE_ROLES = ("artist", "admin")


# --- checks -----------------------------------------------------------------------------------
def acting_role(transfer: Transfer, user, action: str) -> str | None:
    """The role in which `user` may take `action` on `transfer` now, or None.

    Stage actions need the role of the stage the request waits at; admins may stand in for any
    role (the returned role is recorded)."""
    if not user.is_authenticated or action not in ALLOWED_TRANSITIONS:
        return None
    states, roles = ALLOWED_TRANSITIONS[action]
    if transfer.status not in states:
        return None
    if action in ("approve", "reject"):
        roles = (STAGE_ROLE[transfer.status],)
    for role in roles:
        if role == "owner" and transfer.is_owner(user):
            return "owner"
        if role != "owner" and user.has_role(role):
            return role
    if user.has_role("admin"):
        return f"admin as {roles[0]}"
    return None


def allowed_actions(transfer: Transfer, user) -> list[tuple[str, str]]:
    """(action, label) pairs the user may take now — what the detail page shows."""
    actions = []
    for action in ALLOWED_TRANSITIONS:
        if acting_role(transfer, user, action) is None:
            continue
        if action in ("approve", "reject") and not _may_approve_own(transfer, user):
            continue
        actions.append((action, ACTION_LABELS[action]))
    return actions


def _may_approve_own(transfer, user) -> bool:
    return settings.TRANSFERS_ALLOW_SELF_APPROVAL or not transfer.is_owner(user)


def _lock(transfer: Transfer) -> Transfer:
    return Transfer.objects.select_for_update().select_related("created_by").get(pk=transfer.pk)


def _check(locked: Transfer, seen_status: str, user, action: str) -> str:
    """Role and state checks under the row lock; returns the acting role."""
    states, roles = ALLOWED_TRANSITIONS[action]
    if locked.status != seen_status and seen_status in states:
        raise IllegalTransition(_overtaken_message(locked, seen_status))
    if locked.status not in states:
        raise IllegalTransition(
            f"{locked.reference} is {locked.get_status_display()}: "
            f"“{ACTION_LABELS[action]}” is not possible now."
        )
    role = acting_role(locked, user, action)
    if role is None and action in ("approve", "reject"):
        # The request moved on from the user's own stage a moment ago: say who decided it.
        decided = _decided_stage_of(locked, user)
        if decided is not None:
            raise IllegalTransition(_overtaken_message(locked, decided))
    if role is None:
        needed = STAGE_ROLE.get(locked.status) if action in ("approve", "reject") else None
        who = needed or " or ".join(r.replace("owner", "the requesting artist") for r in roles)
        raise RoleRequired(f"“{ACTION_LABELS[action]}” on {locked.reference} needs the {who} role.")
    return role


def _decided_stage_of(locked: Transfer, user) -> str | None:
    """A stage of this round that the user's role decides and that is already decided."""
    stages = [stage for stage, role in STAGE_ROLE.items() if user.has_role(role)]
    decision = (
        Approval.objects.filter(transfer=locked, round=locked.round, stage__in=stages)
        .order_by("-created_at")
        .first()
    )
    return decision.stage if decision is not None else None


def _overtaken_message(locked: Transfer, seen_status: str) -> str:
    decision = (
        Approval.objects.filter(transfer=locked, stage=seen_status, round=locked.round)
        .select_related("decided_by")
        .order_by("-created_at")
        .first()
    )
    stage = Status(seen_status).label.removeprefix("Pending ")
    if decision is not None:
        return (
            f"{locked.reference} was already {decision.decision} at the {stage} stage by "
            f"{decision.decided_by.username}; it is now {locked.get_status_display()}."
        )
    return f"{locked.reference} changed meanwhile; it is now {locked.get_status_display()}."


def _audit(transfer, by, verb, before_status, **after):
    record(
        actor=by,
        verb=f"transfer.{verb}",
        target=transfer,
        before={"status": before_status},
        after={"status": transfer.status, **after},
    )


def _save(transfer, *fields):
    transfer.save(update_fields=[*fields, "status", "updated_at"])


# --- create and edit ----------------------------------------------------------------------------
def transfer_create(
    *,
    by,
    name: str,
    description: str = "",
    priority: str = Priority.NORMAL,
    project=None,
    shot=None,
    asset=None,
    paths=(),
    uploads=(),
    submit: bool = False,
) -> Transfer:
    """Create a request from staging paths (folders expand to their files) and/or uploads.

    Uploads land in the request's own folder under staging. If anything fails, uploaded files
    are removed again and nothing is created."""
    if not by.has_role(*CREATE_ROLES):
        raise RoleRequired("Only artists (or admins) create transfer requests.")
    name, priority = _validated(
        name=name, priority=priority, project=project, shot=shot, asset=asset
    )
    selected = staging.expand(paths)
    stored: list[str] = []
    try:
        with transaction.atomic():
            transfer = _create_numbered(
                name=name,
                description=description.strip(),
                priority=priority,
                project=project,
                shot=shot,
                asset=asset,
                created_by=by,
            )
            files = list(selected)
            for upload in uploads:
                path, size = staging.store_upload(upload, transfer.get_upload_dir())
                stored.append(path)
                files.append((path, size))
            _add_files(transfer, files)
            record(
                actor=by,
                verb="transfer.created",
                target=transfer,
                after={"files": transfer.file_count, "bytes": transfer.total_bytes},
            )
            if submit:
                transfer = transfer_submit(transfer=transfer, by=by)
    except BaseException:
        staging.remove_uploads(stored)
        raise
    return transfer


def _create_numbered(**fields) -> Transfer:
    """Insert with the next free reference, TRF-00001, TRF-00002, … (gap-free, unlike ids).

    Two requests created at the same moment may pick the same number: the unique constraint
    refuses the second, which takes the next one."""
    for _ in range(20):
        last = (
            Transfer.objects.filter(reference__startswith="TRF-")
            .order_by(Length("reference").desc(), "-reference")  # TRF-100000 after TRF-99999
            .first()
        )
        number = int(last.reference[4:]) + 1 if last else 1
        try:
            with transaction.atomic():
                return Transfer.objects.create(reference=f"TRF-{number:05d}", **fields)
        except IntegrityError:
            continue
    raise Conflict("Could not allocate a transfer reference; try again.")


def _validated(*, name, priority, project, shot, asset):
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the transfer a name.")
    if priority not in Priority.values:
        raise DomainError(
            f"Unknown priority {priority!r}; choose one of {', '.join(Priority.values)}."
        )
    for link, label in ((shot, "shot"), (asset, "asset")):
        if link is not None and (project is None or link.project_id != project.pk):
            raise DomainError(f"The {label} {link} does not belong to the chosen project.")
    if project is not None and not project.is_active():
        raise DomainError(f"Project {project.code} is archived.")
    return name, priority


def _add_files(transfer, files):
    existing = set(transfer.files.values_list("path", flat=True))
    TransferFile.objects.bulk_create(
        [TransferFile(transfer=transfer, path=p, size=s) for p, s in files if p not in existing]
    )
    transfer.refresh_totals()
    transfer.save(update_fields=["file_count", "total_bytes", "updated_at"])


def transfer_edit(
    *,
    transfer,
    by,
    name=None,
    description=None,
    priority=None,
    add_paths=(),
    uploads=(),
    remove_paths=(),
) -> Transfer:
    """The artist changes a draft or rejected request: details and files."""
    stored: list[str] = []
    try:
        with transaction.atomic():
            locked = _lock(transfer)
            _check(locked, transfer.status, by, "edit")
            before = {"name": locked.name, "files": locked.file_count}
            locked.name, locked.priority = _validated(
                name=locked.name if name is None else name,
                priority=locked.priority if priority is None else priority,
                project=locked.project,
                shot=locked.shot,
                asset=locked.asset,
            )
            if description is not None:
                locked.description = description.strip()
            locked.save(update_fields=["name", "priority", "description", "updated_at"])
            locked.files.filter(path__in=list(remove_paths)).delete()
            files = staging.expand(add_paths)
            for upload in uploads:
                path, size = staging.store_upload(upload, locked.get_upload_dir())
                stored.append(path)
                files.append((path, size))
            _add_files(locked, files)
            record(
                actor=by,
                verb="transfer.edited",
                target=locked,
                before=before,
                after={"name": locked.name, "files": locked.file_count},
            )
    except BaseException:
        staging.remove_uploads(stored)
        raise
    return locked


# --- the approval chain -------------------------------------------------------------------------
def transfer_submit(*, transfer, by) -> Transfer:
    with transaction.atomic():
        locked = _lock(transfer)
        role = _check(locked, transfer.status, by, "submit")
        if not locked.files.exists():
            raise DomainError(f"{locked.reference} has no files: add files before submitting.")
        before = locked.status
        locked.status, locked.submitted_at, locked.status_reason = (
            Status.PENDING_TEAM_LEAD,
            timezone.now(),
            "",
        )
        _save(locked, "submitted_at", "status_reason")
        _audit(locked, by, "submitted", before, acting_as=role)
        _notify_stage(locked, by)
    return locked


def transfer_approve(*, transfer, by, comment: str = "") -> Transfer:
    """Approve the stage the request waits at. Two people racing: one wins, the other gets an
    IllegalTransition naming who approved first."""
    with transaction.atomic():
        locked = _lock(transfer)
        role = _check(locked, transfer.status, by, "approve")
        if not _may_approve_own(locked, by):
            raise RoleRequired(f"You cannot approve your own request {locked.reference}.")
        before = locked.status
        _decide(locked, by, role, Approval.Decision.APPROVED, comment)
        locked.status = NEXT_STATUS[before]
        if locked.status == Status.APPROVED:
            locked.approved_at = timezone.now()
        _save(locked, "approved_at")
        _audit(locked, by, "approved", before, acting_as=role, comment=comment.strip())
        if locked.status == Status.APPROVED:
            notify(
                title=f"{locked.reference} approved: scanning starts",
                users=[locked.created_by],
                roles=["data_team"],
                url=locked.get_absolute_url(),
                exclude=[by],
            )
            _enqueue_scan(locked, by)
        else:
            _notify_stage(locked, by)
    return locked


def _decide(locked, by, role, decision, comment):
    try:
        with transaction.atomic():
            Approval.objects.create(
                transfer=locked,
                stage=locked.status,
                round=locked.round,
                decision=decision,
                decided_by=by,
                acting_as=role,
                comment=comment.strip(),
            )
    except IntegrityError:
        raise IllegalTransition(_overtaken_message(locked, locked.status)) from None


def transfer_reject(*, transfer, by, reason: str) -> Transfer:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why the request is rejected: the artist needs to know what to fix.")
    with transaction.atomic():
        locked = _lock(transfer)
        role = _check(locked, transfer.status, by, "reject")
        if not _may_approve_own(locked, by):
            raise RoleRequired(
                f"You cannot decide on your own request {locked.reference}; cancel it instead."
            )
        before = locked.status
        _decide(locked, by, role, Approval.Decision.REJECTED, reason)
        locked.status, locked.status_reason = Status.REJECTED, reason
        _save(locked, "status_reason")
        _audit(locked, by, "rejected", before, acting_as=role, reason=reason)
        notify(
            title=f"{locked.reference} rejected",
            body=reason,
            users=[locked.created_by],
            url=locked.get_absolute_url(),
            level="warning",
            exclude=[by],
        )
    return locked


def transfer_resubmit(*, transfer, by) -> Transfer:
    with transaction.atomic():
        locked = _lock(transfer)
        role = _check(locked, transfer.status, by, "resubmit")
        if not locked.files.exists():
            raise DomainError(f"{locked.reference} has no files: add files before resubmitting.")
        before = locked.status
        locked.status, locked.status_reason = Status.PENDING_TEAM_LEAD, ""
        locked.round += 1
        locked.submitted_at = timezone.now()
        _save(locked, "status_reason", "round", "submitted_at")
        _audit(locked, by, "resubmitted", before, acting_as=role, round=locked.round)
        _notify_stage(locked, by)
    return locked


def transfer_cancel(*, transfer, by) -> Transfer:
    with transaction.atomic():
        locked = _lock(transfer)
        role = _check(locked, transfer.status, by, "cancel")
        before = locked.status
        locked.status = Status.CANCELLED
        _save(locked)
        _audit(locked, by, "cancelled", before, acting_as=role)
    return locked


def _notify_stage(transfer, by):
    role = STAGE_ROLE[transfer.status]
    notify(
        title=f"{transfer.reference} “{transfer.name}” needs {role.replace('_', ' ')} approval",
        body=f"{transfer.file_count} files, priority {transfer.get_priority_display()}.",
        roles=[role],
        url=transfer.get_absolute_url(),
        exclude=[by],
    )


# --- scanning and transfer (actions that start jobs) ---------------------------------------------
def _enqueue_scan(transfer, by):
    from .jobs import scan_transfer

    jobs.enqueue(
        scan_transfer,
        transfer.pk,
        queue="scanning",
        name=f"Scan {transfer.reference}",
        user=by,
        target=transfer,
        unit="bytes",
        retry=jobs.backoff(5, first=settings.SCAN_RETRY_FIRST_DELAY),
    )


def _enqueue_copy(transfer, by):
    from .jobs import copy_transfer

    jobs.enqueue(
        copy_transfer,
        transfer.pk,
        queue="transfer",
        name=f"Copy {transfer.reference} to production",
        user=by,
        target=transfer,
        unit="bytes",
    )


def transfer_rescan(*, transfer, by) -> Transfer:
    """Data team re-runs the scan (after a scan error, or to re-check files)."""
    with transaction.atomic():
        locked = _lock(transfer)
        role = _check(locked, transfer.status, by, "rescan")
        _refuse_while_alive(locked, "transfers.jobs.scan_transfer", "A scan")
        before = locked.status
        locked.status, locked.status_reason = Status.APPROVED, ""
        _save(locked, "status_reason")
        _audit(locked, by, "rescan_requested", before, acting_as=role)
        _enqueue_scan(locked, by)
    return locked


def transfer_override_unscanned(*, transfer, by, reason: str) -> Transfer:
    """Data team releases files clamd could not scan. Needs a reason; audited per file."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Give the reason these unscanned files are safe to release.")
    with transaction.atomic():
        locked = _lock(transfer)
        role = _check(locked, transfer.status, by, "override_unscanned")
        unscanned = locked.files.filter(scan_status=TransferFile.ScanStatus.UNSCANNED)
        paths = list(unscanned.values_list("path", flat=True))
        unscanned.update(
            scan_status=TransferFile.ScanStatus.OVERRIDDEN,
            scan_detail=f"Released by {by.username}: {reason}"[:500],
        )
        before = locked.status
        locked.status, locked.status_reason = Status.SCANNED, ""
        _save(locked, "status_reason")
        _audit(
            locked, by, "unscanned_overridden", before, acting_as=role, reason=reason, files=paths
        )
        after_clean_scan(locked, by=by)
    return locked


def transfer_start_transfer(*, transfer, by) -> Transfer:
    """IT starts (or, after a failure, re-runs) the verified copy to production."""
    with transaction.atomic():
        locked = _lock(transfer)
        role = _check(locked, transfer.status, by, "start_transfer")
        _refuse_while_alive(locked, "transfers.jobs.copy_transfer", "The copy")
        _begin_copy(locked, by, role)
    return locked


def transfer_retry_delivery(*, transfer, by) -> Transfer:
    """IT runs the delivery again: the files are verified in production, the Version is not."""
    with transaction.atomic():
        locked = _lock(transfer)
        role = _check(locked, transfer.status, by, "retry_delivery")
        _refuse_while_alive(locked, "transfers.jobs.deliver_transfer", "The delivery")
        locked.status_reason = ""
        _save(locked, "status_reason")
        _audit(locked, by, "delivery_retried", locked.status, acting_as=role)
        enqueue_delivery(locked, by)
    return locked


def enqueue_delivery(transfer, by=None):
    from .jobs import deliver_transfer

    jobs.enqueue(
        deliver_transfer,
        transfer.pk,
        queue="default",
        name=f"Deliver {transfer.reference}",
        user=by,
        target=transfer,
        retry=jobs.backoff(5, first=30),
    )


def _refuse_while_alive(locked, func, what):
    """A re-run is for work whose worker died; while a run is alive it would only race it."""
    if JobRun.objects.alive_for(locked, func).exists():
        raise Conflict(
            f"{what} of {locked.reference} is still running; wait for it to finish or fail."
        )


def _begin_copy(locked, by, role):
    before = locked.status
    locked.status, locked.status_reason = Status.TRANSFERRING, ""
    _save(locked, "status_reason")
    _audit(locked, by, "transfer_started", before, acting_as=role)
    _enqueue_copy(locked, by)


def after_clean_scan(locked, *, by=None):
    """A request just became Scanned clean (inside a transaction, row locked)."""
    if settings.AUTO_TRANSFER:
        _begin_copy(locked, by, "automatic")
    else:
        notify(
            title=f"{locked.reference} is clean and ready to transfer",
            roles=["it"],
            url=locked.get_absolute_url(),
        )
