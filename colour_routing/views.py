from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from pipeline_project.accounts.permissions import role_required
from pipeline_project.errors import DomainError

from . import services
from .models import MediaFile, Site, State, TransferJob
from .selectors import audit_events, file_events, stats

READERS = ("colorist", "engineer", "readonly")


def _page(request, qs, per_page=25):
    return Paginator(qs, per_page).get_page(request.GET.get("page"))


def _bars(throughput):
    peak = max((day["files"] for day in throughput), default=0) or 1
    bars = []
    for i, day in enumerate(throughput):
        height = round(100 * day["files"] / peak, 1)
        bars.append({**day, "x": i * 20, "y": 100 - height, "height": height})
    return bars


@role_required(*READERS)
def dashboard(request):
    figures = stats()
    context = {
        "stats": figures,
        "bars": _bars(figures["throughput"]),
        "state_rows": [
            (value, label, figures["per_state"][value]) for value, label in State.choices
        ],
        "sites": Site.objects.all(),
        "recent": audit_events()[:12],
        "my_files": MediaFile.objects.filter(colorist=request.user).exclude(
            state__in=[State.ARCHIVED, State.REJECTED]
        )[:10],
    }
    if request.htmx:
        return render(request, "colour_routing/dashboard.html#live", context)
    return render(request, "colour_routing/dashboard.html", context)


@role_required(*READERS)
def file_list(request):
    qs = MediaFile.objects.select_related("site", "destination", "colorist").search(
        request.GET.get("q")
    )
    filters = {k: request.GET.get(k, "") for k in ("state", "site", "colorist")}
    if filters["state"] in State.values:
        qs = qs.filter(state=filters["state"])
    if filters["site"]:
        qs = qs.filter(site__code=filters["site"])
    if filters["colorist"]:
        qs = qs.filter(colorist__username=filters["colorist"])
    context = {
        "page": _page(request, qs),
        "q": request.GET.get("q", ""),
        **filters,
        "states": State.choices,
        "sites": Site.objects.all(),
        "colorists": services.colorists(),
    }
    template = "colour_routing/files.html"
    return render(request, f"{template}#results" if request.htmx else template, context)


@role_required(*READERS)
def file_detail(request, pk):
    media = get_object_or_404(
        MediaFile.objects.select_related("site", "destination", "colorist", "duplicate_of"), pk=pk
    )
    context = {
        "file": media,
        "events": file_events(media),
        "jobs": media.transfer_jobs.select_related("source", "destination", "run"),
        "attempts": media.mam_attempts.all(),
        "actions": services.allowed_actions(media, request.user),
        "sites": Site.objects.exclude(pk=media.site_id),
        "colorists": services.colorists(),
        "live": media.state == State.TRANSFERRING
        or media.transfer_jobs.filter(status__in=TransferJob.UNFINISHED).exists(),
    }
    template = "colour_routing/file.html"
    return render(request, f"{template}#live" if request.htmx else template, context)


ACTIONS = {
    "validate": lambda f, u, p: services.file_validate(media=f, by=u),
    "queue": lambda f, u, p: services.file_queue(
        media=f, by=u, destination=Site.objects.filter(code=p.get("destination")).first()
    ),
    "start_transfer": lambda f, u, p: services.file_start_transfer(media=f, by=u),
    "complete_transfer": lambda f, u, p: services.file_complete_transfer(media=f, by=u),
    "assign": lambda f, u, p: services.file_assign(
        media=f, by=u, colorist=get_user_model().objects.filter(username=p.get("colorist")).first()
    ),
    "start": lambda f, u, p: services.file_start(media=f, by=u),
    "deliver": lambda f, u, p: services.file_deliver(media=f, by=u),
    "archive": lambda f, u, p: services.file_archive(media=f, by=u),
    "reject": lambda f, u, p: services.file_reject(media=f, by=u, reason=p.get("reason", "")),
}


@role_required(*READERS)
@require_POST
def file_action(request, pk, action):
    if action not in ACTIONS:
        raise Http404("No such action.")
    media = get_object_or_404(MediaFile, pk=pk)
    try:
        media = ACTIONS[action](media, request.user, request.POST)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        media.refresh_from_db()
        messages.success(request, f"{media.filename}: {media.get_state_display()}.")
    return redirect(media)


@role_required("engineer", "readonly")
def transfers(request):
    qs = TransferJob.objects.select_related("file", "source", "destination", "run")
    status = request.GET.get("status", "")
    if status in TransferJob.Status.values:
        qs = qs.filter(status=status)
    context = {
        "page": _page(request, qs),
        "status": status,
        "statuses": TransferJob.Status.choices,
        "live": TransferJob.objects.filter(status__in=TransferJob.UNFINISHED).exists(),
    }
    template = "colour_routing/transfers.html"
    return render(request, f"{template}#results" if request.htmx else template, context)


@role_required("engineer", "readonly")
def sites(request):
    return render(
        request, "colour_routing/sites.html", {"sites": Site.objects.all(), "new_key": None}
    )


@role_required("admin")
@require_POST
def site_create(request):
    try:
        site, key = services.site_create(
            by=request.user,
            code=request.POST.get("code", ""),
            name=request.POST.get("name", ""),
            storage_root=request.POST.get("storage_root", ""),
        )
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect("colour_routing:sites")
    return render(
        request, "colour_routing/sites.html", {"sites": Site.objects.all(), "new_key": (site, key)}
    )


@role_required("admin")
@require_POST
def site_rotate(request, code):
    site = get_object_or_404(Site, code=code)
    key = services.site_rotate_key(site=site, by=request.user)
    return render(
        request, "colour_routing/sites.html", {"sites": Site.objects.all(), "new_key": (site, key)}
    )


@role_required("engineer", "readonly")
def audit(request):
    verb, actor = request.GET.get("verb", ""), request.GET.get("actor", "")
    context = {
        "page": _page(request, audit_events(verb=verb, actor=actor), 50),
        "verb": verb,
        "actor": actor,
    }
    template = "colour_routing/audit.html"
    return render(request, f"{template}#results" if request.htmx else template, context)
