"""The HTML pages: lists, inbox, queues, new/detail/edit, live progress, dashboard cards."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from transfers import services
from transfers.models import Status, Transfer

pytestmark = pytest.mark.django_db


def test_new_transfer_page_picks_staging_and_uploads_and_submits(roots, people, project, client):
    from pipeline_project.studio.tests.factories import MembershipFactory

    MembershipFactory(user=people["artist"], project=project)
    client.force_login(people["artist"])
    page = client.get(reverse("transfers:new"))
    assert page.status_code == 200 and 'value="sq010"' in page.content.decode()

    response = client.post(
        reverse("transfers:new"),
        {
            "name": "Comp v3",
            "priority": "high",
            "project": project.pk,
            "paths": ["sq010/sh0010/renders"],
            "uploads": [SimpleUploadedFile("notes.txt", b"see frame 1002")],
            "submit": "1",
        },
    )
    transfer = Transfer.objects.get()
    assert response.status_code == 302 and response["Location"] == transfer.get_absolute_url()
    assert transfer.status == Status.PENDING_TEAM_LEAD and transfer.file_count == 3
    assert (
        roots.STAGING_ROOT / transfer.get_upload_dir() / "notes.txt"
    ).read_bytes() == b"see frame 1002"


def test_new_transfer_errors_are_shown_inline_and_nothing_is_created(roots, people, client):
    client.force_login(people["artist"])
    response = client.post(reverse("transfers:new"), {"name": "", "priority": "normal"})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    response = client.post(
        reverse("transfers:new"), {"name": "x", "priority": "normal", "paths": ["../../etc"]}
    )
    assert response.status_code == 400 and "outside the staging area" in response.content.decode()
    assert not Transfer.objects.exists()


def test_lists_filter_and_htmx_returns_only_the_results(new_transfer, people, client):
    a = new_transfer(name="Dragon textures", priority="urgent")
    new_transfer(name="Forest lighting")
    client.force_login(people["artist"])
    page = client.get(reverse("transfers:list"), {"q": "dragon"}).content.decode()
    assert a.reference in page and "Forest lighting" not in page
    fragment = client.get(
        reverse("transfers:list"), {"priority": "urgent"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="results"') and "Dragon textures" in fragment
    assert "Forest lighting" not in fragment


def test_approvals_inbox_shows_what_waits_for_my_role(new_transfer, people, client):
    waiting = services.transfer_submit(transfer=new_transfer(name="Waiting"), by=people["artist"])
    new_transfer(name="Draft only")
    client.force_login(people["team_lead"])
    page = client.get(reverse("transfers:approvals")).content.decode()
    assert waiting.reference in page and "Draft only" not in page
    client.force_login(people["supervisor"])
    assert waiting.reference not in client.get(reverse("transfers:approvals")).content.decode()
    client.force_login(people["artist"])
    assert client.get(reverse("transfers:approvals")).status_code == 403


def test_detail_shows_the_actions_my_role_may_take_and_they_work(new_transfer, people, client):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    client.force_login(people["supervisor"])
    assert 'data-action="approve"' not in client.get(transfer.get_absolute_url()).content.decode()

    client.force_login(people["team_lead"])
    page = client.get(transfer.get_absolute_url()).content.decode()
    assert 'data-action="approve"' in page and 'data-action="reject"' in page
    response = client.post(
        reverse("transfers:action", args=[transfer.reference, "reject"]),
        {"reason": "", "seen_status": transfer.status},
        follow=True,
    )
    assert "Say why" in response.content.decode()
    approved = client.post(
        reverse("transfers:action", args=[transfer.reference, "approve"]),
        {"comment": "ok", "seen_status": transfer.status},
        follow=True,
    )
    transfer.refresh_from_db()
    assert transfer.status == Status.PENDING_SUPERVISOR
    assert f"Approve — done. {transfer.reference} is now Pending Supervisor." in (
        approved.content.decode()
    )

    stale = client.post(
        reverse("transfers:action", args=[transfer.reference, "approve"]),
        {"seen_status": "pending_team_lead"},
        follow=True,
    )
    assert "already approved at the Team Lead stage by team_lead1" in stale.content.decode()


def test_other_artists_cannot_see_my_transfer(new_transfer, make_user, client):
    transfer = new_transfer()
    client.force_login(make_user("artist"))
    assert client.get(transfer.get_absolute_url()).status_code == 404


def test_progress_partial_polls_while_live_and_stops_after(new_transfer, people, client):
    from datetime import timedelta

    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from pipeline_project.studio.models import JobRun

    transfer = new_transfer()
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.SCANNING)
    run = JobRun.objects.create(
        name=f"Scan {transfer.reference}",
        func="transfers.jobs.scan_transfer",
        queue="scanning",
        unit="bytes",
        status=JobRun.Status.RUNNING,
        done=13_502,
        total=54_008,
        message="Scanning file 2 of 3: sq010/sh0010/renders/comp_v3.1001.exr",
        started_at=timezone.now() - timedelta(seconds=30),
        target_type=ContentType.objects.get_for_model(Transfer),
        target_id=str(transfer.pk),
    )
    client.force_login(people["artist"])
    url = reverse("transfers:progress", args=[transfer.reference])
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="live"') and 'hx-trigger="every 2s"' in fragment
    assert "<html" not in fragment  # only the fragment
    # Bytes done of total, files (in the message), percent and an ETA at the rate so far (90 s).
    assert "13.2\xa0KB of 52.7\xa0KB" in fragment and "file 2 of 3" in fragment
    assert "25%" in fragment
    assert "about 90 s left" in fragment or "about 89 s left" in fragment

    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.SUCCEEDED, done=54_008)
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.DELIVERED)
    assert "hx-trigger" not in client.get(url, headers={"HX-Request": "true"}).content.decode()


def test_page_stops_polling_when_no_job_is_at_work(new_transfer, people, client):
    # Scan error with its retry run failed for good: nothing will change by itself.
    transfer = new_transfer()
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.SCAN_ERROR)
    client.force_login(people["artist"])
    page = client.get(transfer.get_absolute_url()).content.decode()
    assert 'hx-trigger="every 2s"' not in page


def test_edit_page_changes_a_rejected_request(new_transfer, people, client):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    transfer = services.transfer_reject(
        transfer=transfer, by=people["team_lead"], reason="wrong plate"
    )
    client.force_login(people["artist"])
    response = client.post(
        reverse("transfers:edit", args=[transfer.reference]),
        {
            "name": "Comp v4",
            "priority": "normal",
            "description": "",
            "remove": ["sq010/sh0010/comp_v3.nk"],
        },
    )
    assert response.status_code == 302
    transfer.refresh_from_db()
    assert transfer.name == "Comp v4" and transfer.file_count == 2


def test_dashboard_has_transfer_cards_and_the_nav_lists_my_queues(new_transfer, people, client):
    from django.utils import timezone

    done = new_transfer(name="Done")
    Transfer.objects.filter(pk=done.pk).update(status=Status.DELIVERED, delivered_at=timezone.now())
    client.force_login(people["data_team"])
    page = client.get(reverse("studio:home")).content.decode()
    assert 'data-testid="transfers-card"' in page and 'data-testid="delivered-chart"' in page
    assert "52.7\xa0KB" in page  # the 54,008 delivered bytes
    assert reverse("transfers:data-team") in page and reverse("transfers:it") not in page
