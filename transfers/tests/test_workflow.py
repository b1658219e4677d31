"""The approval chain through the services: states, roles, reasons, audit, notifications."""

import pytest

from pipeline_project.errors import DomainError, IllegalTransition, RoleRequired
from pipeline_project.studio.audit import events_for
from pipeline_project.studio.models import Notification
from transfers import services
from transfers.models import Approval, Status

pytestmark = pytest.mark.django_db


def walk(transfer, people, until=Status.APPROVED):
    for role in ("team_lead", "supervisor", "line_producer"):
        if transfer.status == until:
            break
        transfer = services.transfer_approve(transfer=transfer, by=people[role])
    return transfer


def test_create_expands_folders_into_files_with_sizes_and_a_reference(new_transfer):
    transfer = new_transfer()
    assert transfer.reference == "TRF-00001"
    assert new_transfer().reference == "TRF-00002"  # gap-free, whatever the database ids are
    assert transfer.status == Status.DRAFT
    assert [(f.path, f.size) for f in transfer.files.all()] == [
        ("sq010/sh0010/comp_v3.nk", 6000),
        ("sq010/sh0010/renders/comp_v3.1001.exr", 24004),
        ("sq010/sh0010/renders/comp_v3.1002.exr", 24004),
    ]
    assert (transfer.file_count, transfer.total_bytes) == (3, 54008)
    assert [e.verb for e in events_for(transfer)] == ["transfer.created"]


def test_the_chain_walks_to_approved_each_stage_by_its_role(new_transfer, people):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    assert transfer.status == Status.PENDING_TEAM_LEAD
    assert Notification.objects.filter(recipient=people["team_lead"]).exists()

    transfer = services.transfer_approve(transfer=transfer, by=people["team_lead"], comment="nice")
    assert transfer.status == Status.PENDING_SUPERVISOR
    transfer = services.transfer_approve(transfer=transfer, by=people["supervisor"])
    assert transfer.status == Status.PENDING_LINE_PRODUCER
    transfer = services.transfer_approve(transfer=transfer, by=people["line_producer"])
    assert transfer.status == Status.APPROVED and transfer.approved_at

    assert list(transfer.approvals.values_list("stage", "decided_by__username", "comment")) == [
        ("pending_team_lead", "team_lead1", "nice"),
        ("pending_supervisor", "supervisor1", ""),
        ("pending_line_producer", "line_producer1", ""),
    ]
    verbs = [e.verb for e in events_for(transfer).order_by("created_at", "id")]
    assert verbs == [
        "transfer.created",
        "transfer.submitted",
        "transfer.approved",
        "transfer.approved",
        "transfer.approved",
    ]


def test_a_stage_cannot_be_approved_by_another_stages_role(new_transfer, people):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    with pytest.raises(RoleRequired, match="team_lead"):
        services.transfer_approve(transfer=transfer, by=people["supervisor"])
    transfer.refresh_from_db()
    assert transfer.status == Status.PENDING_TEAM_LEAD and not Approval.objects.exists()


def test_nobody_approves_their_own_request_by_default(new_transfer, people, make_user, roots):
    lead_artist = make_user("artist", "team_lead")
    transfer = services.transfer_submit(transfer=new_transfer(by=lead_artist), by=lead_artist)
    with pytest.raises(RoleRequired, match="your own request"):
        services.transfer_approve(transfer=transfer, by=lead_artist)
    assert services.allowed_actions(transfer, lead_artist) == [("cancel", "Cancel request")]

    roots.TRANSFERS_ALLOW_SELF_APPROVAL = True
    assert (
        services.transfer_approve(transfer=transfer, by=lead_artist).status
        == Status.PENDING_SUPERVISOR
    )


def test_admin_may_act_for_any_stage_and_it_is_audited(new_transfer, people):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    transfer = services.transfer_approve(transfer=transfer, by=people["admin"])
    assert transfer.approvals.get().acting_as == "admin as team_lead"
    event = events_for(transfer).filter(verb="transfer.approved").get()
    assert event.actor == people["admin"] and event.after["acting_as"] == "admin as team_lead"


def test_admin_standing_in_for_the_artist_is_audited_as_such(new_transfer, people):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["admin"])
    transfer = services.transfer_cancel(transfer=transfer, by=people["admin"])
    events = {e.verb: e for e in events_for(transfer)}
    assert events["transfer.submitted"].after["acting_as"] == "admin as owner"
    assert events["transfer.cancelled"].actor == people["admin"]
    assert events["transfer.cancelled"].after == {
        "status": Status.CANCELLED,
        "acting_as": "admin as owner",
    }


def test_the_artist_acting_on_their_own_request_is_audited_as_owner(new_transfer, people):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    services.transfer_cancel(transfer=transfer, by=people["artist"])
    event = events_for(transfer).get(verb="transfer.cancelled")
    assert (event.actor, event.after["acting_as"]) == (people["artist"], "owner")
    assert event.before == {"status": Status.PENDING_TEAM_LEAD}


def test_reject_needs_a_reason_then_the_artist_edits_and_resubmits(new_transfer, people, roots):
    transfer = walk(
        services.transfer_submit(transfer=new_transfer(), by=people["artist"]),
        people,
        until=Status.PENDING_SUPERVISOR,
    )
    with pytest.raises(DomainError, match="why"):
        services.transfer_reject(transfer=transfer, by=people["supervisor"], reason="  ")
    transfer.refresh_from_db()
    assert transfer.status == Status.PENDING_SUPERVISOR

    transfer = services.transfer_reject(
        transfer=transfer, by=people["supervisor"], reason="Frame 1002 is black"
    )
    assert transfer.status == Status.REJECTED and transfer.status_reason == "Frame 1002 is black"
    note = Notification.objects.get(recipient=people["artist"], title__contains="rejected")
    assert note.body == "Frame 1002 is black"

    (roots.STAGING_ROOT / "fixed.exr").write_bytes(b"fixed")
    transfer = services.transfer_edit(
        transfer=transfer,
        by=people["artist"],
        name="Comp_sh0010_v4",
        add_paths=["fixed.exr"],
        remove_paths=["sq010/sh0010/renders/comp_v3.1002.exr"],
    )
    assert transfer.name == "Comp_sh0010_v4" and transfer.file_count == 3
    transfer = services.transfer_resubmit(transfer=transfer, by=people["artist"])
    assert (transfer.status, transfer.round, transfer.status_reason) == (
        Status.PENDING_TEAM_LEAD,
        2,
        "",
    )
    # round 2 starts again at the team lead, and the first round's decisions stay on record
    transfer = services.transfer_approve(transfer=transfer, by=people["team_lead"])
    assert transfer.approvals.filter(stage="pending_team_lead").count() == 2


def test_cancel_before_approval_only(new_transfer, people):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    assert (
        services.transfer_cancel(transfer=transfer, by=people["artist"]).status == Status.CANCELLED
    )

    other = walk(
        services.transfer_submit(transfer=new_transfer(name="b"), by=people["artist"]), people
    )
    with pytest.raises(IllegalTransition, match="not possible now"):
        services.transfer_cancel(transfer=other, by=people["artist"])
    other.refresh_from_db()
    assert other.status == Status.APPROVED


def test_a_stale_approval_is_told_who_approved_first(new_transfer, people, make_user):
    second_lead = make_user("team_lead")
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    stale = type(transfer).objects.get(pk=transfer.pk)
    services.transfer_approve(transfer=transfer, by=people["team_lead"])
    with pytest.raises(
        IllegalTransition, match="already approved at the Team Lead stage by team_lead1"
    ):
        services.transfer_approve(transfer=stale, by=second_lead)
    assert Approval.objects.count() == 1


def test_bad_input_is_refused_and_changes_nothing(new_transfer, people, roots):
    from transfers.models import Transfer

    with pytest.raises(DomainError, match="name"):
        new_transfer(name="  ")
    with pytest.raises(DomainError, match="outside the staging area"):
        new_transfer(paths=["../../etc"])
    with pytest.raises(DomainError, match="does not exist"):
        new_transfer(paths=["sq010/nope"])
    with pytest.raises(RoleRequired):
        new_transfer(by=people["colorist"])
    draft = new_transfer(paths=[])
    with pytest.raises(DomainError, match="no files"):
        services.transfer_submit(transfer=draft, by=people["artist"])
    assert Transfer.objects.count() == 1 and Transfer.objects.get().status == Status.DRAFT


def test_shot_of_another_project_is_refused(new_transfer):
    from pipeline_project.studio.tests.factories import ShotFactory

    with pytest.raises(DomainError, match="does not belong"):
        new_transfer(shot=ShotFactory())
