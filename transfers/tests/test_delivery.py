"""Delivery: a ShotGrid Version for the linked shot (Mockgun stands in for ShotGrid), the artist
told; and the demo data of seed 000."""

import pytest
from django.core.management import call_command

from pipeline_project.studio.models import Notification
from pipeline_project.studio.tests.factories import ShotFactory
from transfers import services
from transfers.models import Status, Transfer

pytestmark = pytest.mark.django_db(transaction=True)


def approve_all(transfer, people):
    transfer = services.transfer_submit(transfer=transfer, by=people["artist"])
    for role in ("team_lead", "supervisor", "line_producer"):
        transfer = services.transfer_approve(transfer=transfer, by=people[role])
    return Transfer.objects.get(pk=transfer.pk)


def test_delivery_creates_a_shotgrid_version_on_the_linked_shot(
    roots, shotgrid_settings, sg_shot, new_transfer, people, project
):
    sg = shotgrid_settings
    shot = ShotFactory(sequence__project=project, code="sh0010", shotgrid_id=sg_shot["id"])

    transfer = approve_all(new_transfer(shot=shot), people)
    assert transfer.status == Status.NEEDS_OVERRIDE  # no scanner configured: released by hand
    services.transfer_override_unscanned(
        transfer=transfer, by=people["data_team"], reason="scanned offline"
    )
    transfer.refresh_from_db()

    assert transfer.status == Status.DELIVERED and transfer.shotgrid_version_id
    version = sg.find_one(
        "Version", [["id", "is", transfer.shotgrid_version_id]], ["code", "entity", "project"]
    )
    assert version["code"] == f"{transfer.reference} Comp_sh0010_v3"
    assert version["entity"]["id"] == sg_shot["id"] and version["entity"]["type"] == "Shot"
    assert Notification.objects.filter(
        recipient=people["artist"], title__contains="delivered"
    ).exists()


def test_without_shotgrid_delivery_still_completes(roots, new_transfer, people):
    roots.JOBS_INLINE, roots.CLAMD_SOCKET, roots.CLAMD_HOST = True, "", ""
    roots.SHOTGRID_ENABLED = False
    transfer = approve_all(new_transfer(), people)
    services.transfer_override_unscanned(transfer=transfer, by=people["data_team"], reason="ok")
    transfer.refresh_from_db()
    assert transfer.status == Status.DELIVERED and transfer.shotgrid_version_id is None


def test_seed_demo_adds_the_ten_sample_transfers_with_their_states(roots, settings):
    settings.DEBUG, settings.JOBS_INLINE = True, True
    call_command("seed_demo")
    call_command("seed_demo")  # idempotent
    expected = {
        "Scene_042_Final_v3": ("pending_supervisor", "normal"),
        "Char_Dragon_Textures": ("pending_team_lead", "normal"),
        "Env_Forest_Lighting": ("scanning", "high"),
        "Audio_Score_Ep3": ("transferred", "normal"),
        "Anim_Fight_Seq_v4": ("rejected", "high"),
        "Comp_Explosion_Final": ("pending_line_producer", "urgent"),
        "Env_City_Assets": ("transferred", "normal"),
        "Char_Hero_Rig_v5": ("pending_team_lead", "high"),
        "Tex_Vehicle_Pack": ("approved", "normal"),
        "Light_Interior_v2": ("draft", "low"),
    }
    got = {t.name: (t.status, t.priority) for t in Transfer.objects.all()}
    assert got == expected
    assert sorted(Transfer.objects.values_list("reference", flat=True)) == [
        f"TRF-{n:05d}" for n in range(1, 11)
    ]
    for transfer in Transfer.objects.filter(status=Status.TRANSFERRED):
        for f in transfer.files.all():
            assert f.is_verified() and (roots.PRODUCTION_ROOT / f.production_path).exists()


def test_the_demo_chain_can_be_walked_to_delivery_without_services(roots, settings):
    """What a newcomer does in `make run`: no clamd, jobs inline."""
    from django.contrib.auth import get_user_model

    settings.DEBUG, settings.JOBS_INLINE, settings.CLAMD_SOCKET, settings.CLAMD_HOST = (
        True,
        True,
        "",
        "",
    )
    call_command("seed_demo")
    users = {u.username: u for u in get_user_model().objects.all()}
    transfer = Transfer.objects.get(name="Char_Dragon_Textures")
    for name in ("teamlead1", "supervisor1", "producer1"):
        transfer = services.transfer_approve(transfer=transfer, by=users[name])
    transfer.refresh_from_db()
    assert transfer.status == Status.NEEDS_OVERRIDE and "no virus scanner" in transfer.status_reason
    services.transfer_override_unscanned(transfer=transfer, by=users["datateam1"], reason="demo")
    transfer.refresh_from_db()
    assert transfer.status == Status.DELIVERED
