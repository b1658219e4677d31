"""Directory login through the real login page against a real slapd (no LDAP mocks).

The directory and its users/groups are described in pipeline_project/testing/slapd.py.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from pipeline_project.accounts.ldap_settings import parse_role_map
from pipeline_project.accounts.models import User
from pipeline_project.accounts.roles import ROLE_NAMES
from pipeline_project.accounts.tests.factories import PASSWORD
from pipeline_project.testing.slapd import DEFAULT_ROLE_MAP, LDAP_BACKEND, ldap_settings_for

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
BAD_LOGIN = "Please enter a correct username and password"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Every login runs ModelBackend first, which hashes once (PBKDF2, ~0.3 s) even for
    directory users; a fast hasher keeps these tests quick without changing what they check."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def login(client, username, password):
    return client.post(reverse("accounts:login"), {"username": username, "password": password})


def assert_logged_in(client, response, user, backend=LDAP_BACKEND):
    assert response.status_code == 302, response.content[:500]
    assert response.url == reverse("studio:home")
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.session["_auth_user_backend"] == backend
    # The session carries over to the next request: the login page now bounces to home.
    again = client.get(reverse("accounts:login"))
    assert again.status_code == 302
    assert again.url == reverse("studio:home")


def assert_refused(client, response):
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert any(BAD_LOGIN in error for error in errors), errors
    assert BAD_LOGIN in response.content.decode()
    assert "_auth_user_id" not in client.session


def login_directory_user(client, slapd, uid):
    response = login(client, uid, slapd.password(uid))
    user = User.objects.get(username=uid)
    assert_logged_in(client, response, user)
    client.logout()
    return user


# --- 1. first login creates the local user ------------------------------------------------
@pytest.mark.services
@pytest.mark.django_db
def test_directory_user_logs_in_and_gets_a_local_account(client, ldap_enabled):
    slapd = ldap_enabled.server
    assert not User.objects.filter(username="alice").exists()

    response = login(client, "alice", slapd.password("alice"))

    user = User.objects.get(username="alice")
    assert_logged_in(client, response, user)
    assert user.is_ldap_user is True
    assert (user.first_name, user.last_name, user.email) == ("Alice", "Anders", "alice@studio.test")
    assert not user.has_usable_password()  # the directory keeps the password, not Django
    assert not user.is_staff
    assert not user.is_superuser


@pytest.mark.services
@pytest.mark.django_db
def test_directory_changes_reach_the_local_user_at_next_login(client, ldap_enabled):
    slapd = ldap_enabled.server
    login_directory_user(client, slapd, "alice")

    slapd.set_attribute("alice", "mail", "alice.anders@studio.test")
    slapd.set_attribute("alice", "sn", "Anders-Smith")
    user = login_directory_user(client, slapd, "alice")

    assert (user.last_name, user.email) == ("Anders-Smith", "alice.anders@studio.test")
    assert User.objects.filter(username="alice").count() == 1


# --- 2. groups become roles -------------------------------------------------------------
@pytest.mark.services
@pytest.mark.django_db
def test_directory_groups_become_roles(client, ldap_enabled):
    slapd = ldap_enabled.server
    alice = login_directory_user(client, slapd, "alice")  # artists, all-staff
    bob = login_directory_user(client, slapd, "bob")  # artists, leads, all-staff
    carol = login_directory_user(client, slapd, "carol")  # pipeline-admins, all-staff

    assert alice.get_role_names() == {"artist"}
    assert alice.has_role("artist")
    assert not alice.has_role("team_lead", "admin")
    assert bob.get_role_names() == {"artist", "team_lead"}
    assert bob.has_role("team_lead")
    assert carol.get_role_names() == {"admin"}
    assert carol.is_admin()
    # all-staff is in nobody's role map: it gives no role and no Django group.
    assert not alice.groups.exclude(name__in=ROLE_NAMES).exists()
    assert not User.objects.filter(groups__name="all-staff").exists()


@pytest.mark.services
@pytest.mark.django_db
def test_one_group_can_map_to_several_roles_and_dns_match_loosely(client, ldap_enabled):
    slapd = ldap_enabled.server
    # Directories differ in case and spacing; the role map is normalised.
    ldap_enabled.configure(
        LDAP_ROLE_MAP="team_lead=CN=Leads, OU=Groups, DC=studio, DC=test;"
        f"supervisor=cn=leads,{slapd.groups_dn}"
    )

    bob = login_directory_user(client, slapd, "bob")
    alice = login_directory_user(client, slapd, "alice")

    assert bob.get_role_names() == {"team_lead", "supervisor"}
    assert alice.get_role_names() == set()  # artists is not mapped in this configuration


@pytest.mark.services
@pytest.mark.django_db
def test_directory_membership_changes_change_roles_at_next_login(client, ldap_enabled):
    slapd = ldap_enabled.server
    bob = login_directory_user(client, slapd, "bob")
    assert bob.get_role_names() == {"artist", "team_lead"}

    slapd.remove_member("leads", "bob")
    slapd.add_member("pipeline-admins", "bob")
    assert "bob" not in slapd.members("leads")

    bob = login_directory_user(client, slapd, "bob")
    assert bob.get_role_names() == {"artist", "admin"}
    assert not bob.has_role("team_lead")

    slapd.remove_member("artists", "bob")
    slapd.remove_member("pipeline-admins", "bob")
    bob = login_directory_user(client, slapd, "bob")
    assert bob.get_role_names() == set()


@pytest.mark.services
@pytest.mark.django_db
def test_directory_login_keeps_non_role_groups(client, ldap_enabled):
    from django.contrib.auth.models import Group

    slapd = ldap_enabled.server
    alice = login_directory_user(client, slapd, "alice")
    alice.groups.add(Group.objects.create(name="review-board"))

    alice = login_directory_user(client, slapd, "alice")

    assert set(alice.groups.values_list("name", flat=True)) == {"artist", "review-board"}


@pytest.mark.services
@pytest.mark.django_db
def test_login_without_group_search_leaves_roles_to_local_admins(client, ldap_enabled):
    from pipeline_project.accounts.services import user_set_roles

    slapd = ldap_enabled.server
    conf = ldap_enabled.configure(LDAP_GROUP_SEARCH_BASE=None, LDAP_ROLE_MAP=None)
    assert "AUTH_LDAP_GROUP_SEARCH" not in conf

    alice = login_directory_user(client, slapd, "alice")
    assert alice.is_ldap_user
    assert alice.get_role_names() == set()
    user_set_roles(user=alice, roles={"colorist"})

    alice = login_directory_user(client, slapd, "alice")
    assert alice.get_role_names() == {"colorist"}


@pytest.mark.services
@pytest.mark.django_db
def test_directory_login_cannot_take_over_a_local_account(client, ldap_enabled, make_user):
    slapd = ldap_enabled.server
    local = make_user("admin", username="carol", is_superuser=True)

    response = login(client, "carol", slapd.password("carol"))

    assert_refused(client, response)
    local.refresh_from_db()
    assert not local.is_ldap_user and local.is_superuser
    assert local.has_role("admin")


# --- 3. refusals --------------------------------------------------------------------------
@pytest.mark.services
@pytest.mark.django_db
def test_wrong_password_is_refused(client, ldap_enabled):
    slapd = ldap_enabled.server
    login_directory_user(client, slapd, "alice")  # the local row exists; it must not help

    response = login(client, "alice", slapd.password("bob"))

    assert_refused(client, response)


@pytest.mark.services
@pytest.mark.django_db
def test_wrong_password_on_first_login_creates_no_user(client, ldap_enabled):
    response = login(client, "bob", "not-bobs-password")

    assert_refused(client, response)
    assert not User.objects.filter(username="bob").exists()


@pytest.mark.services
@pytest.mark.django_db
def test_unknown_user_is_refused(client, ldap_enabled):
    response = login(client, "mallory", "whatever-password")

    assert_refused(client, response)
    assert not User.objects.filter(username="mallory").exists()


@pytest.mark.services
@pytest.mark.django_db
def test_user_outside_the_dn_template_is_refused(client, ldap_enabled):
    # erin lives in ou=contractors,ou=people: uid=erin,ou=people,... does not exist.
    response = login(client, "erin", ldap_enabled.server.password("erin"))

    assert_refused(client, response)
    assert not User.objects.filter(username="erin").exists()


# --- 4. directory down --------------------------------------------------------------------
@pytest.mark.services
@pytest.mark.django_db
def test_local_admin_logs_in_and_directory_users_are_refused_while_ldap_is_down(
    client, ldap_enabled, make_user
):
    slapd = ldap_enabled.server
    login_directory_user(client, slapd, "alice")  # a directory user who logged in before
    admin = make_user("admin", username="breakglass")

    slapd.stop()
    assert not slapd.is_running()

    response = login(client, "breakglass", PASSWORD)
    assert_logged_in(client, response, admin, backend=MODEL_BACKEND)
    assert User.objects.get(pk=admin.pk).is_admin()
    client.logout()

    for username, password in [
        ("alice", slapd.password("alice")),  # has a local row (unusable password)
        ("bob", slapd.password("bob")),  # never logged in
        ("breakglass", "wrong-password"),  # local user, wrong password: falls through to LDAP
    ]:
        response = login(client, username, password)
        assert_refused(client, response)
    assert not User.objects.filter(username="bob").exists()

    slapd.start()  # back up: directory login works again
    login_directory_user(client, slapd, "bob")


# --- 5. configuration errors --------------------------------------------------------------
def test_role_map_parses_and_normalises_dns():
    mapping = parse_role_map(
        " artist = cn=Artists, ou=Groups,dc=studio,dc=test ; team_lead=cn=leads,ou=groups,dc=studio,dc=test;"
        "supervisor=cn=leads,ou=groups,dc=studio,dc=test;"
    )

    assert mapping == {
        "cn=artists,ou=groups,dc=studio,dc=test": {"artist"},
        "cn=leads,ou=groups,dc=studio,dc=test": {"team_lead", "supervisor"},
    }


@pytest.mark.parametrize(
    ("role_map", "message"),
    [
        (
            "wizard=cn=wizards,ou=groups,dc=studio,dc=test",
            "LDAP_ROLE_MAP names unknown role 'wizard'",
        ),
        ("Artist=cn=artists,ou=groups,dc=studio,dc=test", "unknown role 'Artist'"),
        ("artist", "LDAP_ROLE_MAP entry 'artist' is not role=group-DN"),
        ("artist=", "is not role=group-DN"),
    ],
)
def test_role_map_errors(role_map, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_role_map(role_map)


VALID_ENV = {
    "LDAP_SERVER_URI": "ldap://127.0.0.1:1/",
    "LDAP_USER_DN_TEMPLATE": "uid=%(user)s,ou=people,dc=studio,dc=test",
    "LDAP_GROUP_SEARCH_BASE": "ou=groups,dc=studio,dc=test",
    "LDAP_ROLE_MAP": DEFAULT_ROLE_MAP,
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"LDAP_SERVER_URI": None}, "set LDAP_SERVER_URI"),
        ({"LDAP_SERVER_URI": "   "}, "set LDAP_SERVER_URI"),
        (
            {"LDAP_USER_DN_TEMPLATE": None},
            "set LDAP_USER_DN_TEMPLATE or LDAP_USER_SEARCH_BASE",
        ),
        (
            {"LDAP_ROLE_MAP": "artist=cn=artists,ou=groups,dc=studio,dc=test;overlord=cn=x,dc=y"},
            "unknown role 'overlord'",
        ),
        ({"LDAP_GROUP_SEARCH_BASE": None}, "LDAP_ROLE_MAP needs LDAP_GROUP_SEARCH_BASE"),
        (
            {"LDAP_GROUP_TYPE": "posixGroup"},
            "LDAP_GROUP_TYPE must be groupOfNames or activedirectory",
        ),
    ],
)
def test_ldap_settings_errors(python_ldap, changes, message):
    env = {k: v for k, v in {**VALID_ENV, **changes}.items() if v is not None}

    with pytest.raises(ImproperlyConfigured, match=message):
        ldap_settings_for(env)


def test_ldap_settings_from_valid_env(python_ldap):
    conf = ldap_settings_for(VALID_ENV)

    assert conf["AUTH_LDAP_SERVER_URI"] == VALID_ENV["LDAP_SERVER_URI"]
    assert conf["AUTH_LDAP_USER_DN_TEMPLATE"] == VALID_ENV["LDAP_USER_DN_TEMPLATE"]
    assert "AUTH_LDAP_USER_SEARCH" not in conf
    assert conf["AUTH_LDAP_GROUP_SEARCH"].base_dn == VALID_ENV["LDAP_GROUP_SEARCH_BASE"]
    assert conf["LDAP_ROLE_MAP"] == {
        "cn=artists,ou=groups,dc=studio,dc=test": {"artist"},
        "cn=leads,ou=groups,dc=studio,dc=test": {"team_lead"},
        "cn=pipeline-admins,ou=groups,dc=studio,dc=test": {"admin"},
    }


def test_site_refuses_to_start_with_ldap_enabled_but_no_server(tmp_path):
    """settings.py itself: LDAP_ENABLED=1 without LDAP_SERVER_URI stops start-up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LDAP_", "PYTEST_"))}
    env.update(LDAP_ENABLED="1", DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path}/db")
    manage = Path(__file__).resolve().parents[3] / "manage.py"

    result = subprocess.run(
        [sys.executable, str(manage), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "LDAP_ENABLED is on: set LDAP_SERVER_URI" in result.stderr


# --- 6. user search instead of a DN template ----------------------------------------------
@pytest.mark.services
@pytest.mark.django_db
def test_user_search_config_logs_in(client, ldap_enabled):
    slapd = ldap_enabled.server
    conf = ldap_enabled.configure(
        LDAP_USER_DN_TEMPLATE=None,
        LDAP_USER_SEARCH_BASE=slapd.people_dn,
        LDAP_USER_SEARCH_FILTER="(&(objectClass=inetOrgPerson)(uid=%(user)s))",
    )
    assert "AUTH_LDAP_USER_DN_TEMPLATE" not in conf
    assert conf["AUTH_LDAP_USER_SEARCH"].base_dn == slapd.people_dn

    # erin is one level down (ou=contractors): only the subtree search finds her.
    erin = login_directory_user(client, slapd, "erin")
    alice = login_directory_user(client, slapd, "alice")

    assert erin.is_ldap_user
    assert (erin.first_name, erin.last_name, erin.email) == ("Erin", "Evans", "erin@contract.test")
    assert erin.get_role_names() == {"artist"}
    assert alice.get_role_names() == {"artist"}
    assert_refused(client, login(client, "erin", slapd.password("alice")))
    assert_refused(client, login(client, "nobody", "whatever-password"))


@pytest.mark.services
@pytest.mark.django_db
def test_user_search_by_mail_logs_in(client, ldap_enabled):
    slapd = ldap_enabled.server
    ldap_enabled.configure(
        LDAP_USER_DN_TEMPLATE=None,
        LDAP_USER_SEARCH_BASE=slapd.base_dn,
        LDAP_USER_SEARCH_FILTER="(mail=%(user)s)",
    )

    response = login(client, "bob@studio.test", slapd.password("bob"))

    user = User.objects.get(username="bob@studio.test")
    assert_logged_in(client, response, user)
    assert user.get_role_names() == {"artist", "team_lead"}
