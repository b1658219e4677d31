"""Writes for the shared nouns: notifications and projects."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from pipeline_project import jobs
from pipeline_project.accounts.roles import check_role_names
from pipeline_project.errors import DomainError

from .audit import record
from .models import Membership, Notification, Project


def notify(
    *,
    title: str,
    body: str = "",
    url: str = "",
    users=(),
    roles=(),
    level="info",
    email: bool | None = None,
    exclude=(),
) -> list[Notification]:
    """Tell `users` and everyone holding one of `roles`, in-app and (optionally) by e-mail.

    E-mail goes out from the `notifications` queue after the transaction commits.
    """
    check_role_names(roles)
    User = get_user_model()
    recipients = {u.pk: u for u in users if u is not None and u.is_active}
    if roles:
        for user in User.objects.filter(is_active=True, groups__name__in=roles).distinct():
            recipients.setdefault(user.pk, user)
    for user in exclude:
        recipients.pop(getattr(user, "pk", None), None)
    notes = Notification.objects.bulk_create(
        [
            Notification(recipient=u, title=title[:200], body=body, url=url, level=level)
            for u in recipients.values()
        ]
    )
    if email if email is not None else settings.NOTIFY_BY_EMAIL:
        ids = [n.pk for n in notes if n.recipient.email]
        if ids:
            jobs.enqueue(
                send_notification_emails, ids, queue="notifications", name=f"E-mail: {title[:80]}"
            )
    return notes


def send_notification_emails(notification_ids):
    """Job: e-mail each notification once (safe to run twice)."""
    pending = Notification.objects.filter(
        pk__in=notification_ids, emailed_at__isnull=True
    ).select_related("recipient")
    for note in pending:
        link = f"\n\n{settings.SITE_URL}{note.url}" if note.url else ""
        send_mail(
            f"[{settings.SITE_NAME}] {note.title}",
            f"{note.body}{link}",
            None,
            [note.recipient.email],
        )
        Notification.objects.filter(pk=note.pk).update(emailed_at=timezone.now())


def notifications_mark_read(*, user, ids=None) -> int:
    """Mark the user's notifications read: the given ids, or all when ids is None."""
    qs = Notification.objects.unread().filter(recipient=user)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())


def membership_set(*, project: Project, user, role: str, by) -> Membership:
    """Add a member or change their role. Needs project manager or studio admin."""
    if role not in Membership.Role.values:
        raise DomainError(f"Unknown project role {role!r}.")
    _require_project_manager(project, by)
    with transaction.atomic():
        membership, created = Membership.objects.select_for_update().get_or_create(
            project=project, user=user, defaults={"role": role}
        )
        before = None if created else {"role": membership.role}
        if not created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
        record(
            actor=by, verb="membership.set", target=membership, before=before, after={"role": role}
        )
    return membership


def _require_project_manager(project, user):
    from pipeline_project.errors import RoleRequired

    if user.has_role("admin"):
        return
    membership = project.get_membership(user)
    if membership is None or not membership.has_at_least(Membership.Role.MANAGER):
        raise RoleRequired(
            "Only the project's owners and managers (or an admin) can change members."
        )
