import pytest
from django.db import DatabaseError, connection, transaction

from pipeline_project.studio.audit import events_for, record
from pipeline_project.studio.models import AuditEvent

from .factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_record_keeps_actor_target_and_change(make_user):
    user = make_user("admin", username="ada")
    project = ProjectFactory(code="dragon")
    event = record(
        actor=user,
        verb="project.renamed",
        target=project,
        before={"name": "a"},
        after={"name": "b"},
        ip="10.1.2.3",
    )

    assert list(events_for(project)) == [event]
    assert (event.actor_name, event.target_repr, event.before, event.after) == (
        "ada",
        str(project),
        {"name": "a"},
        {"name": "b"},
    )
    assert event.ip_address == "10.1.2.3"


def test_system_events_have_no_actor():
    event = record(actor=None, verb="job.finished")
    assert event.actor is None and event.actor_name == ""


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only trigger exists on PostgreSQL"
)
def test_database_rejects_update_and_delete_of_audit_events():
    event = record(actor=None, verb="transfer.approved", after={"stage": 1})

    with pytest.raises(DatabaseError, match="append-only: UPDATE"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(verb="transfer.rejected")
    with pytest.raises(DatabaseError, match="append-only: DELETE"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE studio_auditevent SET after = NULL")

    event.refresh_from_db()
    assert event.verb == "transfer.approved" and event.after == {"stage": 1}
