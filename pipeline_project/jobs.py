"""RQ glue: enqueue after commit, record progress that pages poll, retry transient faults.

    run = jobs.enqueue(scan_transfer, transfer.pk, queue="scanning", name="Scan TRF-00001",
                       target=transfer, retry=jobs.backoff(5))

A job function takes IDs, loads rows, re-checks state (it may run twice) and calls a service. It
reports progress with `jobs.report_progress(done, total, message)` and raises `TransientError`
for faults worth retrying (a service unreachable); any other exception fails the job at once.

With REDIS_URL unset (`settings.JOBS_INLINE`) jobs run synchronously in the calling process, after
the transaction commits, through RQ's own synchronous mode on an in-memory Redis stand-in.
"""

import contextvars
import functools
import logging
import time
import traceback

import django_rq
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from rq import Retry
from rq.job import get_current_job

log = logging.getLogger(__name__)

_current_run = contextvars.ContextVar("current_job_run", default=None)
PROGRESS_WRITE_INTERVAL = 0.5  # seconds between progress writes; the last one always lands


class TransientError(Exception):
    """A fault that may pass (service down, network): the job is retried with backoff."""


def backoff(max_retries: int = 5, first: int = 10, cap: int = 600) -> Retry:
    """Exponential backoff: 10 s, 20 s, 40 s … capped at `cap`."""
    return Retry(max=max_retries, interval=[min(cap, first * 2**i) for i in range(max_retries)])


@functools.cache
def _inline_connection():
    import fakeredis

    return fakeredis.FakeRedis()


def get_queue(name: str = "default"):
    if name not in settings.JOB_QUEUES:
        raise ValueError(f"unknown queue {name!r}; queues: {', '.join(settings.JOB_QUEUES)}")
    if settings.JOBS_INLINE:
        return django_rq.get_queue(name, is_async=False, connection=_inline_connection())
    return django_rq.get_queue(name)


def enqueue(
    func,
    *args,
    queue="default",
    name="",
    user=None,
    target=None,
    unit="items",
    retry=None,
    **kwargs,
):
    """Create a JobRun now and enqueue `func(*args, **kwargs)` once the transaction commits.

    Returns the JobRun (its id is also the RQ job id). If the transaction rolls back, neither
    the JobRun nor the job exists.
    """
    from pipeline_project.studio.models import JobRun

    func_path = f"{func.__module__}.{func.__qualname__}"
    run = JobRun.objects.create(
        name=name or func.__name__.replace("_", " "),
        func=func_path,
        queue=queue,
        unit=unit,
        created_by=user if user is not None and user.is_authenticated else None,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=str(target.pk) if target is not None else "",
    )
    run.rq_job_id = str(run.pk)
    run.save(update_fields=["rq_job_id"])
    # DjangoRQ defers the enqueue to transaction.on_commit when inside an atomic block.
    get_queue(queue).enqueue_call(
        func=execute,
        args=(str(run.pk), func_path, args, kwargs),
        job_id=str(run.pk),
        retry=retry,
        description=run.name,
    )
    return run


def execute(run_id: str, func_path: str, args, kwargs):
    """The RQ entry point for every job: bookkeeping around the real function."""
    from pipeline_project.studio.models import JobRun

    JobRun.objects.filter(pk=run_id).update(
        status=JobRun.Status.RUNNING,
        started_at=timezone.now(),
        updated_at=timezone.now(),
        error="",
        attempts=_attempt_number(run_id),
    )
    token = _current_run.set({"id": run_id, "last": 0.0})
    try:
        result = import_string(func_path)(*args, **kwargs)
    except Exception as exc:
        _record_failure(run_id, exc)
        raise
    finally:
        _current_run.reset(token)
    JobRun.objects.filter(pk=run_id).update(
        status=JobRun.Status.SUCCEEDED, finished_at=timezone.now()
    )
    return result


def _attempt_number(run_id):
    from django.db.models import F

    from pipeline_project.studio.models import JobRun

    JobRun.objects.filter(pk=run_id).update(attempts=F("attempts") + 1)
    return JobRun.objects.values_list("attempts", flat=True).get(pk=run_id)


def _record_failure(run_id, exc):
    from pipeline_project.studio.models import JobRun

    job = get_current_job()
    # RQ's synchronous (inline) mode never retries: say failed rather than wait forever.
    retrying = isinstance(exc, TransientError) and will_retry()
    if job is not None and not retrying:
        job.retries_left = 0  # only transient faults are retried
    detail = f"{type(exc).__name__}: {exc}"
    log.warning("job %s %s: %s", run_id, "will retry" if retrying else "failed", detail)
    JobRun.objects.filter(pk=run_id).update(
        status=JobRun.Status.RETRYING if retrying else JobRun.Status.FAILED,
        error=detail if retrying else f"{detail}\n\n{traceback.format_exc(limit=8)}",
        message=f"{'Retrying after' if retrying else 'Failed:'} {exc}"[:500],
        finished_at=None if retrying else timezone.now(),
    )


def report_progress(done: int, total: int | None = None, message: str = "", *, force: bool = False):
    """Record progress of the running job. Cheap to call often: writes at most twice a second."""
    from pipeline_project.studio.models import JobRun

    state = _current_run.get()
    if state is None:
        return
    now = time.monotonic()
    if (
        not force
        and now - state["last"] < PROGRESS_WRITE_INTERVAL
        and (total is None or done < total)
    ):
        return
    state["last"] = now
    fields = {"done": done, "updated_at": timezone.now()}
    if total is not None:
        fields["total"] = total
    if message:
        fields["message"] = message[:500]
    JobRun.objects.filter(pk=state["id"]).update(**fields)


def earlier_live_run(target):
    """Another run of the current job's function on `target` that started before this one and is
    still alive, or None. Call it with `target`'s row locked: of two runs of the same work,
    the later one then always sees the earlier and steps aside (the one copy never races)."""
    from django.db.models import Q

    from pipeline_project.studio.models import JobRun

    state = _current_run.get()
    if state is None:
        return None
    me = JobRun.objects.get(pk=state["id"])
    return (
        JobRun.objects.alive_for(target, me.func)
        .exclude(pk=me.pk)
        .filter(Q(started_at__lt=me.started_at) | Q(started_at=me.started_at, pk__lt=me.pk))
        .first()
    )


def will_retry() -> bool:
    """Whether RQ will run the current job again if it raises TransientError now."""
    job = get_current_job()
    return bool(job is not None and job.should_retry and not settings.JOBS_INLINE)


def current_run_id() -> str | None:
    state = _current_run.get()
    return state["id"] if state else None


def on_commit(func, *args, **kwargs):
    """Run `func` after the current transaction commits (immediately outside one)."""
    transaction.on_commit(functools.partial(func, *args, **kwargs))
