from importlib import import_module
from importlib.util import find_spec

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Load demo users, projects and each app's sample data. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="Run even with DEBUG off (never in production)."
        )

    def handle(self, *args, force=False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with well-known passwords; it refuses to run with DEBUG off. "
                "Use --force only on a throwaway installation."
            )
        # Each app that has demo data offers `<app>.demo.seed(stdout=...)`, in INSTALLED_APPS order,
        # so this command depends on no domain app.
        for app in apps.get_app_configs():
            if find_spec(f"{app.name}.demo") is None:
                continue
            self.stdout.write(f"Seeding {app.label}…")
            import_module(f"{app.name}.demo").seed(stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready. Log in as admin1 / admin123."))
