"""Fixtures for the site daemon's tests: a fake orchestrator and real daemon processes.

These tests never use Django (the suite they run in does; they need no database).
"""

import os
from pathlib import Path

import pytest

from .fake_orchestrator import FakeOrchestrator
from .process import REPO, Daemon, daemon_env, wait_until

__all__ = ["KEY", "REPO", "wait_until"]

KEY = "tustin-key"


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
        daemon = Daemon(args, daemon_env(key), tmp_path / f"daemon-{len(daemons) + 1}.log")
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
