"""AuditEvent is append-only: on PostgreSQL a trigger rejects UPDATE and DELETE.

TRUNCATE (a whole-database wipe by `dev_reset_db` or the test runner's flush) is not affected.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION studio_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'studio_auditevent is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER studio_auditevent_append_only
    BEFORE UPDATE OR DELETE ON studio_auditevent
    FOR EACH ROW EXECUTE FUNCTION studio_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS studio_auditevent_append_only ON studio_auditevent;
DROP FUNCTION IF EXISTS studio_auditevent_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("studio", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
