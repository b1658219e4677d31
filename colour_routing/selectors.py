"""Reads that pages and the API share: dashboard statistics and audit trails."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from pipeline_project.studio.models import AuditEvent

from .models import MediaFile, Site, State, TransferJob

COLOUR_ROLES = ("colorist", "engineer", "readonly", "admin")


def stats(days: int = 14) -> dict:
    per_state = dict(MediaFile.objects.values_list("state").annotate(n=Count("id")).order_by())
    per_site = {
        row["site__code"]: row["n"]
        for row in MediaFile.objects.values("site__code").annotate(n=Count("id")).order_by()
    }
    start = timezone.localdate() - timedelta(days=days - 1)
    delivered = {
        row["day"]: (row["n"], row["bytes"] or 0)
        for row in MediaFile.objects.filter(
            state__in=[State.DELIVERED_TO_MAM, State.ARCHIVED], updated_at__date__gte=start
        )
        .annotate(day=TruncDate("updated_at"))
        .values("day")
        .annotate(n=Count("id"), bytes=Sum("size"))
        .order_by()
    }
    throughput = [
        {
            "day": (start + timedelta(days=i)).isoformat(),
            "files": delivered.get(start + timedelta(days=i), (0, 0))[0],
            "bytes": delivered.get(start + timedelta(days=i), (0, 0))[1],
        }
        for i in range(days)
    ]
    sites = list(Site.objects.all())
    return {
        "total": sum(per_state.values()),
        "per_state": {value: per_state.get(value, 0) for value in State.values},
        "per_site": {site.code: per_site.get(site.code, 0) for site in sites},
        "sites_online": sum(site.is_online() for site in sites),
        "sites": len(sites),
        "transfers_running": TransferJob.objects.filter(status__in=TransferJob.UNFINISHED).count(),
        "throughput": throughput,
    }


def file_events(media):
    return AuditEvent.objects.filter(
        target_type=ContentType.objects.get_for_model(MediaFile), target_id=str(media.pk)
    ).order_by("created_at", "id")


def audit_events(*, verb=None, actor=None, file_id=None):
    qs = AuditEvent.objects.filter(verb__startswith="colour.")
    if verb:
        qs = qs.filter(verb__startswith=verb if verb.startswith("colour.") else f"colour.{verb}")
    if actor:
        qs = qs.filter(actor_name=actor)
    if file_id:
        qs = qs.filter(
            target_type=ContentType.objects.get_for_model(MediaFile), target_id=str(file_id)
        )
    return qs.order_by("-created_at", "-id")


def colour_users():
    """Active people with a colour-routing role, with how many files each was assigned."""
    return (
        get_user_model()
        .objects.filter(groups__name__in=COLOUR_ROLES, is_active=True)
        .distinct()
        .annotate(assigned=Count("graded_files", distinct=True))
        .order_by("username")
    )
