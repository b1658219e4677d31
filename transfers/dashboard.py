"""Transfers' cards on the home dashboard: requests per status, delivered bytes per day."""

from datetime import timedelta

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import Status, Transfer

CHART_DAYS = 30


def cards(request):
    visible = Transfer.objects.for_user(request.user)
    counts = dict(visible.values_list("status").annotate(n=Count("id")).order_by())
    by_status = [
        (value, label, counts.get(value, 0)) for value, label in Status.choices if counts.get(value)
    ]
    return [
        (
            "transfers/_dashboard.html",
            {
                "by_status": by_status,
                "chart": delivered_per_day(visible),
                "awaiting": Transfer.objects.awaiting(request.user).count(),
            },
        )
    ]


def delivered_per_day(queryset, days=CHART_DAYS) -> dict:
    """Bytes delivered per day over the last `days` days, as bars for an inline SVG chart."""
    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    rows = (
        queryset.filter(status=Status.DELIVERED, delivered_at__date__gte=start)
        .annotate(day=TruncDate("delivered_at"))
        .values("day")
        .annotate(total=Sum("total_bytes"))
        .order_by()
    )
    totals = {row["day"]: row["total"] or 0 for row in rows}
    series = [
        (start + timedelta(days=i), totals.get(start + timedelta(days=i), 0)) for i in range(days)
    ]
    peak = max((v for _, v in series), default=0) or 1
    bars = []
    for i, (day, value) in enumerate(series):
        height = round(100 * value / peak, 1)
        bars.append({"day": day, "bytes": value, "height": height, "y": 100 - height, "x": i * 10})
    return {"bars": bars, "peak": peak, "total": sum(v for _, v in series), "days": days}
