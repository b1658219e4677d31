import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from pipeline_project.accounts.demo import DEMO_USERS
from pipeline_project.studio.models import Membership, Project, Shot

pytestmark = pytest.mark.django_db


def test_seed_demo_twice_leaves_one_copy_of_each_user(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=None)
    call_command("seed_demo", stdout=None)
    User = get_user_model()

    usernames = [u[0] for u in DEMO_USERS]
    for username in usernames:
        assert User.objects.filter(username=username).count() == 1
    assert {
        "artist1",
        "teamlead1",
        "supervisor1",
        "producer1",
        "datateam1",
        "it1",
        "admin1",
        "colorist1",
        "colorist2",
        "engineer1",
        "readonly1",
    } <= set(usernames)
    assert Project.objects.filter(code="dragon").count() == 1
    assert Membership.objects.filter(user__username="artist1", project__code="dragon").count() == 1
    assert Shot.objects.filter(project__code="dragon").exists()


def test_seed_demo_users_log_in_with_their_documented_passwords_and_roles(settings, client):
    settings.DEBUG = True
    call_command("seed_demo")
    expected = {
        "artist1": ("artist123", "artist"),
        "teamlead1": ("teamlead123", "team_lead"),
        "supervisor1": ("super123", "supervisor"),
        "producer1": ("producer123", "line_producer"),
        "datateam1": ("data123", "data_team"),
        "it1": ("it123", "it"),
        "admin1": ("admin123", "admin"),
    }
    for username, (password, role) in expected.items():
        assert client.login(username=username, password=password), username
        user = get_user_model().objects.get(username=username)
        assert user.has_role(role)
        client.logout()
    assert get_user_model().objects.get(username="admin1").is_superuser


def test_seed_demo_refuses_with_debug_off_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo")
    assert not get_user_model().objects.filter(username="admin1").exists()
    call_command("seed_demo", force=True)
    assert get_user_model().objects.filter(username="admin1").exists()


def test_dev_reset_db_refuses_without_yes(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    with pytest.raises(CommandError, match="--yes"):
        call_command("dev_reset_db")
    assert get_user_model().objects.filter(username="admin1").exists()


def test_dev_reset_db_refuses_with_debug_off(settings):
    settings.DEBUG = False
    call_command("seed_demo", force=True)
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("dev_reset_db", yes=True)
    with pytest.raises(TypeError, match="force"):  # there is no override to wipe production
        call_command("dev_reset_db", yes=True, force=True)
    assert Project.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_dev_reset_db_wipes_data_keeps_schema_and_roles_and_can_reseed(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    from pipeline_project.studio.audit import record

    record(actor=None, verb="demo.event")  # the append-only trigger must not block the wipe

    call_command("dev_reset_db", yes=True)
    assert not get_user_model().objects.exists() and not Project.objects.exists()
    assert Group.objects.filter(name="artist").exists()

    call_command("dev_reset_db", yes=True, seed=True)
    assert get_user_model().objects.filter(username="admin1").count() == 1
