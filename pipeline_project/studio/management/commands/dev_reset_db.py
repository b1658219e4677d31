from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from pipeline_project.accounts.roles import ensure_role_groups


class Command(BaseCommand):
    help = "Development only: delete all data but keep the schema (then --seed reloads the demo)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--yes", action="store_true", help="Confirm that every row is to be deleted."
        )
        parser.add_argument("--seed", action="store_true", help="Run seed_demo afterwards.")

    def handle(self, *args, yes=False, seed=False, **options):
        # No override: a production database is never wiped by this command.
        if not settings.DEBUG:
            raise CommandError("dev_reset_db refuses to run with DEBUG off: it deletes every row.")
        if not yes:
            raise CommandError(
                f"This deletes ALL data in database {connection.settings_dict['NAME']!s} (the schema stays). "
                "Run again with --yes to confirm."
            )
        # flush TRUNCATEs on PostgreSQL, which the audit trail's append-only trigger allows.
        call_command("flush", interactive=False, verbosity=0)
        ensure_role_groups()
        self.stdout.write(self.style.SUCCESS("All data deleted; schema and roles kept."))
        if seed:
            call_command("seed_demo", stdout=self.stdout)
