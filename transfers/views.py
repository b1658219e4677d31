from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from pipeline_project.accounts.permissions import role_required
from pipeline_project.errors import DomainError
from pipeline_project.studio.audit import events_for
from pipeline_project.studio.models import JobRun

from . import services, staging
from .forms import CommentForm, ReasonForm, TransferEditForm, TransferForm
from .models import ACTION_LABELS, Priority, Status, Transfer

# Statuses during which the detail page polls for progress.
LIVE = (
    Status.APPROVED,
    Status.SCANNING,
    Status.SCAN_ERROR,
    Status.TRANSFERRING,
    Status.TRANSFERRED,
)


def get_transfer_for_user(user, reference) -> Transfer:
    return get_object_or_404(
        Transfer.objects.for_user(user).select_related("created_by", "project", "shot", "asset"),
        reference=reference,
    )


def _listing(request, queryset, title, template="transfers/list.html"):
    status = request.GET.get("status", "")
    priority = request.GET.get("priority", "")
    q = request.GET.get("q", "").strip()
    if status in Status.values:
        queryset = queryset.filter(status=status)
    if priority in Priority.values:
        queryset = queryset.filter(priority=priority)
    page = Paginator(queryset.search(q).select_related("created_by", "project"), 25).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "title": title,
        "q": q,
        "status": status,
        "priority": priority,
        "statuses": Status.choices,
        "priorities": Priority.choices,
    }
    return render(request, f"{template}#results" if request.htmx else template, context)


@login_required
def transfer_list(request):
    return _listing(request, Transfer.objects.filter(created_by=request.user), "My transfers")


@role_required("team_lead", "supervisor", "line_producer")
def approvals(request):
    return _listing(request, Transfer.objects.awaiting(request.user), "Waiting for my approval")


@role_required("data_team")
def data_team_queue(request):
    return _listing(request, Transfer.objects.data_team_queue(), "Data team queue")


@role_required("it")
def it_queue(request):
    return _listing(request, Transfer.objects.it_queue(), "IT queue")


@role_required("artist")
def transfer_new(request):
    form = TransferForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            transfer = services.transfer_create(
                by=request.user,
                name=data["name"],
                description=data["description"],
                priority=data["priority"],
                project=data["project"],
                shot=data["shot"],
                asset=data["asset"],
                paths=data["paths"],
                uploads=data["uploads"],
                submit="submit" in request.POST,
            )
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, f"{transfer.reference} created with {transfer.file_count} files."
            )
            return redirect(transfer)
    return render(
        request,
        "transfers/new.html",
        {"form": form, "browse": _browse(request)},
        status=400 if form.errors else 200,
    )


def _browse(request, path=None):
    path = request.GET.get("browse", "") if path is None else path
    try:
        return {"path": path, "entries": staging.list_dir(path), "error": None}
    except DomainError as exc:
        return {"path": "", "entries": [], "error": str(exc)}


@login_required
def staging_browser(request):
    """One folder of the staging picker (an HTMX fragment, or the new-transfer page)."""
    if not request.htmx:
        return redirect(f"/transfers/new/?browse={request.GET.get('path', '')}")
    return render(
        request,
        "transfers/_staging.html",
        {"browse": _browse(request, request.GET.get("path", ""))},
    )


@login_required
def transfer_detail(request, reference):
    transfer = get_transfer_for_user(request.user, reference)
    context = {
        "transfer": transfer,
        "files": transfer.files.all(),
        "events": events_for(transfer).order_by("created_at"),
        "approvals": transfer.approvals.select_related("decided_by"),
        "actions": services.allowed_actions(transfer, request.user),
        **_live(transfer),
        "comment_form": CommentForm(),
        "reason_form": ReasonForm(),
    }
    return render(request, "transfers/detail.html", context)


def _live(transfer):
    """The latest job on the request, and whether the page should keep polling: only while that
    job is queued, running or waiting to retry, in a state where work goes on."""
    run = _current_run(transfer)
    active = (JobRun.Status.QUEUED, JobRun.Status.RUNNING, JobRun.Status.RETRYING)
    return {
        "run": run,
        "live": transfer.status in LIVE and run is not None and run.status in active,
    }


def _current_run(transfer):
    return (
        JobRun.objects.filter(target_id=str(transfer.pk), target_type__model="transfer")
        .order_by("-created_at")
        .first()
    )


@login_required
def transfer_progress(request, reference):
    """The live part of the detail page, polled every 2 s while work is under way."""
    transfer = get_transfer_for_user(request.user, reference)
    context = {
        "transfer": transfer,
        **_live(transfer),
        "files": transfer.files.all(),
    }
    return render(request, "transfers/detail.html#live", context)


ACTIONS = {
    "submit": lambda t, u, p: services.transfer_submit(transfer=t, by=u),
    "approve": lambda t, u, p: services.transfer_approve(
        transfer=t, by=u, comment=p.get("comment", "")
    ),
    "reject": lambda t, u, p: services.transfer_reject(
        transfer=t, by=u, reason=p.get("reason", "")
    ),
    "resubmit": lambda t, u, p: services.transfer_resubmit(transfer=t, by=u),
    "cancel": lambda t, u, p: services.transfer_cancel(transfer=t, by=u),
    "rescan": lambda t, u, p: services.transfer_rescan(transfer=t, by=u),
    "override_unscanned": lambda t, u, p: services.transfer_override_unscanned(
        transfer=t, by=u, reason=p.get("reason", "")
    ),
    "start_transfer": lambda t, u, p: services.transfer_start_transfer(transfer=t, by=u),
    "retry_delivery": lambda t, u, p: services.transfer_retry_delivery(transfer=t, by=u),
}


@login_required
@require_POST
def transfer_action(request, reference, action):
    if action not in ACTIONS:
        raise Http404("No such action.")
    transfer = get_transfer_for_user(request.user, reference)
    # The status the person saw decides races: a stale page gets "already approved by …".
    seen = request.POST.get("seen_status")
    if seen in Status.values:
        transfer.status = seen
    try:
        transfer = ACTIONS[action](transfer, request.user, request.POST)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        transfer.refresh_from_db()  # inline jobs may have moved it on already
        messages.success(
            request,
            f"{ACTION_LABELS[action]} — done. {transfer.reference} is now "
            f"{transfer.get_status_display()}.",
        )
    return redirect(transfer)


@login_required
def transfer_edit(request, reference):
    transfer = get_transfer_for_user(request.user, reference)
    if services.acting_role(transfer, request.user, "edit") is None:
        messages.error(request, f"{transfer.reference} cannot be edited now.")
        return redirect(transfer)
    initial = {
        "name": transfer.name,
        "description": transfer.description,
        "priority": transfer.priority,
    }
    form = TransferEditForm(
        request.POST or None,
        request.FILES or None,
        user=request.user,
        transfer=transfer,
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.transfer_edit(
                transfer=transfer,
                by=request.user,
                name=data["name"],
                description=data["description"],
                priority=data["priority"],
                add_paths=data["paths"],
                uploads=data["uploads"],
                remove_paths=data["remove"],
            )
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{transfer.reference} updated.")
            return redirect(transfer)
    return render(
        request,
        "transfers/edit.html",
        {"form": form, "transfer": transfer, "browse": _browse(request)},
        status=400 if form.errors else 200,
    )
