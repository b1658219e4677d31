"""The ShotGrid gateway and `manage.py shotgrid_sync`, against Mockgun (an in-memory ShotGrid)."""

from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
import shotgun_api3
from django.core.management import CommandError, call_command

from pipeline_project.errors import Conflict, DomainError
from pipeline_project.studio.models import Asset, AuditEvent, Project, Sequence, Shot
from pipeline_project.studio.shotgrid import create_version, get_client, sync_project
from pipeline_project.studio.tests.factories import ProjectFactory, SequenceFactory, ShotFactory

pytestmark = pytest.mark.django_db


def _link(entity: dict) -> dict:
    return {"type": entity["type"], "id": entity["id"]}


@pytest.fixture
def site(mockgun):
    """ShotGrid holds 'Dragon' (2 sequences, 3 shots, 3 assets) and another show with one shot,
    which a sync of Dragon must leave alone."""
    dragon = mockgun.create("Project", {"name": "Dragon"})
    other = mockgun.create("Project", {"name": "Other show"})
    sq010 = mockgun.create(
        "Sequence", {"code": "sq010", "description": "Opening", "project": _link(dragon)}
    )
    sq020 = mockgun.create("Sequence", {"code": "sq020", "project": _link(dragon)})
    shots = {}
    for code, sequence, cut in [
        ("sq010_sh0010", sq010, (1001, 1096)),
        ("sq010_sh0020", sq010, (1001, 1040)),
        ("sq020_sh0010", sq020, (1001, 1200)),
    ]:
        shots[code] = mockgun.create(
            "Shot",
            {
                "code": code,
                "description": f"Shot {code}",
                "project": _link(dragon),
                "sg_sequence": _link(sequence),
                "sg_status_list": "ip",
                "sg_cut_in": cut[0],
                "sg_cut_out": cut[1],
            },
        )["id"]
    for code, asset_type in [("dragon", "Character"), ("castle", "Set"), ("sky", "Matte Painting")]:
        mockgun.create(
            "Asset", {"code": code, "sg_asset_type": asset_type, "project": _link(dragon)}
        )
    other_shot = mockgun.create("Shot", {"code": "os_sh0010", "project": _link(other)})
    return SimpleNamespace(
        project_id=dragon["id"], other_project_id=other["id"], shots=shots, other_shot=other_shot
    )


@pytest.fixture
def project(site):
    return ProjectFactory(code="dragon", shotgrid_id=site.project_id)


def _counts(created, updated, unchanged):
    return {"created": created, "updated": updated, "unchanged": unchanged}


def test_sync_project_pulls_sequences_shots_and_assets(mockgun, site, project, make_user):
    producer = make_user("line_producer")

    counts = sync_project(project=project, sg=mockgun, actor=producer)

    assert counts == {
        "sequences": _counts(2, 0, 0),
        "shots": _counts(3, 0, 0),
        "assets": _counts(3, 0, 0),
    }
    shot = Shot.objects.get(shotgrid_id=site.shots["sq010_sh0010"])
    assert (shot.project, shot.code, shot.sequence.code) == (project, "sq010_sh0010", "sq010")
    assert (shot.status, shot.frame_in, shot.frame_out) == ("ip", 1001, 1096)
    assert shot.description == "Shot sq010_sh0010"
    assert Sequence.objects.get(code="sq010").description == "Opening"
    assert dict(Asset.objects.values_list("code", "asset_type")) == {
        "dragon": Asset.Type.CHARACTER,
        "castle": Asset.Type.ENVIRONMENT,
        "sky": Asset.Type.OTHER,
    }
    assert not Shot.objects.filter(code="os_sh0010").exists()
    event = AuditEvent.objects.get(verb="shotgrid.synced")
    assert (event.actor, event.target_id) == (producer, str(project.pk))
    assert event.after["shots"] == _counts(3, 0, 0)


def test_second_sync_creates_nothing_and_updates_the_changed_field(mockgun, site, project):
    sync_project(project=project, sg=mockgun)
    shot_pks = set(Shot.objects.values_list("pk", flat=True))
    mockgun.update("Shot", site.shots["sq020_sh0010"], {"sg_cut_out": 1180})

    counts = sync_project(project=project, sg=mockgun)

    assert counts == {
        "sequences": _counts(0, 0, 2),
        "shots": _counts(0, 1, 2),
        "assets": _counts(0, 0, 3),
    }
    assert set(Shot.objects.values_list("pk", flat=True)) == shot_pks
    assert Shot.objects.get(shotgrid_id=site.shots["sq020_sh0010"]).frame_out == 1180
    assert (Sequence.objects.count(), Asset.objects.count()) == (2, 3)
    assert AuditEvent.objects.filter(verb="shotgrid.synced").count() == 2


def test_sync_lets_a_new_shot_take_the_code_of_a_renamed_one(mockgun, site, project):
    sync_project(project=project, sg=mockgun)
    renamed_id = site.shots["sq010_sh0020"]
    mockgun.update("Shot", renamed_id, {"code": "sq010_sh0020_omit"})
    new_id = mockgun.create(
        "Shot", {"code": "sq010_sh0020", "project": {"type": "Project", "id": site.project_id}}
    )["id"]

    counts = sync_project(project=project, sg=mockgun)

    assert counts["shots"] == _counts(1, 1, 2)
    assert Shot.objects.get(shotgrid_id=renamed_id).code == "sq010_sh0020_omit"
    assert Shot.objects.get(shotgrid_id=new_id).code == "sq010_sh0020"


def test_sync_adopts_rows_made_before_the_project_was_linked(mockgun, site, project):
    sequence = SequenceFactory(project=project, code="sq010")
    shot = ShotFactory(project=project, sequence=sequence, code="sq010_sh0010")

    counts = sync_project(project=project, sg=mockgun)

    assert counts["sequences"] == _counts(1, 1, 0)
    assert counts["shots"] == _counts(2, 1, 0)
    shot.refresh_from_db()
    assert (shot.shotgrid_id, shot.frame_out) == (site.shots["sq010_sh0010"], 1096)
    assert Shot.objects.filter(project=project).count() == 3


def test_sync_refuses_a_project_without_shotgrid_id(mockgun, site):
    unlinked = ProjectFactory(code="unlinked")

    with pytest.raises(DomainError, match="unlinked is not linked to ShotGrid"):
        sync_project(project=unlinked, sg=mockgun)

    assert mockgun.finds == 0
    assert not Shot.objects.exists()
    assert not AuditEvent.objects.exists()


def test_sync_refuses_a_shotgrid_id_that_shotgrid_does_not_know(mockgun, site):
    stale = ProjectFactory(code="stale", shotgrid_id=4242)

    with pytest.raises(DomainError, match="no project with id 4242"):
        sync_project(project=stale, sg=mockgun)

    assert not Sequence.objects.exists()


def test_sync_stops_without_writing_when_a_code_belongs_to_another_entity(mockgun, site, project):
    ShotFactory(project=project, sequence=None, code="sq010_sh0020", shotgrid_id=9999)

    with pytest.raises(Conflict, match="sq010_sh0020 is linked to ShotGrid id 9999"):
        sync_project(project=project, sg=mockgun)

    # The sequences were written before the shots: the whole sync rolled back.
    assert not Sequence.objects.exists()
    assert Shot.objects.get().shotgrid_id == 9999
    assert not AuditEvent.objects.exists()


def test_create_version_makes_a_version_on_the_shot(mockgun, site, project):
    shot_id = site.shots["sq010_sh0010"]

    version_id = create_version(
        sg=mockgun,
        project=project,
        code="sq010_sh0010_comp_v003",
        description="Comp v003 for dailies",
        entity_type="Shot",
        entity_shotgrid_id=shot_id,
        path=Path("/mnt/prod/dragon/sq010_sh0010/comp_v003.mov"),
    )

    on_shot = mockgun.find(
        "Version",
        [["entity", "is", {"type": "Shot", "id": shot_id}]],
        ["code", "description", "project", "sg_path_to_movie"],
    )
    assert [version["id"] for version in on_shot] == [version_id]
    version = on_shot[0]
    assert (version["code"], version["description"]) == (
        "sq010_sh0010_comp_v003",
        "Comp v003 for dailies",
    )
    assert version["project"]["id"] == site.project_id
    assert version["sg_path_to_movie"] == "/mnt/prod/dragon/sq010_sh0010/comp_v003.mov"


def test_create_version_refuses_a_shot_of_another_project(mockgun, site, project):
    with pytest.raises(DomainError, match=f"no Shot with id {site.other_shot} in project dragon"):
        create_version(
            sg=mockgun,
            project=project,
            code="wrong_v001",
            description="",
            entity_type="Shot",
            entity_shotgrid_id=site.other_shot,
        )

    assert mockgun.find("Version", []) == []


def test_create_version_refuses_an_entity_type_versions_cannot_belong_to(mockgun, project):
    with pytest.raises(DomainError, match="not 'HumanUser'"):
        create_version(
            sg=mockgun,
            project=project,
            code="v001",
            description="",
            entity_type="HumanUser",
            entity_shotgrid_id=1,
        )


def test_get_client_refuses_when_shotgrid_is_disabled(settings):
    settings.SHOTGRID_ENABLED = False

    with pytest.raises(DomainError, match="ShotGrid is not enabled"):
        get_client()


def test_get_client_names_the_missing_settings(settings):
    settings.SHOTGRID_ENABLED = True
    settings.SHOTGRID_URL = "https://studio.shotgunstudio.com"
    settings.SHOTGRID_SCRIPT_NAME = ""
    settings.SHOTGRID_API_KEY = ""

    with pytest.raises(DomainError, match="set SHOTGRID_SCRIPT_NAME, SHOTGRID_API_KEY"):
        get_client()


def test_get_client_builds_a_client_from_settings(settings):
    settings.SHOTGRID_ENABLED = True
    settings.SHOTGRID_URL = "https://studio.shotgunstudio.com"
    settings.SHOTGRID_SCRIPT_NAME = "pipeline"
    settings.SHOTGRID_API_KEY = "secret-key"

    client = get_client()  # connects on first use: no network here

    assert isinstance(client, shotgun_api3.Shotgun)
    assert client.base_url == "https://studio.shotgunstudio.com"
    assert (client.config.script_name, client.config.api_key) == ("pipeline", "secret-key")


def test_shotgrid_sync_command_syncs_the_named_project(shotgrid_settings, site, project):
    out = StringIO()

    call_command("shotgrid_sync", "--project", "dragon", stdout=out)

    assert Shot.objects.filter(project=project).count() == 3
    assert "dragon: sequences 2 created, 0 updated, 0 unchanged; shots 3 created" in out.getvalue()
    assert AuditEvent.objects.get(verb="shotgrid.synced").actor is None


def test_shotgrid_sync_command_syncs_every_active_linked_project(shotgrid_settings, site, project):
    other = ProjectFactory(code="other", shotgrid_id=site.other_project_id)
    ProjectFactory(code="unlinked")
    ProjectFactory(code="old", shotgrid_id=7, status=Project.Status.ARCHIVED)
    out = StringIO()

    call_command("shotgrid_sync", stdout=out)

    assert Shot.objects.filter(project=project).count() == 3
    assert list(Shot.objects.filter(project=other).values_list("code", flat=True)) == ["os_sh0010"]
    synced = [line.split(":")[0] for line in out.getvalue().splitlines()]
    assert synced == ["dragon", "other"]


def test_shotgrid_sync_command_fails_clearly_when_shotgrid_is_off(settings, project):
    settings.SHOTGRID_ENABLED = False

    with pytest.raises(CommandError, match="ShotGrid is not enabled"):
        call_command("shotgrid_sync", "--project", "dragon")

    assert not AuditEvent.objects.exists()


def test_shotgrid_sync_command_reports_an_unlinked_project(shotgrid_settings, site):
    ProjectFactory(code="unlinked")
    err = StringIO()

    with pytest.raises(CommandError, match="failed for unlinked"):
        call_command("shotgrid_sync", "--project", "unlinked", stderr=err)

    assert "not linked to ShotGrid" in err.getvalue()


def test_shotgrid_sync_command_refuses_an_unknown_project_code(shotgrid_settings):
    with pytest.raises(CommandError, match="No project with code 'nope'"):
        call_command("shotgrid_sync", "--project", "nope")


def test_shotgrid_sync_command_says_when_no_project_is_linked(shotgrid_settings):
    ProjectFactory(code="unlinked")
    out = StringIO()

    call_command("shotgrid_sync", stdout=out)

    assert "No active project is linked to ShotGrid" in out.getvalue()
    assert not AuditEvent.objects.exists()
