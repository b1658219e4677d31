"""Small real jobs for the job-queue tests (importable by a worker process)."""

from pipeline_project import jobs
from pipeline_project.studio.models import Project


def rename_project(project_id, name):
    Project.objects.filter(pk=project_id).update(name=name)
    return name


def count_files(project_id, total):
    for done in range(1, total + 1):
        jobs.report_progress(done, total, f"file {done} of {total}")
    Project.objects.filter(pk=project_id).update(description=f"counted {total}")


def flaky_once(project_id):
    """Fails with a transient fault the first time, succeeds the second."""
    project = Project.objects.get(pk=project_id)
    if "attempted" not in project.description:
        Project.objects.filter(pk=project_id).update(description="attempted")
        raise jobs.TransientError("storage not mounted yet")
    Project.objects.filter(pk=project_id).update(description="attempted, then done")


def always_broken(project_id):
    Project.objects.filter(pk=project_id).update(description=project_id and "broken ran")
    raise ValueError("manifest hash mismatch")
