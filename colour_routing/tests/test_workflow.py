"""The file state machine: each action by role and state, audited; every illegal transition
refused with a clear message (409 in the API)."""

import pytest
from django.urls import reverse

from colour_routing import services
from colour_routing.models import ALLOWED_TRANSITIONS, MediaFile, State
from colour_routing.selectors import file_events
from pipeline_project.errors import DomainError, RoleRequired
from pipeline_project.studio.models import Notification

from .conftest import media_bytes

pytestmark = pytest.mark.django_db


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


def test_the_whole_chain_by_the_right_roles(tustin, nashville, colour_people, settings):
    engineer, colorist = colour_people["engineer"], colour_people["colorist"]
    media = registered(tustin)
    media = services.file_validate(media=media, by=engineer)
    media = services.file_queue(media=media, by=engineer, destination=nashville)
    assert media.state == State.QUEUED and media.destination == nashville
    with pytest.raises(DomainError, match="not been uploaded"):
        services.file_start_transfer(media=media, by=engineer)
    MediaFile.objects.filter(pk=media.pk).update(state=State.TRANSFERRED)
    media.refresh_from_db()
    media = services.file_assign(media=media, by=engineer, colorist=colorist)
    assert Notification.objects.filter(
        recipient=colorist, title__contains="assigned to you"
    ).exists()
    with pytest.raises(RoleRequired, match="assigned colorist"):
        services.file_start(media=media, by=engineer)
    media = services.file_start(media=media, by=colorist)
    assert media.state == State.IN_PROGRESS
    verbs = [e.verb for e in file_events(media)]
    assert verbs == [
        "colour.file.detected",
        "colour.file.validate",
        "colour.file.queue",
        "colour.file.assign",
        "colour.file.start",
    ]


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
