"""Site daemons authenticate with their site's API key in `X-API-Key`."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from .services import site_for_key


class SitePrincipal:
    """The caller when a site daemon calls: it is its site, nobody's user account."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    pk = None

    def __init__(self, site):
        self.site = site
        self.username = f"daemon:{site.code}"

    def has_role(self, *roles):
        return False

    def __str__(self):
        return self.username


class SiteKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        key = request.headers.get("X-API-Key")
        if key is None:
            return None
        site = site_for_key(key.strip())
        if site is None:
            raise exceptions.AuthenticationFailed("Invalid site API key.")
        return SitePrincipal(site), site

    def authenticate_header(self, request):
        return "X-API-Key"


class IsSiteDaemon(BasePermission):
    message = "This needs a site daemon's API key."

    def has_permission(self, request, view):
        return isinstance(request.user, SitePrincipal)


class SiteKeyScheme(OpenApiAuthenticationExtension):
    target_class = "colour_routing.auth.SiteKeyAuthentication"
    name = "siteKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "A site daemon's key (shown once when the site is created or its key rotated).",
        }
