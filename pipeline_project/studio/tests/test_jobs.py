import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import transaction
from django.urls import reverse
from rq.registry import ScheduledJobRegistry

from pipeline_project import jobs
from pipeline_project.studio.models import JobRun, Project
from pipeline_project.testing import sample_jobs

from .factories import ProjectFactory

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def rq_redis(settings, redis_url, subprocess_env):
    """Real RQ on an emptied Redis database, and a command to run a worker in burst mode."""
    settings.JOBS_INLINE = False
    settings.REDIS_URL = redis_url
    settings.RQ_QUEUES = {
        name: {"URL": redis_url, "DEFAULT_TIMEOUT": 60, "ASYNC": True}
        for name in settings.JOB_QUEUES
    }
    env = subprocess_env | {"REDIS_URL": redis_url}

    def burst(*queues):
        result = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "rqworker",
                *(queues or ["default"]),
                "--burst",
                "--with-scheduler",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    return burst


@pytest.mark.services
def test_job_enqueued_in_a_transaction_runs_only_after_commit_on_a_real_worker(rq_redis):
    queue = jobs.get_queue("default")
    with transaction.atomic():
        project = ProjectFactory(name="before")
        run = jobs.enqueue(
            sample_jobs.rename_project, project.pk, "renamed by the worker", name="Rename"
        )
        assert queue.count == 0, "enqueued before the transaction committed"
    assert queue.count == 1
    assert JobRun.objects.get(pk=run.pk).status == JobRun.Status.QUEUED

    rq_redis("default")

    project.refresh_from_db()
    run.refresh_from_db()
    assert project.name == "renamed by the worker"
    assert run.status == JobRun.Status.SUCCEEDED and run.attempts == 1 and run.finished_at
    assert queue.count == 0


@pytest.mark.services
def test_rolled_back_transaction_enqueues_nothing(rq_redis):
    queue = jobs.get_queue("default")
    with pytest.raises(RuntimeError), transaction.atomic():
        project = ProjectFactory()
        jobs.enqueue(sample_jobs.rename_project, project.pk, "never")
        raise RuntimeError("the request failed")
    assert queue.count == 0
    assert not JobRun.objects.exists()


@pytest.mark.services
def test_progress_is_recorded_for_pages_to_poll(rq_redis, client, make_user):
    project = ProjectFactory()
    user = make_user("artist")
    run = jobs.enqueue(
        sample_jobs.count_files,
        project.pk,
        5,
        queue="scanning",
        name="Count",
        user=user,
        unit="files",
    )

    rq_redis("scanning")

    run.refresh_from_db()
    assert (run.done, run.total, run.get_percent(), run.message) == (5, 5, 100, "file 5 of 5")
    client.force_login(user)
    fragment = client.get(run.get_absolute_url(), headers={"HX-Request": "true"}).content.decode()
    assert 'id="progress"' in fragment and "5 of 5 files" in fragment
    assert "hx-trigger" not in fragment, "a finished job must stop polling"
    assert "<html" not in fragment


@pytest.mark.services
def test_transient_fault_is_retried_with_backoff_and_then_succeeds(rq_redis):
    project = ProjectFactory()
    run = jobs.enqueue(sample_jobs.flaky_once, project.pk, retry=jobs.backoff(3, first=1))

    rq_redis("default")
    run.refresh_from_db()
    assert run.status == JobRun.Status.RETRYING and "storage not mounted yet" in run.message
    registry = ScheduledJobRegistry(queue=jobs.get_queue("default"))
    assert registry.get_job_ids() == [str(run.pk)], "the retry waits for its backoff delay"

    time.sleep(1.5)  # let the 1 s backoff pass; the worker's scheduler then re-enqueues it
    rq_redis("default")

    run.refresh_from_db()
    project.refresh_from_db()
    assert project.description == "attempted, then done"
    assert run.status == JobRun.Status.SUCCEEDED and run.attempts == 2


@pytest.mark.services
def test_permanent_fault_fails_at_once_and_says_why(rq_redis):
    project = ProjectFactory()
    run = jobs.enqueue(sample_jobs.always_broken, project.pk, retry=jobs.backoff(3, first=1))

    rq_redis("default")

    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED and run.attempts == 1
    assert "ValueError: manifest hash mismatch" in run.error


@pytest.mark.django_db(transaction=True)
def test_inline_mode_runs_the_job_in_process_after_commit(settings):
    settings.JOBS_INLINE = True
    with transaction.atomic():
        project = ProjectFactory(name="before")
        run = jobs.enqueue(sample_jobs.rename_project, project.pk, "inline")
        assert Project.objects.get(pk=project.pk).name == "before"
    assert Project.objects.get(pk=project.pk).name == "inline"
    assert JobRun.objects.get(pk=run.pk).status == JobRun.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_inline_mode_failure_is_recorded_not_raised_into_the_request(settings):
    settings.JOBS_INLINE = True
    project = ProjectFactory()
    run = jobs.enqueue(sample_jobs.always_broken, project.pk)
    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED and "manifest hash mismatch" in run.error


def test_unknown_queue_is_refused(db):
    with pytest.raises(ValueError, match="unknown queue"):
        jobs.get_queue("gpu")


@pytest.mark.services
def test_rq_dashboard_is_reachable_for_admins_only(rq_redis, client, make_user):
    jobs.enqueue(sample_jobs.rename_project, ProjectFactory().pk, "x", queue="etl")
    client.force_login(make_user("admin", is_staff=True, is_superuser=True))
    page = client.get(reverse("django_rq:home"))
    assert page.status_code == 200
    assert all(
        name in page.content.decode() for name in ("scanning", "transfer", "etl", "notifications")
    )

    client.force_login(make_user("artist"))
    assert client.get(reverse("django_rq:home")).status_code == 302  # to the admin login
