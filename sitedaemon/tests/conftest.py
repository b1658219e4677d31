"""Fixtures for the site daemon's tests: a fake orchestrator and real daemon processes.

These tests never use Django (the suite they run in does; they need no database).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .fake_orchestrator import FakeOrchestrator

REPO = Path(__file__).resolve().parents[2]
KEY = "tustin-key"


def wait_until(predicate, timeout=20.0, what="condition", interval=0.02):
    """Poll `predicate()` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(p) for p in children.read().split()]
    except OSError:
        return []


def gone(pid: int) -> bool:
    """True when `pid` has exited (a zombie nobody reaps counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class Daemon:
    """A `python -m sitedaemon` process; its output goes to a log file."""

    def __init__(self, args, env, log_path: Path):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in reap)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sitedaemon", *args],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text, timeout=20.0):
        return wait_until(lambda: text in self.log(), timeout, f"{text!r} in the daemon's log")

    def signal(self, signum):
        self.process.send_signal(signum)

    def wait(self, timeout=20.0) -> int:
        return self.process.wait(timeout)

    def kill_hard(self):
        """SIGKILL the daemon alone (as a crash would), then check its helper follows."""
        helpers = child_pids(self.pid)
        self.process.kill()
        self.process.wait(10)
        for pid in helpers:
            wait_until(lambda pid=pid: gone(pid), 10, f"hash helper {pid} to exit")

    def reap(self):
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(10)
        self._log.close()


@pytest.fixture
def orchestrator():
    fake = FakeOrchestrator().start()
    yield fake
    fake.stop()


@pytest.fixture
def watch(tmp_path) -> Path:
    folder = tmp_path / "watch"
    folder.mkdir()
    return folder


@pytest.fixture
def start_daemon(tmp_path, orchestrator, watch):
    """start_daemon(*options, key=..., settle=..., ...) -> Daemon, killed at the end."""
    daemons = []

    def start(
        *options,
        key=KEY,
        site="tustin",
        folder=None,
        url=None,
        settle="0.3",
        heartbeat="0.5",
        max_backoff="0.3",
        state=None,
    ) -> Daemon:
        args = [
            "--site",
            site,
            "--watch",
            str(folder or watch),
            "--orchestrator",
            url or orchestrator.url,
            "--state-dir",
            str(state or tmp_path / "state"),
            "--settle",
            settle,
            "--heartbeat",
            heartbeat,
            "--max-backoff",
            max_backoff,
            *options,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO"))}
        env["DAEMON_API_KEY"] = key
        env.pop("PYTHONPATH", None)
        daemon = Daemon(args, env, tmp_path / f"daemon-{len(daemons) + 1}.log")
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.reap()


@pytest.fixture
def files(watch):
    """files(name, data=None, size=...) writes a file in the watch folder; returns its bytes."""

    def write(name, data=None, size=10_000) -> bytes:
        data = os.urandom(size) if data is None else data
        path = watch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    return write
