import shotgun_api3
from django.core.management.base import BaseCommand, CommandError

from pipeline_project.errors import DomainError
from pipeline_project.studio.models import Project
from pipeline_project.studio.shotgrid import get_client, sync_project


class Command(BaseCommand):
    help = (
        "Pull sequences, shots and assets from ShotGrid into the studio database: one project "
        "(--project CODE) or every active project that has a ShotGrid id. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", metavar="CODE", help="Sync only this project.")

    def handle(self, *args, project=None, **options):
        try:
            sg = get_client()
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        projects = self._projects(project)
        if not projects:
            self.stdout.write("No active project is linked to ShotGrid; nothing to sync.")
            return
        # One project failing (unlinked, gone from ShotGrid) must not keep the others stale.
        failed = []
        for item in projects:
            try:
                counts = sync_project(project=item, sg=sg)
            except (DomainError, shotgun_api3.ShotgunError, OSError) as exc:
                self.stderr.write(f"{item.code}: {exc}")
                failed.append(item.code)
                continue
            self.stdout.write(f"{item.code}: {_summary(counts)}")
        if failed:
            raise CommandError(f"ShotGrid sync failed for {', '.join(failed)}.")

    def _projects(self, code):
        if code is None:
            return list(Project.objects.active().filter(shotgrid_id__isnull=False))
        project = Project.objects.filter(code=code).first()
        if project is None:
            raise CommandError(f"No project with code {code!r}.")
        return [project]


def _summary(counts: dict) -> str:
    return "; ".join(
        f"{kind} {c['created']} created, {c['updated']} updated, {c['unchanged']} unchanged"
        for kind, c in counts.items()
    )
