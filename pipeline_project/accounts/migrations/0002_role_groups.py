from django.db import migrations


def create_roles(apps, schema_editor):
    from pipeline_project.accounts.roles import ensure_role_groups

    ensure_role_groups(apps.get_model("auth", "Group"))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
