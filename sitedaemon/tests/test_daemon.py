"""The real daemon (`python -m sitedaemon`) against the fake orchestrator."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest

import sitedaemon

from .conftest import KEY, REPO, wait_until
from .process import queue_states


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_daemon_never_imports_django():
    """Every module of the daemon, watchdog included; only stdlib, watchdog and fileops."""
    child = """
import sys
import sitedaemon.__main__, sitedaemon.cli, sitedaemon.daemon, sitedaemon.detector
import sitedaemon.client, sitedaemon.store, sitedaemon.helper, sitedaemon.hashing
import sitedaemon.filters, sitedaemon.logs, sitedaemon.watch
import pipeline_project.fileops.hashing
import watchdog.observers, watchdog.observers.polling
ours = {"sitedaemon", "watchdog", "pipeline_project"}
print(sorted(m for m in sys.modules if m.split(".")[0] == "django"))
print(sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names) - ours
             - {"__main__", "_distutils_hack"}))
print(sorted(m for m in sys.modules if m.startswith("pipeline_project")
             and not m.startswith("pipeline_project.fileops") and m != "pipeline_project"))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    result = subprocess.run(
        [sys.executable, "-c", child], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["[]", "[]", "[]"], result.stdout


@pytest.mark.parametrize("observer", ["inotify", "polling"])
def test_a_file_dropped_in_is_registered_and_uploaded(
    orchestrator, start_daemon, files, watch, observer
):
    options = ["--polling", "--poll-interval", "0.2"] if observer == "polling" else []
    daemon = start_daemon(*options)
    orchestrator.wait_for(lambda o: o.heartbeats, what="the daemon to start")

    data = files("A001/clip_0001.mov", size=300_000)

    orchestrator.wait_for(lambda o: "A001/clip_0001.mov" in o.stored(), what="the upload")
    assert orchestrator.stored()["A001/clip_0001.mov"] == data
    (registration,) = orchestrator.registrations
    body = registration["body"]
    assert registration["status"] == 201
    assert body["site"] == "tustin"
    assert body["path"] == "A001/clip_0001.mov"
    assert body["size"] == len(data)
    assert body["sha256"] == sha(data)
    mtime = datetime.fromisoformat(body["mtime"])
    assert mtime.utcoffset().total_seconds() == 0
    assert mtime.timestamp() == pytest.approx((watch / "A001/clip_0001.mov").stat().st_mtime)
    assert body["metadata"] == {
        "filename": "clip_0001.mov",
        "extension": ".mov",
        "hostname": socket.gethostname(),
    }
    (upload,) = orchestrator.uploads
    assert upload == {"id": registration["id"], "length": len(data), "sha256": sha(data)} | {
        "status": 200
    }
    daemon.wait_log(
        f"uploaded A001/clip_0001.mov 300.0 kB sha256={sha(data)[:12]}… id={registration['id']}"
    )
    lines = [line for line in daemon.log().splitlines() if "A001/clip_0001.mov" in line]
    assert len(lines) == 1, f"one line per file: {lines}"
    assert KEY not in daemon.log()


def test_a_file_still_being_written_is_reported_once_it_settles(orchestrator, start_daemon, watch):
    settle = 1.0
    start_daemon(settle=str(settle))
    orchestrator.wait_for(lambda o: o.heartbeats, what="the daemon to start")
    path = watch / "growing.mxf"
    last_write = 0.0
    with open(path, "wb") as out:
        started = time.monotonic()
        while time.monotonic() - started < 2.5 * settle:  # longer than the settle time
            out.write(os.urandom(4096))
            out.flush()
            last_write = time.monotonic()
            assert not orchestrator.registrations, "reported while it was still growing"
            time.sleep(0.1)
    data = path.read_bytes()

    orchestrator.wait_for(lambda o: o.registrations, what="the registration")
    orchestrator.wait_for(lambda o: o.stored(), what="the upload")
    assert orchestrator.created() == [("growing.mxf", sha(data))]
    assert orchestrator.registrations[0]["at"] >= last_write + settle * 0.9
    assert orchestrator.stored() == {"growing.mxf": data}


def test_hidden_temporary_and_partial_files_are_ignored(orchestrator, start_daemon, files, watch):
    daemon = start_daemon("--polling", "--poll-interval", "0.2")
    orchestrator.wait_for(lambda o: o.heartbeats, what="the daemon to start")
    for name in (
        ".hidden.mov",
        "copying.mov.part",
        "edit.mov~",
        "render.tmp",
        "download.mov.crdownload",
        "~$notes.docx",
        ".cache/inside.mov",
        "A001/.git/objects.mov",
    ):
        files(name)
    files("renamed.mov.part", data=b"renamed when complete")
    os.rename(watch / "renamed.mov.part", watch / "renamed.mov")
    files("A001/real.mov", data=b"the real thing")

    orchestrator.wait_for(lambda o: len(o.stored()) == 2, what="the two real files")
    # Everything found was queued and delivered: the queue is empty.
    orchestrator.wait_for(
        lambda o: o.heartbeats and o.heartbeats[-1]["queued"] == 0 and len(o.heartbeats) > 2,
        what="an empty queue",
    )
    assert sorted(orchestrator.registered_paths()) == ["A001/real.mov", "renamed.mov"]
    assert "ignored" not in daemon.log().lower()


def test_orchestrator_down_while_files_arrive_then_up(orchestrator, start_daemon, files, tmp_path):
    orchestrator.stop()  # down from the start; the port stays the same
    daemon = start_daemon()
    sent = {
        f"reel{i // 5}/shot_{i:03d}.mov": files(f"reel{i // 5}/shot_{i:03d}.mov") for i in range(20)
    }
    daemon.wait_log("orchestrator unavailable")
    wait_until(lambda: queue_states(tmp_path / "state").get("pending") == 20, what="20 queued")

    orchestrator.start()

    orchestrator.wait_for(lambda o: len(o.stored()) == 20, what="all 20 uploaded")
    assert orchestrator.registered_paths() == dict.fromkeys(sent, 1)
    assert all(r["status"] == 201 for r in orchestrator.registrations)
    assert orchestrator.stored() == sent
    daemon.wait_log("orchestrator answering again")


def test_errors_500_are_retried_and_each_file_is_created_once(orchestrator, start_daemon, files):
    orchestrator.fail_status = 500
    daemon = start_daemon()
    sent = {f"clip_{i}.mov": files(f"clip_{i}.mov") for i in range(10)}
    orchestrator.wait_for(lambda o: o.count("register", 500) >= 2, what="failing attempts")
    daemon.wait_log("orchestrator unavailable (500 The orchestrator is unwell.)")

    orchestrator.fail_status = None

    orchestrator.wait_for(lambda o: len(o.stored()) == 10, what="all 10 uploaded")
    assert sorted(orchestrator.created()) == sorted((p, sha(d)) for p, d in sent.items())
    assert orchestrator.count("register", 201) == 10


def test_orchestrator_restarted_on_the_same_port_mid_run(orchestrator, start_daemon, files):
    daemon = start_daemon()
    first = {f"a_{i}.mov": files(f"a_{i}.mov") for i in range(5)}
    orchestrator.wait_for(lambda o: len(o.stored()) == 5, what="the first 5")
    orchestrator.stop()  # the kept-alive connections are cut too
    second = {f"b_{i}.mov": files(f"b_{i}.mov") for i in range(5)}
    daemon.wait_log("orchestrator unavailable")
    orchestrator.start()
    orchestrator.wait_for(lambda o: len(o.stored()) == 10, what="all 10")
    assert orchestrator.stored() == first | second
    assert sorted(orchestrator.created()) == sorted(
        (p, sha(d)) for p, d in (first | second).items()
    )


def test_killed_daemon_restarts_without_loss_or_duplicates(orchestrator, start_daemon, files):
    sent = {f"batch/f{i:03d}.dpx": files(f"batch/f{i:03d}.dpx", size=2000 + i) for i in range(200)}
    orchestrator.register_delay = 0.01  # slow enough to kill it mid-way
    daemon = start_daemon("--pipeline", "32", settle="0.2")
    orchestrator.wait_for(lambda o: o.count("register") >= 40, what="40 registrations")

    daemon.kill_hard()  # SIGKILL: no chance to clean up; the hash helper must go too
    assert 40 <= orchestrator.count("register") < 200
    orchestrator.register_delay = 0
    restarted = start_daemon("--pipeline", "32", settle="0.2")

    orchestrator.wait_for(lambda o: len(o.stored()) == 200, timeout=60, what="all 200")
    assert orchestrator.stored() == sent
    created = orchestrator.created()
    assert sorted(created) == sorted((p, sha(d)) for p, d in sent.items())  # once each
    # At most the requests in flight when it was killed were sent again (answered 200).
    assert orchestrator.count("register") - 200 <= 32
    assert orchestrator.count("register", 200) == orchestrator.count("register") - 200
    restarted.wait_log("queue: ")


def test_metadata_only_registers_without_uploading(orchestrator, start_daemon, files):
    daemon = start_daemon("--metadata-only")
    data = files("meta.mov", size=5000)
    orchestrator.wait_for(lambda o: o.registrations, what="the registration")
    orchestrator.wait_for(
        lambda o: len(o.heartbeats) > 2 and o.heartbeats[-1]["queued"] == 0,
        what="an empty queue",
    )
    assert orchestrator.created() == [("meta.mov", sha(data))]
    assert orchestrator.uploads == [] and orchestrator.uploads_started == 0
    assert "metadata only" in daemon.log()


def test_sigterm_stops_it_promptly_with_status_0(orchestrator, start_daemon):
    daemon = start_daemon(heartbeat="30")
    orchestrator.wait_for(lambda o: o.heartbeats, what="the daemon to start")
    started = time.monotonic()

    daemon.signal(signal.SIGTERM)

    assert daemon.wait(10) == 0
    assert time.monotonic() - started < 3
    daemon.wait_log("SIGTERM: stopping")
    daemon.wait_log("stopped")


def test_sigterm_during_an_upload_abandons_it_safely(orchestrator, start_daemon, files):
    data = files("big.mov", size=24 << 20)
    orchestrator.upload_chunk_delay = 0.05  # about 1.3 MB/s: the upload takes a while
    daemon = start_daemon()
    orchestrator.wait_for(lambda o: o.uploads_started, what="the upload to start")
    started = time.monotonic()

    daemon.signal(signal.SIGTERM)

    assert daemon.wait(15) == 0
    assert time.monotonic() - started < 6
    assert "big.mov" not in orchestrator.stored()
    orchestrator.upload_chunk_delay = 0
    start_daemon()
    orchestrator.wait_for(lambda o: "big.mov" in o.stored(), what="the upload, resumed")
    assert orchestrator.stored()["big.mov"] == data
    assert orchestrator.created() == [("big.mov", sha(data))]


def test_a_wrong_key_is_logged_clearly_and_does_not_spin(orchestrator, start_daemon, files):
    daemon = start_daemon(key="not-the-key", heartbeat="30")
    files("clip.mov")
    daemon.wait_log("orchestrator rejected the API key for site tustin (401 Invalid API key.)")
    daemon.wait_log("heartbeat failed: 401 Invalid API key.")
    daemon.wait_log("retrying in 1")  # 10 s (with jitter), whatever --max-backoff says
    attempts = orchestrator.count("register")
    time.sleep(2)  # an observation window, not a wait for something to happen
    assert orchestrator.count("register") == attempts == 1
    assert orchestrator.registrations == [] or all(
        r["status"] == 401 for r in orchestrator.registrations
    )
    assert "not-the-key" not in daemon.log()


def test_another_sites_key_gets_403_and_backs_off(orchestrator, start_daemon, files):
    daemon = start_daemon(key="dallas-key", heartbeat="30")
    files("clip.mov")
    daemon.wait_log("(403 This key belongs to site dallas, not tustin.)")
    daemon.wait_log("heartbeat failed: 403")
    time.sleep(1)  # an observation window
    assert orchestrator.count("register") == 1
    assert orchestrator.stored() == {}


def test_heartbeats_carry_the_version(orchestrator, start_daemon, files, watch):
    start_daemon(heartbeat="0.2")
    orchestrator.wait_for(lambda o: len(o.heartbeats) >= 3, what="three heartbeats")
    for beat in orchestrator.heartbeats:
        assert beat["version"] == sitedaemon.__version__
        assert beat["hostname"] == socket.gethostname()
        assert beat["watch"] == os.path.realpath(watch)
        assert isinstance(beat["queued"], int)


def test_permanent_4xx_fails_that_file_only(orchestrator, start_daemon, files):
    orchestrator.reject_paths["bad.mov"] = (422, "Not a media file we take.")
    daemon = start_daemon()
    files("bad.mov")
    good = files("good.mov")
    orchestrator.wait_for(lambda o: "good.mov" in o.stored(), what="the good file")
    daemon.wait_log("failed bad.mov: 422 Not a media file we take.")
    assert orchestrator.stored() == {"good.mov": good}
    assert orchestrator.registered_paths()["bad.mov"] == 1  # not retried


def test_a_refusal_that_leaves_the_body_unread_fails_no_other_file(
    orchestrator, start_daemon, files
):
    """Some servers answer an error without reading the request's body, then take that body
    for the next (pipelined) request: the daemon must not blame the next file for it."""
    sent = {f"p/{i:02d}.mov": files(f"p/{i:02d}.mov") for i in range(20)}
    orchestrator.refuse_unread_in = 5
    daemon = start_daemon("--metadata-only")
    orchestrator.wait_for(lambda o: len(o.created()) == 19, what="the 19 others")
    daemon.wait_log("failed p/")
    (failure,) = [line for line in daemon.log().splitlines() if " failed " in line]
    assert failure.endswith("422 Refused unread.")
    refused = failure.split(" failed ")[1].split(":")[0]
    assert {path for path, _ in orchestrator.created()} == set(sent) - {refused}
    assert orchestrator.registered_paths() == dict.fromkeys(set(sent) - {refused}, 1)


def test_connections_the_server_closes_are_reopened_without_sending_twice(
    orchestrator, start_daemon, files
):
    orchestrator.close_every = 7  # like nginx's keepalive_requests, but often
    sent = {f"k/{i:02d}.mov": files(f"k/{i:02d}.mov") for i in range(60)}
    start_daemon()
    orchestrator.wait_for(lambda o: len(o.stored()) == 60, what="all 60 uploaded")
    assert orchestrator.registered_paths() == dict.fromkeys(sent, 1)
    assert orchestrator.stored() == sent
    # The first connection showed the limit: later ones carry no request the server drops.
    orchestrator.wait_for(lambda o: len(o.unanswered_at_close) >= 4, what="4 connections closed")
    _first, *later = orchestrator.unanswered_at_close
    assert not any(later), orchestrator.unanswered_at_close


def test_a_changed_file_is_registered_as_a_new_version(orchestrator, start_daemon, files):
    start_daemon()
    first = files("grade.exr", data=b"version one")
    orchestrator.wait_for(lambda o: o.stored(), what="the first version")
    time.sleep(0.01)  # a later mtime, even on coarse clocks
    second = files("grade.exr", data=b"version two, longer")
    orchestrator.wait_for(lambda o: len(o.created()) == 2, what="the second version")
    orchestrator.wait_for(lambda o: o.stored()["grade.exr"] == second, what="its upload")
    assert orchestrator.created() == [("grade.exr", sha(first)), ("grade.exr", sha(second))]
    assert orchestrator.count("register") == 2


def test_an_upload_refused_as_damaged_is_hashed_again_and_retried(
    orchestrator, start_daemon, files
):
    orchestrator.bad_uploads = 1
    daemon = start_daemon()
    data = files("flaky.mov", size=50_000)
    orchestrator.wait_for(lambda o: "flaky.mov" in o.stored(), what="the upload")
    assert [u["status"] for u in orchestrator.uploads] == [400, 200]
    assert orchestrator.created() == [("flaky.mov", sha(data))]
    daemon.wait_log("upload of flaky.mov refused")


def run_once(start_daemon, *options, **kwargs) -> tuple[int, str]:
    daemon = start_daemon("--once", *options, **kwargs)
    return daemon.wait(60), daemon.log()


def test_once_delivers_everything_and_exits_0(orchestrator, start_daemon, files):
    sent = {f"o/{i}.mov": files(f"o/{i}.mov") for i in range(12)}

    code, log = run_once(start_daemon, settle="0.2")

    assert code == 0, log
    assert orchestrator.stored() == sent
    assert "all delivered" in log
    # A second run finds nothing new and sends nothing again.
    before = orchestrator.count("register")
    assert run_once(start_daemon, settle="0.2")[0] == 0
    assert orchestrator.count("register") == before


def test_once_exits_1_when_the_orchestrator_is_down_and_keeps_the_work(
    orchestrator, start_daemon, files, tmp_path
):
    sent = {f"{i}.mov": files(f"{i}.mov") for i in range(3)}
    orchestrator.stop()

    code, log = run_once(start_daemon, settle="0", max_backoff="0.1")

    assert code == 1, log
    assert "work remains: 3 waiting" in log
    assert queue_states(tmp_path / "state") == {"pending": 3}
    orchestrator.start()
    code, log = run_once(start_daemon, settle="0")
    assert code == 0, log
    assert orchestrator.stored() == sent
    assert orchestrator.registered_paths() == dict.fromkeys(sent, 1)


def test_once_exits_1_when_a_file_fails(orchestrator, start_daemon, files):
    orchestrator.reject_paths["bad.mov"] = (400, "Path too long.")
    files("bad.mov")
    good = files("good.mov")

    code, log = run_once(start_daemon, settle="0")

    assert code == 1, log
    assert "1 failed in this run" in log
    assert orchestrator.stored() == {"good.mov": good}


def test_once_with_a_wrong_key_exits_1_at_once(orchestrator, start_daemon, files):
    files("a.mov")
    started = time.monotonic()
    code, log = run_once(start_daemon, settle="0", key="wrong")
    assert code == 1, log
    assert time.monotonic() - started < 10
    assert "rejected the API key" in log


def test_once_leaves_a_file_still_growing_for_later(orchestrator, start_daemon, watch, files):
    files("done.mov")
    stop = threading.Event()

    def grow():
        with open(watch / "live.mov", "wb") as out:
            while not stop.is_set():
                out.write(b"x" * 1000)
                out.flush()
                time.sleep(0.05)

    writer = threading.Thread(target=grow)
    writer.start()
    try:
        code, log = run_once(start_daemon, settle="0.5")
    finally:
        stop.set()
        writer.join()
    assert code == 1, log
    assert "not reported: live.mov was still changing" in log
    assert orchestrator.registered_paths() == {"done.mov": 1}


def test_usage_errors_exit_2(start_daemon, tmp_path):
    no_key = start_daemon(key="")
    assert no_key.wait() == 2
    assert "no API key" in no_key.log()
    missing = start_daemon(folder=tmp_path / "nowhere")
    assert missing.wait() == 2
    assert "not a folder" in missing.log()


def test_a_second_daemon_on_the_same_state_folder_is_refused(orchestrator, start_daemon):
    start_daemon()
    orchestrator.wait_for(lambda o: o.heartbeats, what="the first daemon")
    second = start_daemon()
    assert second.wait() == 2
    assert "another sitedaemon is already using" in second.log()
