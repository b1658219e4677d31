from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from pipeline_project.accounts.permissions import role_required

from . import services
from .dashboard import app_cards
from .health import health, public_report
from .models import AuditEvent, JobRun, Notification, Project


def _page(request, queryset, per_page=25):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


@login_required
def home(request):
    user = request.user
    projects = (
        Project.objects.visible_to(user)
        .active()
        .annotate(
            shot_count=Count("shots", distinct=True), asset_count=Count("assets", distinct=True)
        )
        .order_by("code")[:8]
    )
    context = {
        "projects": projects,
        "notifications": user.notifications.all()[:5],
        "recent_events": AuditEvent.objects.select_related("actor")[:10]
        if user.has_role("admin", "readonly")
        else None,
        "running_jobs": JobRun.objects.visible_to(user).running()[:5],
        "status": health() if user.has_role("admin", "it", "engineer") else None,
        "app_cards": app_cards(request),
    }
    return render(request, "studio/home.html", context)


@login_required
def project_list(request):
    qs = (
        Project.objects.visible_to(request.user)
        .annotate(
            shot_count=Count("shots", distinct=True),
            asset_count=Count("assets", distinct=True),
            member_count=Count("memberships", distinct=True),
        )
        .order_by("code")
    )
    q = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    if q:
        qs = qs.filter(Q(code__icontains=q) | Q(name__icontains=q))
    if status in Project.Status.values:
        qs = qs.filter(status=status)
    context = {
        "page": _page(request, qs),
        "q": q,
        "status": status,
        "statuses": Project.Status.choices,
    }
    template = "studio/projects.html#results" if request.htmx else "studio/projects.html"
    return render(request, template, context)


def get_project_for_user(user, code) -> Project:
    return get_object_or_404(Project.objects.visible_to(user), code=code)


@login_required
def project_detail(request, code):
    project = get_project_for_user(request.user, code)
    context = {
        "project": project,
        "memberships": project.memberships.select_related("user"),
        "sequences": project.sequences.annotate(shot_count=Count("shots")),
        "shots": project.shots.select_related("sequence")[:200],
        "assets": project.assets.prefetch_related("tags")[:200],
    }
    return render(request, "studio/project.html", context)


@login_required
def notification_list(request):
    qs = request.user.notifications.all()
    if request.GET.get("unread"):
        qs = qs.unread()
    return render(
        request,
        "studio/notifications.html",
        {"page": _page(request, qs), "unread_only": bool(request.GET.get("unread"))},
    )


@login_required
@require_POST
def notifications_read(request):
    ids = request.POST.getlist("id") or None
    count = services.notifications_mark_read(user=request.user, ids=ids)
    if request.htmx:
        return render(
            request,
            "studio/_bell.html",
            {"unread_notifications": request.user.notifications.unread().count()},
        )
    messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} read.")
    return redirect(request.POST.get("next") or "studio:notifications")


@login_required
def notification_open(request, pk):
    note = get_object_or_404(Notification, pk=pk, recipient=request.user)
    services.notifications_mark_read(user=request.user, ids=[note.pk])
    return redirect(note.url or "studio:notifications")


@role_required("readonly", "it")
def audit_log(request):
    qs = AuditEvent.objects.select_related("actor", "target_type")
    q = request.GET.get("q", "").strip()
    verb = request.GET.get("verb", "").strip()
    actor = request.GET.get("actor", "").strip()
    if q:
        qs = qs.filter(Q(target_repr__icontains=q) | Q(verb__icontains=q))
    if verb:
        qs = qs.filter(verb__startswith=verb)
    if actor:
        qs = qs.filter(actor_name=actor)
    context = {"page": _page(request, qs, 50), "q": q, "verb": verb, "actor": actor}
    template = "studio/audit.html#results" if request.htmx else "studio/audit.html"
    return render(request, template, context)


@login_required
def job_detail(request, pk):
    run = get_object_or_404(JobRun.objects.visible_to(request.user), pk=pk)
    template = "studio/job.html#progress" if request.htmx else "studio/job.html"
    return render(request, template, {"run": run})


@require_safe  # GET or HEAD: load balancers probe with either
@never_cache
def healthz(request):
    report = health()
    # Load balancers need only the verdict; error text and versions are for staff.
    user = request.user
    if not (user.is_authenticated and user.has_role("admin", "it", "engineer")):
        report = public_report(report)
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
