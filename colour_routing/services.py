"""Every write of colour routing: sites and keys, daemon reports, uploads, the file workflow.

Pages, the API and jobs call these. Workflow actions lock the file row, check role and state
against ALLOWED_TRANSITIONS, write an AuditEvent and enqueue follow-up jobs after commit.
"""

import hashlib
import os
import re
import secrets
import socket
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from pipeline_project import jobs
from pipeline_project.accounts.services import user_set_roles
from pipeline_project.errors import Conflict, DomainError, IllegalTransition, RoleRequired
from pipeline_project.fileops.paths import PathOutsideRoot, confine
from pipeline_project.studio.audit import record
from pipeline_project.studio.models import JobRun
from pipeline_project.studio.services import notify

from .models import ACTION_LABELS, ALLOWED_TRANSITIONS, MediaFile, Route, Site, State, TransferJob

SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 4 * 1024 * 1024


# --- sites and their keys ------------------------------------------------------------------------
def sites_root() -> Path:
    root = Path(settings.COLOUR_SITES_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def site_storage(site: Site) -> Path:
    """The site's storage root, which must lie under COLOUR_SITES_ROOT."""
    try:
        return confine(site.storage_root, sites_root())
    except PathOutsideRoot:
        raise DomainError(
            f"Site {site.code}'s storage {site.storage_root} is outside COLOUR_SITES_ROOT."
        ) from None


def _require_admin(by, what="manage sites and their keys"):
    if not by.has_role("admin"):
        raise RoleRequired(f"Only admins {what}.")


def site_create(*, by, code: str, name: str, storage_root: str = "") -> tuple[Site, str]:
    """A new site and its daemon's API key (returned once; only a hash is kept)."""
    _require_admin(by)
    code = (code or "").strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", code):
        raise DomainError("Site codes are 1-32 lower-case letters, digits, - or _.")
    if Site.objects.filter(code=code).exists():
        raise Conflict(f"Site {code} already exists.")
    site = Site(code=code, name=(name or code).strip(), storage_root=storage_root or code)
    site_storage(site).mkdir(parents=True, exist_ok=True)
    key = _new_key(site)
    site.save()
    record(
        actor=by, verb="colour.site.created", target=site, after={"storage_root": site.storage_root}
    )
    return site, key


def site_rotate_key(*, site: Site, by) -> str:
    _require_admin(by)
    key = _new_key(site)
    site.save(update_fields=["api_key_prefix", "api_key_digest"])
    record(
        actor=by, verb="colour.site.key_rotated", target=site, after={"prefix": site.api_key_prefix}
    )
    return key


def _new_key(site: Site) -> str:
    key = f"sk_{site.code}_{secrets.token_urlsafe(32)}"
    site.api_key_prefix = key[:12]
    site.api_key_digest = hashlib.sha256(key.encode()).hexdigest()
    return key


def site_for_key(key: str) -> Site | None:
    if not key:
        return None
    for site in Site.objects.filter(api_key_prefix=key[:12], is_active=True):
        if site.has_key(key):
            return site
    return None


def site_heartbeat(*, site: Site, version="", hostname="", watch="", queued=0) -> Site:
    Site.objects.filter(pk=site.pk).update(
        last_heartbeat_at=timezone.now(),
        daemon_version=str(version)[:32],
        daemon_hostname=str(hostname)[:255],
        daemon_watch=str(watch)[:1024],
        daemon_queued=max(0, int(queued or 0)),
    )
    site.refresh_from_db()
    return site


# --- what the daemons report ------------------------------------------------------------------
def _clean_path(path: str) -> str:
    text = (path or "").replace("\\", "/").strip()
    pure = PurePosixPath(text)
    if not text or pure.is_absolute() or any(part in ("", ".", "..") for part in text.split("/")):
        raise DomainError(f"{path!r} is not a plain relative path inside the watch folder.")
    return str(pure)


def file_register(
    *, site: Site, path: str, size, sha256: str, mtime=None, metadata=None
) -> tuple[MediaFile, bool]:
    """Record a file a daemon found. Idempotent on site + path + hash: a re-send after a crash
    returns the existing row (created False)."""
    path = _clean_path(path)
    sha256 = (sha256 or "").strip().lower()
    if sha256 and not SHA256.match(sha256):
        raise DomainError("sha256 must be 64 hexadecimal characters.")
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise DomainError("size must be a whole number of bytes.") from None
    if size < 0:
        raise DomainError("size cannot be negative.")
    existing = MediaFile.objects.filter(site=site, path=path, sha256=sha256).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            media = MediaFile.objects.create(
                site=site,
                path=path,
                filename=PurePosixPath(path).name,
                size=size,
                sha256=sha256,
                mtime=mtime,
                metadata=metadata if isinstance(metadata, dict) else {},
            )
            record(
                actor=None,
                verb="colour.file.detected",
                target=media,
                after={"site": site.code, "size": size, "sha256": sha256},
            )
    except IntegrityError:  # the same report raced in twice
        return MediaFile.objects.get(site=site, path=path, sha256=sha256), False
    return media, True


def file_store_upload(
    *, media: MediaFile, stream, length: int | None, sha256_header: str = ""
) -> MediaFile:
    """Store the uploaded bytes in the origin site's storage, verified against the registered
    hash. The final name only ever holds a complete, verified file."""
    if media.is_uploaded():
        return media
    if sha256_header and sha256_header.strip().lower() != media.sha256:
        raise DomainError("X-Content-SHA256 does not match the registered hash of this file.")
    target = confine(media.path, site_storage(media.site))
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.upload-{secrets.token_hex(6)}")
    digest, received = hashlib.sha256(), 0
    try:
        with open(temp, "xb") as out:
            while length is None or received < length:
                chunk = stream.read(CHUNK if length is None else min(CHUNK, length - received))
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if received != media.size or digest.hexdigest() != media.sha256:
            raise DomainError(
                f"Upload of {media.path} does not match its registration: got {received} bytes with "
                f"sha256 {digest.hexdigest()}, expected {media.size} bytes with {media.sha256}."
            )
        _link_into_place(temp, target, media.sha256)
    finally:
        temp.unlink(missing_ok=True)
    MediaFile.objects.filter(pk=media.pk).update(stored_path=media.path, uploaded_at=timezone.now())
    record(actor=None, verb="colour.file.uploaded", target=media, after={"bytes": received})
    media.refresh_from_db()
    return media


def file_source(media) -> Path:
    """Where the file's bytes are at its origin site: the copy its daemon uploaded or, for a
    daemon run with --metadata-only, the file itself at the same relative path in the site's
    storage root (the site's watch folder as the orchestrator mounts it). Confined to that root."""
    try:
        return confine(media.stored_path or media.path, site_storage(media.site))
    except PathOutsideRoot:
        raise DomainError(f"{media.path} leads outside {media.site.code}'s storage.") from None


def _link_into_place(temp: Path, target: Path, sha256: str):
    from pipeline_project.fileops.hashing import sha256_file

    try:
        os.link(temp, target)
    except FileExistsError:
        if sha256_file(target) != sha256:
            raise Conflict(
                f"A different file already exists at {target.name}; it was left untouched."
            ) from None


# --- the workflow -------------------------------------------------------------------------------
def acting_role(media: MediaFile, user, action: str) -> str | None:
    if not getattr(user, "is_authenticated", False) or action not in ALLOWED_TRANSITIONS:
        return None
    states, _, roles = ALLOWED_TRANSITIONS[action]
    if media.state not in states or not hasattr(user, "has_role") or _blocked(media, action):
        return None
    for role in roles:
        if role == "assignee" and media.colorist_id == user.pk and user.has_role("colorist"):
            return "assignee"
        if role != "assignee" and user.has_role(role):
            return role
    if user.has_role("admin"):
        return "admin"
    return None


def _blocked(media: MediaFile, action: str) -> str:
    """Why `action` cannot be done now although the file's state allows it ("" if it can)."""
    if (
        action == "start_transfer"
        and media.state == State.TRANSFERRING
        and media.has_transfer_under_way()
    ):
        return (
            f"A transfer of {media.filename} is under way: it can be started again only once "
            "it has failed."
        )
    if (
        action == "deliver"
        and JobRun.objects.under_way_for(media, "colour_routing.jobs.deliver_to_mam").exists()
    ):
        return f"A delivery of {media.filename} to the MAM is under way or waiting to retry."
    return ""


def action_label(media: MediaFile, action: str) -> str:
    if action == "start_transfer" and media.state == State.TRANSFERRING:
        return "Retry transfer"
    return ACTION_LABELS[action]


def allowed_actions(media, user) -> list[tuple[str, str]]:
    return [(a, action_label(media, a)) for a in ALLOWED_TRANSITIONS if acting_role(media, user, a)]


def _begin(media: MediaFile, by, action: str):
    """Lock the row and check state and role; returns (locked row, role)."""
    locked = (
        MediaFile.objects.select_for_update(of=("self",))
        .select_related("site", "destination")
        .get(pk=media.pk)
    )
    states, _, roles = ALLOWED_TRANSITIONS[action]
    if locked.state not in states:
        raise IllegalTransition(
            f"File {locked.pk} ({locked.filename}) is {locked.get_state_display()}: "
            f"“{ACTION_LABELS[action]}” is not possible now."
        )
    if blocked := _blocked(locked, action):
        raise IllegalTransition(blocked)
    role = acting_role(locked, by, action)
    if role is None:
        who = " or ".join("the assigned colorist" if r == "assignee" else r for r in roles)
        raise RoleRequired(f"“{ACTION_LABELS[action]}” needs {who} (or an admin).")
    return locked, role


def _move(locked, by, action, role, *, reason="", **after):
    before = locked.state
    locked.state = ALLOWED_TRANSITIONS[action][1]
    locked.state_reason = reason
    locked.save()
    record(
        actor=by,
        verb=f"colour.file.{action}",
        target=locked,
        before={"state": before},
        after={
            "state": locked.state,
            "as": role,
            **({"reason": reason} if reason else {}),
            **after,
        },
    )
    return locked


def file_validate(*, media, by) -> MediaFile:
    """Checks: an allowed media type, a size above zero, a SHA-256. A failure rejects the file
    with the reason; the same hash already registered is flagged as a duplicate."""
    with transaction.atomic():
        locked, role = _begin(media, by, "validate")
        problems = []
        if locked.get_extension() not in [t.lower() for t in settings.COLOUR_MEDIA_TYPES]:
            problems.append(
                f"{locked.get_extension() or 'no extension'} is not an allowed media type"
            )
        if locked.size <= 0:
            problems.append("the file is empty")
        if not locked.sha256:
            problems.append("no SHA-256 was reported")
        if problems:
            reason = "Validation failed: " + "; ".join(problems) + "."
            locked.state, locked.state_reason = State.REJECTED, reason
            locked.save()
            record(
                actor=by,
                verb="colour.file.rejected",
                target=locked,
                before={"state": State.DETECTED},
                after={"state": State.REJECTED, "reason": reason, "as": role},
            )
            return locked
        original = (
            MediaFile.objects.filter(sha256=locked.sha256)
            .exclude(pk=locked.pk)
            .order_by("created_at")
            .first()
        )
        locked.duplicate_of = original
        note = f"Same content as file {original.pk} ({original})." if original else ""
        return _move(
            locked,
            by,
            "validate",
            role,
            reason=note,
            duplicate_of=original.pk if original else None,
        )


def file_queue(*, media, by, destination: Site) -> MediaFile:
    with transaction.atomic():
        locked, role = _begin(media, by, "queue")
        if destination is None or destination.pk == locked.site_id:
            raise DomainError("Choose a destination site other than the one the file is at.")
        locked.destination = destination
        return _move(locked, by, "queue", role, destination=destination.code)


def file_start_transfer(*, media, by) -> MediaFile:
    with transaction.atomic():
        locked, role = _begin(media, by, "start_transfer")
        _require_source(locked)
        route = Route.objects.filter(source=locked.site, destination=locked.destination).first()
        job = TransferJob.objects.create(
            file=locked,
            source=locked.site,
            destination=locked.destination,
            backend=route.backend if route else Route.Backend.MOUNTED,
            bytes_total=locked.size,
        )
        retry = locked.state == State.TRANSFERRING
        _move(locked, by, "start_transfer", role, job=job.pk, backend=job.backend, retry=retry)
        from .jobs import transfer_file

        run = jobs.enqueue(
            transfer_file,
            job.pk,
            queue="transfer",
            user=by,
            target=locked,
            unit="bytes",
            name=f"{locked.filename} {locked.site.code}→{locked.destination.code}",
            retry=jobs.backoff(5, first=settings.TRANSFER_RETRY_FIRST_DELAY),
        )
        TransferJob.objects.filter(pk=job.pk).update(run=run)
    return locked


def _require_source(media: MediaFile):
    """The bytes to send must be there: uploaded by the daemon or, when it runs with
    --metadata-only, in the site's storage root at the path it reported."""
    if media.is_uploaded():
        return
    source = file_source(media)
    where = f"{media.path} in {media.site.code}'s storage ({media.site.storage_root})"
    if not source.is_file():
        raise DomainError(
            f"{media.filename} has not been uploaded by its site daemon, and nothing is at {where}."
        )
    if source.stat().st_size != media.size:
        raise DomainError(
            f"{where} has {source.stat().st_size} bytes; its daemon reported {media.size}."
        )


def file_complete_transfer(*, media, by, sha256: str = "", destination_path: str = "") -> MediaFile:
    """Mark a transfer done that an outside tool performed: the destination copy is hashed and
    must equal the daemon's hash."""
    from pipeline_project.fileops.hashing import sha256_file

    with transaction.atomic():
        locked, role = _begin(media, by, "complete_transfer")
        relative = _clean_path(destination_path or locked.destination_path or locked.path)
        target = confine(relative, site_storage(locked.destination))
        if not target.is_file():
            raise DomainError(f"Nothing at {relative} in {locked.destination.code}'s storage.")
        actual = sha256_file(target)
        if actual != locked.sha256 or (sha256 and sha256.lower() != actual):
            raise DomainError(
                f"Destination copy does not match: sha256 {actual}, expected {locked.sha256}."
            )
        locked.destination_path = relative
        TransferJob.objects.filter(file=locked, status__in=TransferJob.UNFINISHED).update(
            status=TransferJob.Status.SUCCEEDED,
            verified_sha256=actual,
            finished_at=timezone.now(),
            bytes_done=locked.size,
        )
        return _move(locked, by, "complete_transfer", role, verified_sha256=actual)


def file_assign(*, media, by, colorist) -> MediaFile:
    if colorist is None or not colorist.has_role("colorist"):
        raise DomainError("Assign the file to someone with the colorist role.")
    with transaction.atomic():
        locked, role = _begin(media, by, "assign")
        locked.colorist = colorist
        _move(locked, by, "assign", role, colorist=colorist.username)
        notify(
            title=f"{locked.filename} is assigned to you for grading",
            users=[colorist],
            url=locked.get_absolute_url(),
            exclude=[by],
        )
    return locked


def file_start(*, media, by) -> MediaFile:
    with transaction.atomic():
        locked, role = _begin(media, by, "start")
        return _move(locked, by, "start", role)


def file_deliver(*, media, by) -> MediaFile:
    """Hand the file to the MAM. The state changes when the delivery job succeeds."""
    with transaction.atomic():
        locked, role = _begin(media, by, "deliver")
        record(actor=by, verb="colour.file.delivery_requested", target=locked, after={"as": role})
        from .jobs import deliver_to_mam

        jobs.enqueue(
            deliver_to_mam,
            locked.pk,
            queue="default",
            user=by,
            target=locked,
            name=f"Deliver {locked.filename} to the MAM",
            retry=jobs.backoff(5, first=settings.MAM_RETRY_FIRST_DELAY),
        )
    return locked


def file_archive(*, media, by) -> MediaFile:
    with transaction.atomic():
        locked, role = _begin(media, by, "archive")
        return _move(locked, by, "archive", role)


def file_reject(*, media, by, reason: str) -> MediaFile:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why the file is rejected.")
    with transaction.atomic():
        locked, role = _begin(media, by, "reject")
        return _move(locked, by, "reject", role, reason=reason)


def colour_user_create(*, by, username: str, password: str, role: str, email: str = ""):
    """A local account holding one colour-routing role; admins only."""
    _require_admin(by, "create users")
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise DomainError("That username is taken.")
    with transaction.atomic():
        user = User.objects.create_user(username, email, password)
        user_set_roles(user=user, roles=[role])
        record(actor=by, verb="colour.user.created", target=user, after={"role": role})
    return user


def default_hostname() -> str:
    return socket.gethostname()


def colorists():
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name="colorist")
        .order_by("username")
    )
