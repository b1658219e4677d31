"""Writing the audit trail. Services call `record()` inside their transaction."""

from django.contrib.contenttypes.models import ContentType

from .models import AuditEvent


def client_ip(request) -> str | None:
    if request is None:
        return None
    # Behind a proxy, REMOTE_ADDR is the proxy; production sets BEHIND_PROXY and nginx
    # overwrites X-Forwarded-For, so the first hop is trustworthy there.
    from django.conf import settings

    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and settings.SECURE_PROXY_SSL_HEADER:
        return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR") or None


def record(
    *, actor, verb: str, target=None, before=None, after=None, ip: str | None = None
) -> AuditEvent:
    """Append one audit event. `actor` None means the system (a job, a daemon)."""
    if actor is not None and not actor.is_authenticated:
        actor = None
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "",
        verb=verb,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:255] if target is not None else "",
        before=before,
        after=after,
        ip_address=ip,
    )


def audit(request, verb: str, target=None, *, before=None, after=None) -> AuditEvent:
    """`record()` for a view: actor and IP from the request."""
    return record(
        actor=getattr(request, "user", None),
        verb=verb,
        target=target,
        before=before,
        after=after,
        ip=client_ip(request),
    )


def events_for(target):
    return AuditEvent.objects.filter(
        target_type=ContentType.objects.get_for_model(target), target_id=str(target.pk)
    ).select_related("actor")
