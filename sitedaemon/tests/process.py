"""Running real `python -m sitedaemon` processes in tests: against the fake orchestrator here,
and against the real Django server in colour_routing's and the browser tests."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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


def queue_states(state_dir) -> dict:
    """The daemon's own queue, read as another process would (WAL allows it)."""
    path = Path(state_dir) / "queue.sqlite3"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return dict(db.execute("SELECT state, count(*) FROM items GROUP BY state"))
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon_env(key: str | None = None) -> dict:
    """The environment of a daemon process: nothing of pytest's or Django's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO"))}
    env.pop("PYTHONPATH", None)
    if key is not None:
        env["DAEMON_API_KEY"] = key
    return env


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
