"""The real site daemon (`python -m sitedaemon`) against the real orchestrator: the site served
by gunicorn with the production config (gthread workers, keep-alive) on the test database.

Whatever happens to either side — the orchestrator down while files arrive, stopped mid-run
with kept-alive connections cut, the daemon SIGKILLed — every file ends up registered exactly
once (one MediaFile, one "detected" audit event) with the right hash, and uploaded.
"""

import hashlib
import os

import pytest

from colour_routing.models import MediaFile
from pipeline_project.studio.models import AuditEvent
from sitedaemon.tests.process import Daemon, daemon_env, queue_states, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tustin(make_site):
    return make_site("tustin")


@pytest.fixture
def watch(tmp_path):
    folder = tmp_path / "ingest"
    folder.mkdir()
    return folder


@pytest.fixture
def start_daemon(tustin, web_server, watch, tmp_path):
    """start_daemon(*options) -> a Daemon for Tustin on `watch` (or `folder`), always on the
    same queue."""
    daemons = []

    def start(*options, folder=None):
        args = [
            "--site",
            "tustin",
            "--watch",
            str(folder or watch),
            "--orchestrator",
            web_server.url,
            "--state-dir",
            str(tmp_path / "daemon-state"),
            "--settle",
            "0.2",
            "--heartbeat",
            "1",
            "--max-backoff",
            "0.5",
            *options,
        ]
        daemon = Daemon(args, daemon_env(tustin[1]), tmp_path / f"daemon-{len(daemons)}.log")
        daemons.append(daemon)
        return daemon

    start.state = tmp_path / "daemon-state"
    yield start
    for daemon in daemons:
        daemon.reap()


def write(watch, count, prefix, size=2000):
    """`count` files under watch/prefix; returns {relative path: sha256}."""
    written = {}
    for i in range(count):
        relative = f"{prefix}/{i // 50:02d}/clip_{i:04d}.mov"
        data = os.urandom(size + i)
        (watch / relative).parent.mkdir(parents=True, exist_ok=True)
        (watch / relative).write_bytes(data)
        written[relative] = hashlib.sha256(data).hexdigest()
    return written


def uploaded() -> int:
    return MediaFile.objects.filter(uploaded_at__isnull=False).count()


def assert_registered_once(expected: dict, sites_root):
    """Every file exactly once, with its hash, uploaded intact; nothing else."""
    rows = list(MediaFile.objects.values_list("path", "sha256", "uploaded_at"))
    assert sorted((path, sha) for path, sha, _ in rows) == sorted(expected.items())
    assert all(uploaded_at for *_, uploaded_at in rows)
    detected = AuditEvent.objects.filter(verb="colour.file.detected")
    assert detected.count() == len(expected), "a file was registered more than once"
    for path, sha in expected.items():
        stored = (sites_root / "tustin" / path).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == sha, path


def test_orchestrator_down_while_files_arrive_then_up_registers_each_once(
    web_server, start_daemon, watch, sites_root
):
    daemon = start_daemon()  # the orchestrator is not running yet
    first = write(watch, 20, "day1")
    daemon.wait_log("orchestrator unavailable (connection refused)")
    wait_until(lambda: queue_states(start_daemon.state).get("pending") == 20, what="20 queued")
    assert not MediaFile.objects.exists()

    web_server.start()
    wait_until(lambda: uploaded() == 20, timeout=60, what="the first 20 uploaded")
    daemon.wait_log("orchestrator answering again")

    # Stopped mid-run: the daemon's kept-alive connections are cut; more files arrive.
    web_server.stop()
    second = write(watch, 30, "day2")
    daemon.wait_log("orchestrator unavailable", timeout=30)
    wait_until(lambda: queue_states(start_daemon.state).get("pending") == 30, what="30 queued")
    web_server.start()
    wait_until(lambda: uploaded() == 50, timeout=60, what="all 50 uploaded")

    assert_registered_once(first | second, sites_root)
    wait_until(
        lambda: queue_states(start_daemon.state) == {"done": 50}, what="the daemon's queue done"
    )


def test_killed_daemon_restarted_registers_each_file_once(
    web_server, start_daemon, watch, sites_root
):
    web_server.start()
    expected = write(watch, 400, "batch", size=1500)
    daemon = start_daemon()
    wait_until(lambda: MediaFile.objects.count() >= 40, timeout=60, what="40 registrations")

    daemon.kill_hard()  # SIGKILL mid-way through the registrations, and its hash helper
    registered_when_killed = MediaFile.objects.count()
    assert 40 <= registered_when_killed < 400
    restarted = start_daemon()
    wait_until(lambda: uploaded() >= 20, timeout=60, what="uploads to start")

    restarted.kill_hard()  # and again while it uploads
    assert uploaded() < 400
    start_daemon()
    wait_until(lambda: uploaded() == 400, timeout=120, what="all 400 uploaded")

    assert_registered_once(expected, sites_root)
    assert "(already known)" in restarted.log(), "the restart sent registrations again"
    leftovers = [p for p in (sites_root / "tustin").rglob(".*") if p.is_file()]
    assert leftovers == [], "an upload cut off left a temporary file"


def test_a_metadata_only_daemon_on_the_sites_storage_root_gets_its_file_transferred(
    web_server, start_daemon, sites_root, settings, colour_people, make_site
):
    """The daemon watches the site's storage root (mounted on the orchestrator too) and only
    reports; the transfer reads the file from there."""
    from colour_routing import services
    from colour_routing.models import State

    settings.JOBS_INLINE = True
    nashville, _ = make_site("nashville")
    web_server.start()
    daemon = start_daemon("--metadata-only", folder=sites_root / "tustin")
    expected = write(sites_root / "tustin", 1, "ingest", size=300_000)
    [(path, sha)] = expected.items()
    media = wait_until(lambda: MediaFile.objects.filter(path=path).first(), what="the report")
    daemon.wait_log(f"registered {path}")
    assert media.sha256 == sha and not media.is_uploaded()

    engineer = colour_people["engineer"]
    media = services.file_validate(media=media, by=engineer)
    media = services.file_queue(media=media, by=engineer, destination=nashville)
    services.file_start_transfer(media=media, by=engineer)  # inline, after the commit

    media.refresh_from_db()
    assert media.state == State.TRANSFERRED, media.state_reason
    assert media.transfer_jobs.get().verified_sha256 == sha
    copy = sites_root / "nashville" / "incoming" / "tustin" / path
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == sha
    assert "uploaded" not in daemon.log()
