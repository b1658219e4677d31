"""API authentication: knox tokens (hashed at rest), recording when each was last used."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication


class ApiTokenAuthentication(TokenAuthentication):
    """`Authorization: Token sp_…`. Revoked (deleted) or expired tokens get 401."""

    def authenticate_credentials(self, token):
        user, auth_token = super().authenticate_credentials(token)
        now = timezone.now()
        # One write per token per minute at most: DCC tools call in bursts.
        if auth_token.last_used is None or now - auth_token.last_used > timedelta(minutes=1):
            type(auth_token).objects.filter(pk=auth_token.pk).update(last_used=now)
        return user, auth_token


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "pipeline_project.accounts.auth.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>`; create one on the API tokens page.",
        }
