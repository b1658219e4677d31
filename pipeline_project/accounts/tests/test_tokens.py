import hashlib

import pytest
from django.urls import reverse

from pipeline_project.accounts.models import ApiToken
from pipeline_project.accounts.services import token_create, token_revoke
from pipeline_project.errors import DomainError

pytestmark = pytest.mark.django_db


def auth(token):
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def test_token_authenticates_an_api_call(make_user, api_client):
    user = make_user("artist", username="houdini_artist")
    _, secret = token_create(user=user, name="Houdini ws-042")

    response = api_client.get(reverse("api:me"), **auth(secret))

    assert response.status_code == 200
    assert response.json()["username"] == "houdini_artist"
    assert response.json()["roles"] == ["artist"]
    assert ApiToken.objects.get(user=user).last_used is not None


def test_revoked_token_gets_401(make_user, api_client):
    user = make_user("artist")
    token, secret = token_create(user=user, name="Maya")
    assert api_client.get(reverse("api:me"), **auth(secret)).status_code == 200

    token_revoke(user=user, token_key=token.token_key)
    response = api_client.get(reverse("api:me"), **auth(secret))

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_wrong_or_missing_token_gets_401_with_detail(api_client):
    assert api_client.get(reverse("api:me")).status_code == 401
    response = api_client.get(reverse("api:me"), **auth("sp_not-a-real-token"))
    assert response.status_code == 401
    assert "detail" in response.json()


def test_tokens_are_not_stored_in_plain_text(make_user):
    user = make_user("artist")
    token, secret = token_create(user=user, name="Nuke")
    stored = ApiToken.objects.values().get(pk=token.pk)

    assert secret.startswith("sp_") and len(secret) > 60
    assert all(secret not in str(value) for value in stored.values())
    assert stored["digest"] == hashlib.sha512(secret.encode()).hexdigest()
    assert stored["token_key"] == secret[:15]  # a lookup prefix only, not the secret


def test_expired_token_gets_401(make_user, api_client):
    from datetime import timedelta

    from django.utils import timezone

    user = make_user("artist")
    token, secret = token_create(user=user, name="old", lifetime="30")
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))

    assert api_client.get(reverse("api:me"), **auth(secret)).status_code == 401


def test_inactive_users_token_gets_401(make_user, api_client):
    user = make_user("artist")
    _, secret = token_create(user=user, name="x")
    user.is_active = False
    user.save()
    assert api_client.get(reverse("api:me"), **auth(secret)).status_code == 401


def test_bad_token_requests_are_refused_and_change_nothing(make_user):
    user = make_user("artist")
    token_create(user=user, name="Houdini")
    with pytest.raises(DomainError, match="already have a token named"):
        token_create(user=user, name="Houdini")
    with pytest.raises(DomainError, match="name"):
        token_create(user=user, name="   ")
    with pytest.raises(DomainError, match="lifetime"):
        token_create(user=user, name="x", lifetime="forever")
    assert ApiToken.objects.filter(user=user).count() == 1


def test_cannot_revoke_someone_elses_token(make_user):
    owner, other = make_user("artist"), make_user("artist")
    token, _ = token_create(user=owner, name="mine")
    with pytest.raises(DomainError):
        token_revoke(user=other, token_key=token.token_key)
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_tokens_page_creates_shows_once_lists_and_revokes(make_user, client):
    user = make_user("artist")
    client.force_login(user)

    created = client.post(reverse("accounts:tokens"), {"name": "Houdini ws-7", "lifetime": "90"})
    token = ApiToken.objects.get(user=user)
    secret = created.context["new_token"]
    assert secret.startswith(token.token_key)
    assert secret in created.content.decode()

    listed = client.get(reverse("accounts:tokens")).content.decode()
    assert "Houdini ws-7" in listed and secret not in listed

    client.post(reverse("accounts:token-revoke", args=[token.token_key]))
    assert not ApiToken.objects.filter(user=user).exists()


def test_tokens_page_htmx_returns_only_the_panel_and_inline_errors(make_user, client):
    client.force_login(make_user("artist"))
    response = client.post(
        reverse("accounts:tokens"), {"name": "", "lifetime": "90"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert html.lstrip().startswith('<div id="token-panel"')
    assert "<html" not in html and "This field is required" in html


def test_token_api_create_list_revoke(make_user, api_client):
    api_client.force_authenticate(make_user("artist"))
    created = api_client.post(
        reverse("api:tokens"), {"name": "script", "lifetime": "never"}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith(body["token_key"]) and body["expiry"] is None

    listed = api_client.get(reverse("api:tokens")).json()
    assert [t["name"] for t in listed] == ["script"] and "token" not in listed[0]

    assert (
        api_client.delete(reverse("api:token-revoke", args=[body["token_key"]])).status_code == 204
    )
    assert api_client.delete(reverse("api:token-revoke", args=[body["token_key"]])).json() == {
        "detail": "No such token."
    }
