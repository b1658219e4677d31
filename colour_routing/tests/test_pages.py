"""The colour-routing pages through the Django test client: what each shows, its filters and
pagination, the HTMX fragments, and who may see and do what."""

import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from colour_routing import services
from colour_routing.models import MediaFile, Site, State

from .conftest import media_bytes

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def attrs(html: str, name: str) -> list[str]:
    """The values of attribute `name` in the page, in order."""
    return re.findall(rf'\b{name}="([^"]*)"', html)


def text_of(html: str, name: str) -> str:
    match = re.search(rf'data-testid="{re.escape(name)}"[^>]*>([^<]*)<', html)
    assert match, f"no data-testid={name} in the page"
    return match.group(1).strip()


def site_status(html: str, code: str) -> str:
    match = re.search(rf'id="site-{code}".*?data-status="(\w+)"', html, re.S)
    assert match, f"site {code} not shown"
    return match.group(1)


def assert_fragment(html: str, element_id: str):
    """Only the HTMX fragment came: the element itself, no page around it."""
    assert html.lstrip().startswith(f'<div id="{element_id}"'), html[:200]
    assert "<html" not in html and 'class="sidebar"' not in html


@pytest.fixture
def sites(make_site):
    return {code: make_site(code)[0] for code in ("tustin", "nashville", "dallas")}


@pytest.fixture
def make_file(sites):
    """make_file(path, state, site="tustin", colorist=None) -> a registered file put in `state`
    (page tests need files in every state; the state machine itself is tested elsewhere)."""

    def make(path, state=State.DETECTED, site="tustin", colorist=None):
        data, sha = media_bytes(path, 5000)
        media, _ = services.file_register(site=sites[site], path=path, size=len(data), sha256=sha)
        MediaFile.objects.filter(pk=media.pk).update(state=state, colorist=colorist)
        media.refresh_from_db()
        return media

    return make


def get(client, user, name, *args, headers=None, **params):
    client.force_login(user)
    response = client.get(reverse(f"colour_routing:{name}", args=args), params, headers=headers)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_dashboard_counts_files_per_state_and_per_site(client, colour_people, make_file):
    make_file("a.mov")
    make_file("b.mov")
    make_file("c.mov", State.VALIDATED)
    make_file("d.mov", State.REJECTED)
    make_file("e.mov", State.IN_PROGRESS, site="dallas", colorist=colour_people["colorist"])

    html = get(client, colour_people["readonly"], "dashboard")

    assert text_of(html, "colour-total") == "5"
    counts = {state: text_of(html, f"count-{state}") for state in State.values}
    assert counts == dict.fromkeys(State.values, "0") | {
        "detected": "2",
        "validated": "1",
        "rejected": "1",
        "in_progress": "1",
    }
    assert [text_of(html, f"site-count-{code}") for code in ("tustin", "nashville", "dallas")] == [
        "4",
        "0",
        "1",
    ]
    assert 'data-testid="throughput-chart"' in html

    fragment = get(client, colour_people["colorist"], "dashboard", headers=HX)
    assert_fragment(fragment, "live")
    assert text_of(fragment, "count-detected") == "2"
    assert "Assigned to me" in fragment and "e.mov" in fragment


def test_a_site_is_offline_once_its_last_heartbeat_is_older_than_90_seconds(
    client, api_client, colour_people, sites
):
    now = timezone.now()
    Site.objects.filter(code="tustin").update(last_heartbeat_at=now - timedelta(seconds=85))
    Site.objects.filter(code="nashville").update(last_heartbeat_at=now - timedelta(seconds=91))
    expected = {"tustin": "online", "nashville": "offline", "dallas": "offline"}  # dallas: never

    for page in ("dashboard", "sites"):
        html = get(client, colour_people["engineer"], page)
        assert {code: site_status(html, code) for code in expected} == expected, page
    api_client.force_authenticate(colour_people["readonly"])
    listed = api_client.get(reverse("api:colour-sites")).json()
    assert {s["code"]: s["online"] for s in listed} == {
        code: status == "online" for code, status in expected.items()
    }
    html = get(client, colour_people["engineer"], "dashboard")
    assert "never seen" in html and "1 / 3" in html


def test_file_queue_filters_by_state_site_and_colorist_and_searches_path_and_hash(
    client, colour_people, make_file
):
    colorist = colour_people["colorist"]
    detected = make_file("A001/A001_C001.mov")
    rejected = make_file("A001/A001_C002.mov", State.REJECTED)
    graded = make_file("EDIT/reel1.mov", State.IN_PROGRESS, site="dallas", colorist=colorist)
    user = colour_people["engineer"]

    def listed(**params):
        return [int(pk) for pk in attrs(get(client, user, "files", **params), "data-file")]

    assert sorted(listed()) == sorted([detected.pk, rejected.pk, graded.pk])
    assert listed(state="rejected") == [rejected.pk]
    assert listed(site="dallas") == [graded.pk]
    assert listed(colorist=colorist.username) == [graded.pk]
    assert sorted(listed(q="a001/")) == sorted([detected.pk, rejected.pk])  # path, any case
    assert listed(q=graded.sha256[:12]) == [graded.pk]  # hash prefix
    assert listed(q="A001", state="detected", site="tustin") == [detected.pk]
    assert listed(state="no-such-state") != [], "an unknown state filters nothing out"
    assert "No files match." in get(client, user, "files", site="nashville")

    fragment = get(client, user, "files", headers=HX, state="rejected")
    assert_fragment(fragment, "results")
    assert attrs(fragment, "data-file") == [str(rejected.pk)]


def test_file_queue_pages_by_25_keeping_the_filters(client, colour_people, make_file):
    for i in range(30):
        make_file(f"R/clip_{i:02d}.mov")
    make_file("R/other.mov", State.VALIDATED)
    user = colour_people["colorist"]

    first = get(client, user, "files", state="detected")
    second = get(client, user, "files", state="detected", page=2)

    assert len(attrs(first, "data-file")) == 25 and len(attrs(second, "data-file")) == 5
    assert "Page 1 of 2 · 30 in all" in first
    assert "?state=detected&amp;page=2" in first
    assert set(attrs(first, "data-file")).isdisjoint(attrs(second, "data-file"))
    fragment = get(client, user, "files", headers=HX, state="detected", page=2)
    assert_fragment(fragment, "results")
    assert "Page 2 of 2" in fragment


@pytest.fixture
def transferred(sites, colour_people, settings, django_capture_on_commit_callbacks):
    """A file uploaded, validated, queued and copied to Nashville (inline job), by the services."""
    settings.JOBS_INLINE = True
    engineer = colour_people["engineer"]
    data, sha = media_bytes("A003/A003_C010.mov")
    media, _ = services.file_register(
        site=sites["tustin"], path="A003/A003_C010.mov", size=len(data), sha256=sha
    )
    media = services.file_store_upload(media=media, stream=io.BytesIO(data), length=len(data))
    media = services.file_validate(media=media, by=engineer)
    media = services.file_queue(media=media, by=engineer, destination=sites["nashville"])
    with django_capture_on_commit_callbacks(execute=True):
        services.file_start_transfer(media=media, by=engineer)
    media.refresh_from_db()
    assert media.state == State.TRANSFERRED, media.state_reason
    return media


def test_file_detail_shows_the_hash_chain_the_audit_trail_and_my_actions(
    client, colour_people, transferred
):
    engineer, colorist = colour_people["engineer"], colour_people["colorist"]
    html = get(client, engineer, "file", transferred.pk)

    assert text_of(html, "daemon-sha") == transferred.sha256
    assert text_of(html, "verified-sha") == transferred.sha256
    assert attrs(html, "data-verb") == [
        "colour.file.detected",
        "colour.file.uploaded",
        "colour.file.validate",
        "colour.file.queue",
        "colour.file.start_transfer",
        "colour.file.complete_transfer",
    ]
    assert attrs(html, "data-action") == ["assign", "reject"]
    assert f'action="/colour/files/{transferred.pk}/assign/"' in html
    assert attrs(get(client, colorist, "file", transferred.pk), "data-action") == []
    readonly = get(client, colour_people["readonly"], "file", transferred.pk)
    assert attrs(readonly, "data-action") == [] and "Nothing for you to do" in readonly

    services.file_assign(media=transferred, by=engineer, colorist=colorist)
    assert attrs(get(client, colorist, "file", transferred.pk), "data-action") == [
        "start",
        "reject",
    ]
    fragment = get(client, colorist, "file", transferred.pk, headers=HX)
    assert_fragment(fragment, "live")
    assert "data-action" not in fragment and text_of(fragment, "daemon-sha")
    assert attrs(fragment, "data-verb")[-1] == "colour.file.assign"


def test_an_action_from_the_page_is_done_by_the_service_and_redirects(
    client, colour_people, make_file
):
    media = make_file("A004/clip.mov")
    client.force_login(colour_people["engineer"])

    response = client.post(
        reverse("colour_routing:file-action", args=[media.pk, "validate"]), follow=True
    )

    assert response.redirect_chain == [(media.get_absolute_url(), 302)]
    assert "clip.mov: Validated." in response.content.decode()
    assert MediaFile.objects.get(pk=media.pk).state == State.VALIDATED
    client.force_login(colour_people["readonly"])
    response = client.post(
        reverse("colour_routing:file-action", args=[media.pk, "queue"]),
        {"destination": "nashville"},
        follow=True,
    )
    assert "needs engineer" in response.content.decode()
    assert MediaFile.objects.get(pk=media.pk).state == State.VALIDATED


def test_the_sites_page_shows_a_new_key_once_on_create_and_on_rotate(
    client, colour_people, sites_root
):
    admin = colour_people["admin"]
    client.force_login(admin)

    created = client.post(
        reverse("colour_routing:site-create"),
        {"code": "london", "name": "London", "storage_root": "london"},
    ).content.decode()
    key = text_of(created, "new-site-key")
    assert key.startswith("sk_london_") and services.site_for_key(key).code == "london"
    assert "you will not see it again" in created
    again = get(client, admin, "sites")
    assert key not in again and 'data-testid="new-site-key"' not in again
    assert (sites_root / "london").is_dir()

    rotated = client.post(reverse("colour_routing:site-rotate", args=["london"])).content.decode()
    new_key = text_of(rotated, "new-site-key")
    assert new_key != key and services.site_for_key(new_key).code == "london"
    assert services.site_for_key(key) is None
    assert new_key not in get(client, admin, "sites")


def test_only_admins_add_sites_or_rotate_keys(client, colour_people, sites):
    for role in ("engineer", "readonly"):
        html = get(client, colour_people[role], "sites")
        assert "Add a site" not in html and "Rotate key" not in html
        assert client.post(reverse("colour_routing:site-create"), {"code": "x"}).status_code == 403
        rotate = client.post(reverse("colour_routing:site-rotate", args=["tustin"]))
        assert rotate.status_code == 403
    assert not Site.objects.filter(code="x").exists()
    assert "Add a site" in get(client, colour_people["admin"], "sites")


def test_the_audit_log_filters_by_action_and_actor(client, colour_people, make_file):
    engineer, admin = colour_people["engineer"], colour_people["admin"]
    first, second = make_file("one.mov"), make_file("two.mov")
    services.file_validate(media=first, by=engineer)
    services.file_reject(media=second, by=admin, reason="Wrong reel")
    user = colour_people["readonly"]

    everything = attrs(get(client, user, "audit"), "data-verb")
    assert everything == [
        "colour.file.reject",
        "colour.file.validate",
        "colour.file.detected",
        "colour.file.detected",
        "colour.site.created",
        "colour.site.created",
        "colour.site.created",
    ]
    assert attrs(get(client, user, "audit", verb="file.reject"), "data-verb") == [
        "colour.file.reject"
    ]
    by_engineer = get(client, user, "audit", actor=engineer.username)
    assert attrs(by_engineer, "data-actor") == [engineer.username]
    assert attrs(get(client, user, "audit", verb="site"), "data-actor") == [admin.username] * 3
    fragment = get(client, user, "audit", headers=HX, verb="file.reject", actor=admin.username)
    assert_fragment(fragment, "results")
    assert "Wrong reel" in fragment
    assert "No events match." in get(client, user, "audit", actor="nobody")


@pytest.mark.parametrize("page", ["dashboard", "files", "transfers", "sites", "audit"])
def test_readonly_sees_every_page_and_artists_none(client, colour_people, sites, page):
    get(client, colour_people["readonly"], page)
    client.force_login(colour_people["artist"])
    assert client.get(reverse(f"colour_routing:{page}")).status_code == 403
