"""Directory login. Roles follow the user's directory groups (LDAP_ROLE_MAP) at every login."""

import logging

import ldap
from django.conf import settings
from django_auth_ldap.backend import LDAPBackend

from .ldap_settings import normalise_dn
from .services import user_set_roles

log = logging.getLogger(__name__)


def roles_for_group_dns(group_dns, role_map: dict[str, set[str]]) -> set[str]:
    roles: set[str] = set()
    for dn in group_dns:
        roles |= role_map.get(normalise_dn(dn), set())
    return roles


class StudioLDAPBackend(LDAPBackend):
    def get_or_build_user(self, username, ldap_user):
        # A directory account must never take over a local one of the same name: that is how
        # whoever can create directory users would get the break-glass admin.
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and not user.is_ldap_user:
            raise ldap_user.AuthenticationFailed(
                f"{user.username!r} is a local account; directory login may not take it over"
            )
        return user, built

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        if not user.is_ldap_user:
            user.is_ldap_user = True
            user.save(update_fields=["is_ldap_user"])
        if getattr(settings, "AUTH_LDAP_GROUP_SEARCH", None) is None:
            log.info("LDAP login %s (no group search: roles are managed locally)", user.username)
            return user
        try:
            group_dns = ldap_user.group_dns
        except ldap.LDAPError as exc:
            log.warning("LDAP group lookup for %s failed: %s", user.username, exc)
            return None
        roles = roles_for_group_dns(group_dns, getattr(settings, "LDAP_ROLE_MAP", {}))
        user_set_roles(user=user, roles=roles)
        log.info("LDAP login %s with roles %s", user.username, sorted(roles) or "none")
        return user
