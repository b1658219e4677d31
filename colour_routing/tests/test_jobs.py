"""The colour-routing jobs run for real on burst RQ workers (child processes on Redis and the
test database): the site-to-site transfer on the transfer queue, MAM delivery on the default
queue. Transient faults are retried with backoff; when the retries run out the file is left
in a clear failed state, engineers are told, and the action can be tried again."""

import hashlib
import json
import os
from datetime import UTC, datetime

import pytest
from rq.registry import ScheduledJobRegistry

from colour_routing import mam, services
from colour_routing.models import MamAttempt, MediaFile, Route, State, TransferJob
from colour_routing.selectors import file_events
from pipeline_project import jobs
from pipeline_project.errors import IllegalTransition
from pipeline_project.studio.models import JobRun, Notification
from sitedaemon.tests.process import wait_until

from .receiver import SECRET

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = (3 << 20) + 777


@pytest.fixture
def engineer(colour_people):
    return colour_people["engineer"]


@pytest.fixture
def flaky_route(tmp_path):
    """flaky_route(failures) routes Tustin→Nashville through a stand-in vendor CLI that fails
    with exit code 75 ("network unreachable", declared transient) `failures` times, writing a
    little first, then copies: half, a pause of 2 s (progress is visible), the rest."""
    from colour_routing.models import Site

    def make(failures: int) -> Route:
        counter = tmp_path / "cli-runs"
        script = tmp_path / "vendor-cli"
        script.write_text(
            "#!/bin/sh\n"
            f'runs=$(cat "{counter}" 2>/dev/null || echo 0); runs=$((runs + 1))\n'
            f'echo $runs > "{counter}"\n'
            f'if [ $runs -le {failures} ]; then head -c 1000 "$1" > "$2"\n'
            '  echo "vendor-cli: network unreachable" >&2; exit 75; fi\n'
            f'head -c {SIZE // 2} "$1" > "$2"; sleep 2; cat "$1" > "$2"\n'
        )
        script.chmod(0o755)
        return Route.objects.create(
            source=Site.objects.get(code="tustin"),
            destination=Site.objects.get(code="nashville"),
            backend=Route.Backend.COMMAND,
            options={"template": f"{script} {{src}} {{tmp}}", "transient_exit_codes": [75]},
        )

    make.runs = lambda: int((tmp_path / "cli-runs").read_text())
    return make


def test_a_transfer_on_the_transfer_queue_retries_a_transient_fault_and_is_verified(
    settings, rq_worker, uploaded_file, flaky_route, engineer, sites_root
):
    settings.TRANSFER_RETRY_FIRST_DELAY = 2
    data = os.urandom(SIZE)
    media = uploaded_file(data=data)
    flaky_route(failures=1)
    services.file_start_transfer(media=media, by=engineer)
    job = TransferJob.objects.get(file=media)
    assert (job.backend, job.run.queue, job.run.unit) == ("command", "transfer", "bytes")
    final = sites_root / "nashville" / "incoming" / "tustin" / media.path

    before = datetime.now(UTC)
    rq_worker("transfer")  # the first attempt: the CLI fails transiently

    job.refresh_from_db()
    run = JobRun.objects.get(pk=job.run_id)
    assert (job.status, job.attempts) == (TransferJob.Status.RETRYING, 1)
    assert "exited with code 75" in job.error and "network unreachable" in job.error
    assert (run.status, run.attempts) == (JobRun.Status.RETRYING, 1)
    registry = ScheduledJobRegistry(queue=jobs.get_queue("transfer"))
    assert registry.get_job_ids() == [str(run.pk)]
    retry_at = registry.get_scheduled_time(str(run.pk))
    # The registry keeps whole seconds.
    assert (retry_at - before.replace(microsecond=0)).total_seconds() >= 2, "no backoff delay"
    waiting = MediaFile.objects.get(pk=media.pk)
    assert waiting.state == State.TRANSFERRING
    assert waiting.state_reason.startswith("Transfer attempt 1 failed: ")
    assert waiting.state_reason.endswith("Retrying.")
    assert not final.parent.exists() or os.listdir(final.parent) == []  # the partial is gone

    wait_until(lambda: datetime.now(UTC) >= retry_at, timeout=10, what="the retry to be due")
    worker = rq_worker.start("transfer")  # the second attempt copies, slowly
    try:
        partial = wait_until(
            lambda: TransferJob.objects.filter(
                pk=job.pk, bytes_done__gt=0, bytes_done__lt=SIZE
            ).first(),
            timeout=60,
            what="progress part-way through the copy",
        )
        assert (partial.bytes_done, partial.attempts) == (SIZE // 2, 2)
        wait_until(
            lambda: JobRun.objects.get(pk=run.pk).done == SIZE // 2, what="the run's progress"
        )
    finally:
        assert worker.wait(120) == 0

    job.refresh_from_db()
    run.refresh_from_db()
    media.refresh_from_db()
    assert (job.status, job.attempts, job.bytes_done) == (TransferJob.Status.SUCCEEDED, 2, SIZE)
    assert job.verified_sha256 == media.sha256 == hashlib.sha256(data).hexdigest()
    assert (run.status, run.attempts, run.done, run.total) == (
        JobRun.Status.SUCCEEDED,
        2,
        SIZE,
        SIZE,
    )
    assert media.state == State.TRANSFERRED
    assert media.destination_path == f"incoming/tustin/{media.path}"
    assert final.read_bytes() == data
    assert os.listdir(final.parent) == [final.name]
    assert flaky_route.runs() == 2
    transferred = [e for e in file_events(media) if e.verb == "colour.file.complete_transfer"]
    assert [e.after["verified_sha256"] for e in transferred] == [media.sha256]


@pytest.fixture
def webhook(settings, receiver):
    settings.MAM_TARGET = "webhook"
    settings.MAM_WEBHOOK_URL = receiver.url
    settings.MAM_WEBHOOK_SECRET = SECRET
    return receiver


@pytest.fixture
def in_progress(rq_worker, uploaded_file, colour_people, engineer):
    """A file copied to Nashville for real (transfer queue), assigned and being graded."""

    def make():
        media = services.file_start_transfer(media=uploaded_file(), by=engineer)
        rq_worker("transfer")
        colorist = colour_people["colorist"]
        media = services.file_assign(
            media=MediaFile.objects.get(pk=media.pk), by=engineer, colorist=colorist
        )
        return services.file_start(media=media, by=colorist)

    return make


def attempts(media) -> list[tuple]:
    return list(
        MamAttempt.objects.filter(file=media).values_list("number", "ok", "status_code", "target")
    )


def retry_delay(run, before) -> tuple[float, datetime]:
    """Seconds from `before` to the retry RQ scheduled for `run` (whole seconds), and when."""
    registry = ScheduledJobRegistry(queue=jobs.get_queue(run.queue))
    assert registry.get_job_ids() == [str(run.pk)], "no retry is scheduled"
    at = registry.get_scheduled_time(str(run.pk))
    return (at - before.replace(microsecond=0)).total_seconds(), at


def test_mam_webhook_delivery_is_retried_with_backoff_and_every_attempt_recorded(
    settings, rq_worker, webhook, in_progress, colour_people
):
    settings.MAM_RETRY_FIRST_DELAY = 1
    media = in_progress()
    webhook.answers = [(503, "MAM is indexing, try later"), (500, "database down")]
    services.file_deliver(media=media, by=colour_people["colorist"])
    run = JobRun.objects.get(func="colour_routing.jobs.deliver_to_mam")

    for number, (status, _) in enumerate(list(webhook.answers), start=1):
        before = datetime.now(UTC)
        rq_worker("default")
        media.refresh_from_db()
        assert media.state == State.IN_PROGRESS, "delivered before the MAM accepted it"
        assert (
            f"attempt {number} failed" in media.state_reason and str(status) in media.state_reason
        )
        assert JobRun.objects.get(pk=run.pk).status == JobRun.Status.RETRYING
        # While it waits to retry, a second delivery is refused rather than queued beside it.
        assert "deliver" not in dict(services.allowed_actions(media, colour_people["colorist"]))
        with pytest.raises(IllegalTransition, match="under way or waiting to retry"):
            services.file_deliver(media=media, by=colour_people["colorist"])
        assert JobRun.objects.filter(func="colour_routing.jobs.deliver_to_mam").count() == 1
        delay, due = retry_delay(run, before)
        assert delay >= 2 ** (number - 1), "retried without backing off"
        wait_until(lambda due=due: datetime.now(UTC) >= due, timeout=10, what="the retry")
    rq_worker("default")

    media.refresh_from_db()
    run.refresh_from_db()
    assert media.state == State.DELIVERED_TO_MAM and media.mam_reference == "webhook 200"
    assert (run.status, run.attempts) == (JobRun.Status.SUCCEEDED, 3)
    assert attempts(media) == [
        (1, False, 503, "webhook"),
        (2, False, 500, "webhook"),
        (3, True, 200, "webhook"),
    ]
    assert [request["ok"] for request in webhook.requests] == [True, True, True]
    last = webhook.requests[-1]
    assert mam.verify_signature(
        SECRET,
        last["body"],
        last["headers"]["X-Pipeline-Timestamp"],
        last["headers"]["X-Pipeline-Signature"],
    )
    assert not mam.verify_signature(
        "another secret",
        last["body"],
        last["headers"]["X-Pipeline-Timestamp"],
        last["headers"]["X-Pipeline-Signature"],
    )
    payload = json.loads(last["body"])
    assert (payload["event"], payload["id"], payload["sha256"], payload["colorist"]) == (
        "file.delivered",
        media.pk,
        media.sha256,
        colour_people["colorist"].username,
    )
    verbs = [e.verb for e in file_events(media)][-2:]
    assert verbs == ["colour.file.delivery_requested", "colour.file.deliver"]


def test_a_transfer_whose_retries_run_out_fails_clearly_and_can_be_retried(
    settings, rq_worker, uploaded_file, flaky_route, engineer, colour_people, sites_root
):
    settings.TRANSFER_RETRY_FIRST_DELAY = 0  # the worker runs every retry at once
    media = uploaded_file()
    route = flaky_route(failures=99)
    services.file_start_transfer(media=media, by=engineer)
    job = TransferJob.objects.get(file=media)

    rq_worker("transfer")

    job.refresh_from_db()
    run = JobRun.objects.get(pk=job.run_id)
    media.refresh_from_db()
    assert flaky_route.runs() == 6, "the first attempt and its 5 retries"
    assert (job.status, job.attempts) == (TransferJob.Status.FAILED, 6)
    assert job.error.startswith("gave up after 6 attempts: ")
    assert job.error.endswith("vendor-cli exited with code 75: vendor-cli: network unreachable")
    assert (run.status, run.attempts) == (JobRun.Status.FAILED, 6)
    assert media.state == State.TRANSFERRING
    assert media.state_reason.startswith("Transfer failed: gave up after 6 attempts")
    assert "exited with code 75" in media.state_reason
    assert Notification.objects.filter(
        recipient=engineer, level="error", title=f"Transfer of {media.filename} failed"
    ).exists()
    assert [e.after["attempts"] for e in file_events(media) if e.verb.endswith("failed")] == [6]
    assert ("start_transfer", "Retry transfer") in services.allowed_actions(media, engineer)
    assert services.allowed_actions(media, colour_people["readonly"]) == []

    # The engineer fixes the route and retries: a new job, which delivers.
    route.options = {"template": "cp {src} {tmp}"}
    route.save()
    services.file_start_transfer(media=media, by=engineer)
    rq_worker("transfer")

    media.refresh_from_db()
    assert media.state == State.TRANSFERRED and media.state_reason == ""
    assert list(media.transfer_jobs.order_by("pk").values_list("status", flat=True)) == [
        TransferJob.Status.FAILED,
        TransferJob.Status.SUCCEEDED,
    ]
    assert media.transfer_jobs.get(status="succeeded").verified_sha256 == media.sha256
    starts = [e.after["retry"] for e in file_events(media) if e.verb.endswith("start_transfer")]
    assert starts == [False, True]


def test_a_transfer_under_way_cannot_be_started_again(
    settings, redis_url, uploaded_file, engineer, api_client
):
    settings.JOBS_INLINE, settings.REDIS_URL = False, redis_url
    settings.RQ_QUEUES = {n: {"URL": redis_url, "ASYNC": True} for n in settings.JOB_QUEUES}
    media = services.file_start_transfer(media=uploaded_file(), by=engineer)  # queued on Redis
    assert ("start_transfer", "Retry transfer") not in services.allowed_actions(media, engineer)
    api_client.force_authenticate(engineer)

    response = api_client.post(f"/api/colour/files/{media.pk}/start-transfer/")

    assert response.status_code == 409
    assert (
        "is under way: it can be started again only once it has failed"
        in (response.json()["detail"])
    )
    assert media.transfer_jobs.count() == 1


def test_inline_jobs_never_retry_so_a_transient_fault_fails_at_once(
    settings, uploaded_file, flaky_route, engineer
):
    settings.JOBS_INLINE = True
    media = uploaded_file()
    flaky_route(failures=1)

    services.file_start_transfer(media=media, by=engineer)  # runs after the commit

    job = media.transfer_jobs.get()
    assert (job.status, job.attempts) == (TransferJob.Status.FAILED, 1)
    assert job.error.startswith("gave up after 1 attempt: ")
    assert JobRun.objects.get(pk=job.run_id).status == JobRun.Status.FAILED


def test_mam_delivery_whose_retries_run_out_fails_clearly_and_can_be_delivered_again(
    settings, rq_worker, webhook, in_progress, colour_people, engineer
):
    settings.MAM_RETRY_FIRST_DELAY = 0
    media = in_progress()
    colorist = colour_people["colorist"]
    webhook.answers = [(502, "bad gateway")] * 6
    services.file_deliver(media=media, by=colorist)

    rq_worker("default")

    media.refresh_from_db()
    assert media.state == State.IN_PROGRESS
    assert attempts(media) == [(n, False, 502, "webhook") for n in range(1, 7)]
    assert media.state_reason.startswith("MAM delivery failed: gave up after 6 attempts: POST")
    assert "502" in media.state_reason
    for person in (engineer, colorist):
        assert Notification.objects.filter(
            recipient=person, level="error", title=f"MAM delivery of {media.filename} failed"
        ).exists()
    assert "colour.file.mam_failed" in [e.verb for e in file_events(media)]
    assert ("deliver", "Deliver to MAM") in services.allowed_actions(media, colorist)

    services.file_deliver(media=media, by=colorist)  # the MAM is back
    rq_worker("default")

    media.refresh_from_db()
    assert media.state == State.DELIVERED_TO_MAM and media.state_reason == ""
    assert attempts(media)[-1] == (7, True, 200, "webhook")
    assert len(webhook.requests) == 7


def test_a_mam_receiver_that_refuses_is_not_retried(
    settings, rq_worker, webhook, in_progress, colour_people
):
    settings.MAM_RETRY_FIRST_DELAY = 0
    media = in_progress()
    webhook.answers = [(422, "unknown reel")]
    services.file_deliver(media=media, by=colour_people["colorist"])

    rq_worker("default")

    media.refresh_from_db()
    assert attempts(media) == [(1, False, 422, "webhook")]
    assert media.state == State.IN_PROGRESS
    assert (
        media.state_reason.startswith("MAM delivery failed: POST") and "422" in media.state_reason
    )
