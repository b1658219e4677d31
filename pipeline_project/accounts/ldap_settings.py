"""Build django-auth-ldap settings from the environment (imported by settings when LDAP_ENABLED).

python-ldap is an extra (requirements-ldap.txt): it compiles against libldap.
"""

from django.core.exceptions import ImproperlyConfigured


def parse_role_map(text: str) -> dict[str, set[str]]:
    """`artist=cn=artists,ou=groups,dc=x;team_lead=cn=leads,ou=groups,dc=x` → {group_dn: {roles}}.

    Group DNs are normalised to lower case without spaces after commas, as directories differ.
    """
    from .roles import ROLE_NAMES

    mapping: dict[str, set[str]] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        role, sep, dn = entry.partition("=")
        role = role.strip()
        if not sep or not dn.strip():
            raise ImproperlyConfigured(f"LDAP_ROLE_MAP entry {entry!r} is not role=group-DN")
        if role not in ROLE_NAMES:
            raise ImproperlyConfigured(
                f"LDAP_ROLE_MAP names unknown role {role!r}; roles: {', '.join(sorted(ROLE_NAMES))}"
            )
        mapping.setdefault(normalise_dn(dn), set()).add(role)
    return mapping


def normalise_dn(dn: str) -> str:
    return ",".join(part.strip() for part in dn.strip().lower().split(","))


def ldap_settings_from_env(env_str, env_bool, env_int) -> dict:
    try:
        import ldap
        from django_auth_ldap.config import (
            ActiveDirectoryGroupType,
            GroupOfNamesType,
            LDAPSearch,
        )
    except ImportError as exc:
        raise ImproperlyConfigured(
            "LDAP_ENABLED is on but django-auth-ldap/python-ldap are not installed: "
            "pip install -r requirements-ldap.txt (needs libldap2-dev libsasl2-dev)."
        ) from exc

    uri = env_str("LDAP_SERVER_URI")
    if not uri:
        raise ImproperlyConfigured("LDAP_ENABLED is on: set LDAP_SERVER_URI, e.g. ldap://dc1:389")
    conf = {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": env_str("LDAP_BIND_DN"),
        "AUTH_LDAP_BIND_PASSWORD": env_str("LDAP_BIND_PASSWORD"),
        "AUTH_LDAP_START_TLS": env_bool("LDAP_START_TLS", False),
        "AUTH_LDAP_CONNECTION_OPTIONS": {
            ldap.OPT_NETWORK_TIMEOUT: env_int("LDAP_TIMEOUT", 5),
            ldap.OPT_TIMEOUT: env_int("LDAP_TIMEOUT", 5),
            ldap.OPT_REFERRALS: 0,
        },
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_FIND_GROUP_PERMS": False,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        "LDAP_ROLE_MAP": parse_role_map(env_str("LDAP_ROLE_MAP")),
    }
    template = env_str("LDAP_USER_DN_TEMPLATE")
    search_base = env_str("LDAP_USER_SEARCH_BASE")
    if template:
        conf["AUTH_LDAP_USER_DN_TEMPLATE"] = template
    elif search_base:
        conf["AUTH_LDAP_USER_SEARCH"] = LDAPSearch(
            search_base, ldap.SCOPE_SUBTREE, env_str("LDAP_USER_SEARCH_FILTER", "(uid=%(user)s)")
        )
    else:
        raise ImproperlyConfigured(
            "LDAP_ENABLED is on: set LDAP_USER_DN_TEMPLATE or LDAP_USER_SEARCH_BASE."
        )

    group_base = env_str("LDAP_GROUP_SEARCH_BASE")
    if group_base:
        kind = env_str("LDAP_GROUP_TYPE", "groupOfNames")
        if kind == "activedirectory":
            group_type, default_filter = ActiveDirectoryGroupType(), "(objectClass=group)"
        elif kind == "groupOfNames":
            group_type, default_filter = GroupOfNamesType(), "(objectClass=groupOfNames)"
        else:
            raise ImproperlyConfigured("LDAP_GROUP_TYPE must be groupOfNames or activedirectory")
        conf["AUTH_LDAP_GROUP_SEARCH"] = LDAPSearch(
            group_base, ldap.SCOPE_SUBTREE, env_str("LDAP_GROUP_SEARCH_FILTER", default_filter)
        )
        conf["AUTH_LDAP_GROUP_TYPE"] = group_type
        if env_str("LDAP_REQUIRE_GROUP"):
            conf["AUTH_LDAP_REQUIRE_GROUP"] = env_str("LDAP_REQUIRE_GROUP")
        flags = {}
        if env_str("LDAP_STAFF_GROUP"):
            flags["is_staff"] = env_str("LDAP_STAFF_GROUP")
        if env_str("LDAP_SUPERUSER_GROUP"):
            flags["is_superuser"] = env_str("LDAP_SUPERUSER_GROUP")
        conf["AUTH_LDAP_USER_FLAGS_BY_GROUP"] = flags
    elif conf["LDAP_ROLE_MAP"]:
        raise ImproperlyConfigured("LDAP_ROLE_MAP needs LDAP_GROUP_SEARCH_BASE to find groups.")
    return conf
