"""Every studio role by every workflow action: allowed exactly where the workflow says."""

import pytest

from pipeline_project.errors import IllegalTransition, RoleRequired
from pipeline_project.studio.models import JobRun
from transfers import services
from transfers.models import ALLOWED_TRANSITIONS, Status, Transfer, TransferFile

from .conftest import ROLES

pytestmark = pytest.mark.django_db

# action → (state it starts from, who may do it). "owner" is the artist who made the request;
# another artist may not. Admins may act for anyone.
MATRIX = {
    "submit": (Status.DRAFT, {"owner", "admin"}),
    "approve@team_lead": (Status.PENDING_TEAM_LEAD, {"team_lead", "admin"}),
    "approve@supervisor": (Status.PENDING_SUPERVISOR, {"supervisor", "admin"}),
    "approve@line_producer": (Status.PENDING_LINE_PRODUCER, {"line_producer", "admin"}),
    "reject@team_lead": (Status.PENDING_TEAM_LEAD, {"team_lead", "admin"}),
    "reject@supervisor": (Status.PENDING_SUPERVISOR, {"supervisor", "admin"}),
    "reject@line_producer": (Status.PENDING_LINE_PRODUCER, {"line_producer", "admin"}),
    "resubmit": (Status.REJECTED, {"owner", "admin"}),
    "edit": (Status.REJECTED, {"owner", "admin"}),
    "cancel": (Status.PENDING_SUPERVISOR, {"owner", "admin"}),
    "rescan": (Status.SCAN_ERROR, {"data_team", "admin"}),
    "override_unscanned": (Status.NEEDS_OVERRIDE, {"data_team", "admin"}),
    "start_transfer": (Status.SCANNED, {"it", "admin"}),
    "retry_delivery": (Status.TRANSFERRED, {"it", "admin"}),
}
CALLS = {
    "submit": lambda t, u: services.transfer_submit(transfer=t, by=u),
    "approve": lambda t, u: services.transfer_approve(transfer=t, by=u),
    "reject": lambda t, u: services.transfer_reject(transfer=t, by=u, reason="no"),
    "resubmit": lambda t, u: services.transfer_resubmit(transfer=t, by=u),
    "edit": lambda t, u: services.transfer_edit(transfer=t, by=u, name="renamed"),
    "cancel": lambda t, u: services.transfer_cancel(transfer=t, by=u),
    "rescan": lambda t, u: services.transfer_rescan(transfer=t, by=u),
    "override_unscanned": lambda t, u: services.transfer_override_unscanned(
        transfer=t, by=u, reason="checked by hand"
    ),
    "start_transfer": lambda t, u: services.transfer_start_transfer(transfer=t, by=u),
    "retry_delivery": lambda t, u: services.transfer_retry_delivery(transfer=t, by=u),
}


def test_the_matrix_covers_every_workflow_action():
    assert {a.split("@")[0] for a in MATRIX} == set(ALLOWED_TRANSITIONS) == set(CALLS)


@pytest.mark.parametrize("action", list(MATRIX))
def test_role_matrix(action, new_transfer, people, make_user):
    state, allowed = MATRIX[action]
    owner = people["artist"]
    actors = {role: make_user(role) for role in ROLES} | {"owner": owner}
    outcome = {}
    for who, user in actors.items():
        transfer = new_transfer(by=owner)
        Transfer.objects.filter(pk=transfer.pk).update(status=state)
        transfer.files.update(
            scan_status=TransferFile.ScanStatus.UNSCANNED
            if state == Status.NEEDS_OVERRIDE
            else "clean"
        )
        transfer.refresh_from_db()
        offered = {a for a, _ in services.allowed_actions(transfer, user)}
        try:
            CALLS[action.split("@")[0]](transfer, user)
        except RoleRequired:
            outcome[who] = False
        else:
            outcome[who] = True
            transfer.refresh_from_db()
            changed = transfer.status != state or action == "edit"
            if action == "retry_delivery":  # the state stays until the delivery job has run
                changed = JobRun.objects.filter(
                    name=f"Deliver {transfer.reference}", target_id=str(transfer.pk)
                ).exists()
            assert changed, f"{action} by {who} changed nothing"
        assert (action.split("@")[0] in offered) == outcome[who], (
            f"page offers {action} to {who} wrongly"
        )
    assert {who for who, ok in outcome.items() if ok} == allowed


@pytest.mark.parametrize("action", sorted({a.split("@")[0] for a in MATRIX}))
def test_every_action_is_refused_in_a_wrong_state(action, new_transfer, people):
    transfer = new_transfer()
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.DELIVERED)
    transfer.refresh_from_db()
    with pytest.raises(IllegalTransition, match="Delivered"):
        CALLS[action](transfer, people["admin"])
    transfer.refresh_from_db()
    assert transfer.status == Status.DELIVERED
