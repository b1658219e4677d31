import pytest
from django.urls import reverse

from pipeline_project.studio.models import Notification
from pipeline_project.studio.services import notify

from .factories import MembershipFactory, ProjectFactory, ShotFactory

pytestmark = pytest.mark.django_db


def test_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get(reverse("api:schema"), {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/me/" in paths and "/api/projects/" in paths and "/api/jobs/{id}/" in paths
    assert "tokenAuth" in schema.json()["components"]["securitySchemes"]

    docs = client.get(reverse("api:docs")).content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs
    assert "cdn" not in docs.lower() and "unpkg" not in docs.lower()
    assert (
        client.get(
            "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
        ).status_code
        == 200
    )


def test_errors_share_one_format(make_user, api_client):
    assert api_client.get(reverse("api:projects")).json() == {
        "detail": "Authentication credentials were not provided."
    }
    api_client.force_authenticate(make_user("artist"))

    missing = api_client.get(reverse("api:job", args=["00000000-0000-0000-0000-000000000000"]))
    assert missing.status_code == 404 and set(missing.json()) == {"detail"}

    invalid = api_client.post(reverse("api:tokens"), {"lifetime": "90"}, format="json")
    assert invalid.status_code == 400
    assert invalid.json()["detail"] == "name: This field is required."
    assert invalid.json()["errors"] == {"name": ["This field is required."]}

    wrong_method = api_client.put(reverse("api:me"))
    assert wrong_method.status_code == 405 and "detail" in wrong_method.json()


def test_projects_are_scoped_to_membership_filtered_and_paginated(make_user, api_client):
    artist = make_user("artist")
    mine = ProjectFactory(code="dragon", name="Dragon")
    ProjectFactory(code="secret", name="Secret")
    MembershipFactory(user=artist, project=mine)
    api_client.force_authenticate(artist)

    body = api_client.get(reverse("api:projects")).json()
    assert body["count"] == 1 and [p["code"] for p in body["results"]] == ["dragon"]

    api_client.force_authenticate(make_user("readonly"))
    assert api_client.get(reverse("api:projects")).json()["count"] == 2
    searched = api_client.get(reverse("api:projects"), {"search": "secr"}).json()
    assert [p["code"] for p in searched["results"]] == ["secret"]
    paged = api_client.get(reverse("api:projects"), {"page_size": 1}).json()
    assert paged["count"] == 2 and len(paged["results"]) == 1 and paged["next"]


def test_shots_filter_by_project_and_hide_other_projects(make_user, api_client):
    artist = make_user("artist")
    shot = ShotFactory(code="sh0010")
    ShotFactory(code="sh9999")
    MembershipFactory(user=artist, project=shot.project)
    api_client.force_authenticate(artist)
    body = api_client.get(reverse("api:shots"), {"project__code": shot.project.code}).json()
    assert [s["code"] for s in body["results"]] == ["sh0010"]


def test_notifications_list_and_mark_read(make_user, api_client):
    user = make_user("artist")
    notify(title="TRF-00001 approved", users=[user], email=False)
    notify(title="TRF-00002 rejected", users=[user], email=False)
    api_client.force_authenticate(user)

    unread = api_client.get(reverse("api:notifications"), {"unread": "true"}).json()
    assert [n["title"] for n in unread["results"]] == ["TRF-00002 rejected", "TRF-00001 approved"]
    first = unread["results"][1]["id"]
    assert api_client.post(
        reverse("api:notifications-read"), {"ids": [first]}, format="json"
    ).json() == {"marked": 1}
    assert Notification.objects.unread().filter(recipient=user).count() == 1


def test_unknown_api_urls_answer_json_404(make_user, client):
    client.force_login(make_user("artist"))
    response = client.get("/api/no-such-endpoint/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    assert client.get("/no-such-page/").headers["Content-Type"].startswith("text/html")


def test_openapi_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    assert "/api/transfers/{reference}/approve/" in schema and "TransferStatusEnum" in schema
