import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from rest_framework.test import APIRequestFactory

from pipeline_project.accounts.permissions import HasRole, role_required
from pipeline_project.accounts.roles import Role
from pipeline_project.accounts.services import user_set_roles

pytestmark = pytest.mark.django_db

STUDIO_ROLES = {
    "artist",
    "team_lead",
    "supervisor",
    "line_producer",
    "data_team",
    "it",
    "admin",
    "colorist",
    "engineer",
    "readonly",
    "etl_operator",
}


def test_data_migration_created_every_role_group():
    assert set(Group.objects.values_list("name", flat=True)) >= STUDIO_ROLES
    assert set(Role.values) == STUDIO_ROLES


def test_has_role(make_user):
    user = make_user("artist", "colorist")
    assert user.has_role("artist")
    assert user.has_role("supervisor", "colorist")
    assert not user.has_role("supervisor")
    with pytest.raises(ValueError, match="unknown role"):
        user.has_role("wizard")


def test_superuser_holds_admin_and_inactive_holds_nothing(make_user):
    assert make_user(is_superuser=True).has_role("admin")
    assert not make_user("artist", is_active=False).has_role("artist")


def test_set_roles_replaces_roles_but_keeps_other_groups(make_user):
    user = make_user("artist")
    other = Group.objects.create(name="houdini-beta")
    user.groups.add(other)
    user_set_roles(user=user, roles=["supervisor"])
    assert set(user.groups.values_list("name", flat=True)) == {"supervisor", "houdini-beta"}
    assert user.has_role("supervisor") and not user.has_role("artist")


def test_role_required_decorator(make_user):
    @role_required("data_team")
    def view(request):
        return "ran"

    request = RequestFactory().get("/")
    request.user = make_user("data_team")
    assert view(request) == "ran"
    request.user = make_user("admin")
    assert view(request) == "ran"
    request.user = make_user("artist")
    with pytest.raises(PermissionDenied, match="Data Team"):
        view(request)


def test_role_required_page_gives_friendly_403(make_user, client):
    client.force_login(make_user("artist"))
    response = client.get("/audit/")
    assert response.status_code == 403
    assert "needs one of these roles" in response.content.decode()


def test_has_role_permission_class(make_user):
    permission = HasRole.of("it")()
    request = APIRequestFactory().get("/")
    request.user = make_user("it")
    assert permission.has_permission(request, None)
    request.user = make_user("artist")
    assert not permission.has_permission(request, None)
    assert "IT" in permission.message
