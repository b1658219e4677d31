"""Many people approving one stage at the same moment, on PostgreSQL's real row locks."""

import threading

import pytest
from django.db import connection, connections

from pipeline_project.errors import IllegalTransition
from transfers import services
from transfers.models import Approval, Status, Transfer

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row-lock races need PostgreSQL (SQLite serialises writes)",
)


@pytest.mark.django_db(transaction=True)
def test_simultaneous_approvals_of_one_stage_record_exactly_one(new_transfer, people, make_user):
    transfer = services.transfer_submit(transfer=new_transfer(), by=people["artist"])
    leads = [make_user("team_lead") for _ in range(8)]
    barrier = threading.Barrier(len(leads))
    results = {}

    def approve(lead):
        try:
            seen = Transfer.objects.get(pk=transfer.pk)  # each loads the page's state, then races
            barrier.wait()
            services.transfer_approve(transfer=seen, by=lead)
            results[lead.username] = "approved"
        except IllegalTransition as exc:
            results[lead.username] = str(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=approve, args=(lead,)) for lead in leads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    winners = [name for name, outcome in results.items() if outcome == "approved"]
    assert len(results) == len(leads) and len(winners) == 1
    assert Approval.objects.filter(transfer=transfer).count() == 1
    assert Approval.objects.get(transfer=transfer).decided_by.username == winners[0]
    losers = [outcome for outcome in results.values() if outcome != "approved"]
    assert all(f"already approved at the Team Lead stage by {winners[0]}" in o for o in losers)
    transfer.refresh_from_db()
    assert transfer.status == Status.PENDING_SUPERVISOR
