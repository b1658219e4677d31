"""The file state machine: each action by role and state, audited; every illegal transition
refused with a clear message (409 in the API)."""

import io
import itertools
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from colour_routing import services
from colour_routing.models import ALLOWED_TRANSITIONS, MediaFile, State, TransferJob
from colour_routing.selectors import file_events
from pipeline_project.errors import DomainError, IllegalTransition, RoleRequired
from pipeline_project.studio.models import JobRun, Notification

from .conftest import media_bytes

pytestmark = pytest.mark.django_db

CHAIN = [
    State.DETECTED,
    State.VALIDATED,
    State.QUEUED,
    State.TRANSFERRING,
    State.TRANSFERRED,
    State.COLORIST_ASSIGNED,
    State.IN_PROGRESS,
    State.DELIVERED_TO_MAM,
    State.ARCHIVED,
]


@pytest.fixture
def tustin(make_site):
    return make_site("tustin")[0]


@pytest.fixture
def nashville(make_site):
    return make_site("nashville")[0]


def registered(site, path="A001/clip.mov", size=None):
    data, sha = media_bytes(path, size or 100_000)
    media, _ = services.file_register(site=site, path=path, size=len(data), sha256=sha)
    return media


def test_validation_checks_type_size_and_hash_and_flags_duplicates(tustin, colour_people):
    engineer = colour_people["engineer"]
    good = services.file_validate(media=registered(tustin), by=engineer)
    assert good.state == State.VALIDATED and good.duplicate_of is None

    wrong_type = services.file_validate(media=registered(tustin, "notes.txt"), by=engineer)
    assert (
        wrong_type.state == State.REJECTED
        and ".txt is not an allowed media type" in wrong_type.state_reason
    )

    empty, _ = services.file_register(site=tustin, path="empty.mov", size=0, sha256="")
    empty = services.file_validate(media=empty, by=engineer)
    assert "the file is empty" in empty.state_reason and "no SHA-256" in empty.state_reason

    copy = registered(tustin, "A001/clip.mov")  # same content registered again elsewhere
    copy = MediaFile.objects.create(
        site=tustin,
        path="B/clip_copy.mov",
        filename="clip_copy.mov",
        size=copy.size,
        sha256=copy.sha256,
    )
    copy = services.file_validate(media=copy, by=engineer)
    assert (
        copy.state == State.VALIDATED
        and copy.duplicate_of == good
        and "Same content" in copy.state_reason
    )


def test_the_whole_chain_from_detected_to_archived_by_the_right_roles(
    tustin, nashville, colour_people, settings, sites_root, django_capture_on_commit_callbacks
):
    """Every step through the services (the copy and the MAM delivery as inline jobs), each
    by the role it needs, each audited with the state it left and the state it reached."""
    settings.JOBS_INLINE = True
    engineer, colorist = colour_people["engineer"], colour_people["colorist"]
    data, sha = media_bytes("A001/clip.mov", 300_000)
    media, created = services.file_register(
        site=tustin, path="A001/clip.mov", size=len(data), sha256=sha
    )
    assert created and media.state == State.DETECTED
    media = services.file_store_upload(media=media, stream=io.BytesIO(data), length=len(data))
    media = services.file_validate(media=media, by=engineer)
    media = services.file_queue(media=media, by=engineer, destination=nashville)
    assert media.state == State.QUEUED and media.destination == nashville
    with django_capture_on_commit_callbacks(execute=True):
        services.file_start_transfer(media=media, by=engineer)
    media.refresh_from_db()
    assert media.state == State.TRANSFERRED
    assert media.transfer_jobs.get().verified_sha256 == sha
    with pytest.raises(RoleRequired):
        services.file_assign(media=media, by=colorist, colorist=colorist)
    media = services.file_assign(media=media, by=engineer, colorist=colorist)
    assert Notification.objects.filter(
        recipient=colorist, title__contains="assigned to you"
    ).exists()
    with pytest.raises(RoleRequired, match="assigned colorist"):
        services.file_start(media=media, by=engineer)
    media = services.file_start(media=media, by=colorist)
    with django_capture_on_commit_callbacks(execute=True):
        services.file_deliver(media=media, by=colorist)
    media.refresh_from_db()
    assert media.state == State.DELIVERED_TO_MAM
    assert (settings.MAM_DROP_FOLDER / "clip.mov").read_bytes() == data
    with pytest.raises(RoleRequired):
        services.file_archive(media=media, by=colorist)
    media = services.file_archive(media=media, by=engineer)
    assert media.state == State.ARCHIVED

    events = list(file_events(media))
    assert [(e.actor_name, e.verb) for e in events] == [
        ("", "colour.file.detected"),
        ("", "colour.file.uploaded"),
        ("c_engineer", "colour.file.validate"),
        ("c_engineer", "colour.file.queue"),
        ("c_engineer", "colour.file.start_transfer"),
        ("", "colour.file.complete_transfer"),
        ("c_engineer", "colour.file.assign"),
        ("c_colorist", "colour.file.start"),
        ("c_colorist", "colour.file.delivery_requested"),
        ("", "colour.file.deliver"),
        ("c_engineer", "colour.file.archive"),
    ]
    moves = [(e.before["state"], e.after["state"]) for e in events if e.before]
    assert moves == list(itertools.pairwise(CHAIN))


def test_only_colorists_are_assignable_and_only_the_assignee_starts(
    tustin, colour_people, make_user
):
    media = registered(tustin)
    MediaFile.objects.filter(pk=media.pk).update(state=State.TRANSFERRED)
    with pytest.raises(DomainError, match="colorist role"):
        services.file_assign(
            media=media, by=colour_people["engineer"], colorist=colour_people["readonly"]
        )
    media = services.file_assign(
        media=media, by=colour_people["engineer"], colorist=colour_people["colorist"]
    )
    other = make_user("colorist")
    with pytest.raises(RoleRequired):
        services.file_start(media=media, by=other)


ROLE_EXPECTATIONS = {
    "validate": {"engineer", "admin"},
    "queue": {"engineer", "admin"},
    "archive": {"engineer", "admin"},
    "reject": {"engineer", "admin"},
}


@pytest.mark.parametrize("action", sorted(ROLE_EXPECTATIONS))
def test_readonly_and_artists_change_nothing(action, tustin, colour_people):
    media = registered(tustin, f"{action}.mov")
    state = ALLOWED_TRANSITIONS[action][0][0]
    MediaFile.objects.filter(pk=media.pk).update(state=state)
    media.refresh_from_db()
    allowed = {
        who for who, user in colour_people.items() if services.acting_role(media, user, action)
    }
    assert allowed == ROLE_EXPECTATIONS[action]


def test_every_illegal_transition_is_refused_with_a_clear_409(
    tustin, nashville, colour_people, api_client
):
    admin = colour_people["admin"]
    api_client.force_authenticate(admin)
    calls = {
        "validate": {},
        "queue": {"destination": "nashville"},
        "start-transfer": {},
        "complete-transfer": {},
        "assign": {"colorist": colour_people["colorist"].username},
        "start": {},
        "deliver": {},
        "archive": {},
        "reject": {"reason": "bad"},
    }
    refused = 0
    for state in State.values:
        media = registered(tustin, f"{state}.mov")
        MediaFile.objects.filter(pk=media.pk).update(
            state=state, colorist=colour_people["colorist"]
        )
        for action, body in calls.items():
            key = action.replace("-", "_")
            if state in ALLOWED_TRANSITIONS[key][0]:
                continue
            response = api_client.post(
                reverse(f"api:colour-file-{action}", args=[media.pk]), body, format="json"
            )
            assert response.status_code == 409, (state, action, response.json())
            assert "is not possible now" in response.json()["detail"]
            refused += 1
            assert MediaFile.objects.get(pk=media.pk).state == state
    assert refused > 60


def test_reject_needs_a_reason_and_is_audited(tustin, colour_people, api_client):
    media = registered(tustin)
    api_client.force_authenticate(colour_people["engineer"])
    url = reverse("api:colour-file-reject", args=[media.pk])
    assert api_client.post(url, {"reason": ""}, format="json").status_code == 400
    response = api_client.post(url, {"reason": "Wrong camera roll"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    audit = api_client.get(reverse("api:colour-file-audit", args=[media.pk])).json()
    assert (
        audit[-1]["verb"] == "colour.file.reject"
        and audit[-1]["after"]["reason"] == "Wrong camera roll"
    )


def test_readonly_sees_everything_and_changes_nothing(tustin, colour_people, api_client):
    media = registered(tustin)
    api_client.force_authenticate(colour_people["readonly"])
    assert api_client.get(reverse("api:colour-files")).json()["count"] == 1
    assert api_client.get(reverse("api:colour-stats")).json()["per_state"]["detected"] == 1
    response = api_client.post(
        reverse("api:colour-file-validate", args=[media.pk]), {}, format="json"
    )
    assert response.status_code == 403
    assert (
        api_client.post(
            reverse("api:colour-sites"), {"code": "x", "name": "X"}, format="json"
        ).status_code
        == 403
    )


def test_artists_have_no_access(tustin, colour_people, api_client, client):
    api_client.force_authenticate(colour_people["artist"])
    assert api_client.get(reverse("api:colour-files")).status_code == 403
    client.force_login(colour_people["artist"])
    assert client.get(reverse("colour_routing:files")).status_code == 403


def test_illegal_actions_in_the_pages_show_a_message(tustin, colour_people, client):
    media = registered(tustin)
    client.force_login(colour_people["engineer"])
    response = client.post(
        reverse("colour_routing:file-action", args=[media.pk, "archive"]), follow=True
    )
    assert "is not possible now" in response.content.decode()
    assert MediaFile.objects.get(pk=media.pk).state == State.DETECTED


def test_a_transfer_can_be_retried_once_its_job_failed_or_its_worker_went_silent(
    settings, uploaded_file, colour_people
):
    settings.JOBS_INLINE = True  # never runs here: the test's transaction does not commit
    engineer = colour_people["engineer"]
    media = services.file_start_transfer(media=uploaded_file(), by=engineer)
    job = media.transfer_jobs.get()

    def retry_offered():
        media.refresh_from_db()
        return ("start_transfer", "Retry transfer") in services.allowed_actions(media, engineer)

    assert not retry_offered()  # queued
    with pytest.raises(IllegalTransition, match="under way"):
        services.file_start_transfer(media=media, by=engineer)
    TransferJob.objects.filter(pk=job.pk).update(status=TransferJob.Status.RUNNING)
    JobRun.objects.filter(pk=job.run_id).update(status="running", started_at=timezone.now())
    assert not retry_offered()  # running, and heard from
    long_ago = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER + 1)
    JobRun.objects.filter(pk=job.run_id).update(started_at=long_ago, updated_at=long_ago)
    assert retry_offered()  # its worker died
    TransferJob.objects.filter(pk=job.pk).update(status=TransferJob.Status.FAILED)
    assert retry_offered()

    services.file_start_transfer(media=media, by=engineer)
    assert media.transfer_jobs.count() == 2 and not retry_offered()
