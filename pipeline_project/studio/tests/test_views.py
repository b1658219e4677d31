import pytest
from django.urls import reverse

from pipeline_project.studio.audit import record

from .factories import AssetFactory, MembershipFactory, ProjectFactory, ShotFactory

pytestmark = pytest.mark.django_db


def test_pages_need_login(client):
    for name in ("studio:home", "studio:projects", "studio:notifications", "accounts:tokens"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_dashboard_shows_my_projects_and_status_for_staff(make_user, client):
    artist = make_user("artist")
    project = ProjectFactory(code="dragon", name="Dragon's Keep")
    MembershipFactory(user=artist, project=project)
    client.force_login(artist)
    page = client.get(reverse("studio:home")).content.decode()
    assert "Dragon&#x27;s Keep" in page and 'data-testid="system-status"' not in page

    client.force_login(make_user("admin"))
    page = client.get(reverse("studio:home")).content.decode()
    assert 'data-testid="system-status"' in page


def test_project_list_filters_and_htmx_returns_only_results(make_user, client):
    client.force_login(make_user("readonly"))
    ProjectFactory(code="dragon", name="Dragon")
    ProjectFactory(code="ep3", name="Episodic", status="archived")

    full = client.get(reverse("studio:projects"), {"q": "drag"}).content.decode()
    assert "dragon" in full and "ep3" not in full and "<html" in full

    fragment = client.get(
        reverse("studio:projects"), {"status": "archived"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert (
        fragment.lstrip().startswith('<div id="results"')
        and "ep3" in fragment
        and "dragon" not in fragment
    )


def test_project_detail_is_404_for_non_members(make_user, client):
    project = ProjectFactory(code="secret")
    ShotFactory(sequence__project=project, code="sh0010")
    AssetFactory(project=project, code="Dragon")
    member, outsider = make_user("artist"), make_user("artist")
    MembershipFactory(user=member, project=project)

    client.force_login(outsider)
    assert client.get(reverse("studio:project", args=["secret"])).status_code == 404
    client.force_login(member)
    page = client.get(reverse("studio:project", args=["secret"])).content.decode()
    assert "sh0010" in page and "Dragon" in page


def test_audit_log_filters_for_readonly_and_is_403_for_artists(make_user, client):
    record(actor=None, verb="transfer.approved", target=ProjectFactory(code="dragon"))
    record(actor=None, verb="colour.file.rejected")
    client.force_login(make_user("readonly"))
    page = client.get(reverse("studio:audit"), {"verb": "transfer."}).content.decode()
    assert "transfer.approved" in page and "colour.file.rejected" not in page

    client.force_login(make_user("artist"))
    assert client.get(reverse("studio:audit")).status_code == 403


def test_friendly_404_page(client, make_user):
    client.force_login(make_user("artist"))
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and "Back to the dashboard" in response.content.decode()


def test_login_page_logs_in_and_logout_needs_post(make_user, client):
    make_user("artist", username="ava")
    from pipeline_project.accounts.tests.factories import PASSWORD

    response = client.post(reverse("accounts:login"), {"username": "ava", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get(reverse("studio:home")).status_code == 200
    assert client.get(reverse("accounts:logout")).status_code == 405
    client.post(reverse("accounts:logout"))
    assert client.get(reverse("studio:home")).status_code == 302


def test_login_refuses_a_wrong_password_with_a_message(make_user, client):
    make_user("artist", username="ava")
    response = client.post(reverse("accounts:login"), {"username": "ava", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


@pytest.mark.urls("pipeline_project.testing.broken_urls")
def test_a_crashing_page_gets_the_friendly_500_and_the_api_json(client, make_user):
    client.raise_request_exception = False
    client.force_login(make_user("artist"))

    page = client.get("/broken/")
    assert page.status_code == 500
    body = page.content.decode()
    assert "boom" not in body and "Traceback" not in body  # no internals leak
    assert "Something went wrong on our side" in body and "Back to the dashboard" in body

    api = client.get("/api/broken/")
    assert api.status_code == 500 and api["Content-Type"] == "application/json"
    assert "Server error" in api.json()["detail"]
