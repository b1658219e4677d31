"""A real clamd for tests, started from a temp dir (RECIPES.md, "ClamAV (clamd) without internet").

clamd ships no signatures and refuses to start without some, so the fixture writes a one-line body
signature for the EICAR marker: anything containing `EICAR-STANDARD-ANTIVIRUS-TEST-FILE` is
reported as `Eicar-Test-Body.UNOFFICIAL`.

Fixtures:
- `clamd`: the session's clamd (local socket and TCP on 127.0.0.1), running when the test starts.
  A test may `stop()` it; the fixture starts it again afterwards, so other tests never notice.
- `clamd_settings`: `clamd`, with Django settings pointing at its local socket.
- `clamd_factory`: `clamd_factory(stream_max_length="1K")` → a private clamd for this test only.
- `eicar_bytes`: bytes clamd flags as infected (see also `eicar_payload()`).
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pyclamd
import pytest

from pipeline_project.testing import require_executable

EICAR_MARKER = b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
EICAR_SIGNATURE_NAME = "Eicar-Test-Body.UNOFFICIAL"
_SIGNATURE = f"Eicar-Test-Body:0:*:{EICAR_MARKER.hex()}\n"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


def eicar_payload(prefix: bytes = b"harmless test data, ", suffix: bytes = b"\n") -> bytes:
    """Bytes the test clamd reports as infected: the EICAR marker between `prefix` and `suffix`."""
    return prefix + EICAR_MARKER + suffix


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ClamdServer:
    """One clamd process listening on `socket` (a path) and on `host`:`port`."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, *, executable: str, stream_max_length: str = "100M"):
        self.directory = Path(directory)
        self.executable = executable
        self.port = free_port()
        self.socket = str(self.directory / "clamd.sock")
        if len(self.socket) > 100:  # AF_UNIX paths stop at 108 bytes
            raise RuntimeError(f"clamd socket path too long for AF_UNIX: {self.socket}")
        self.log_path = self.directory / "clamd.log"
        self.config_path = self.directory / "clamd.conf"
        self.process: subprocess.Popen | None = None
        self._write_config(stream_max_length)

    def __repr__(self):
        return f"<ClamdServer {self.socket} {self.host}:{self.port} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.is_running() else None

    def _write_config(self, stream_max_length: str):
        db = self.directory / "db"
        db.mkdir(parents=True, exist_ok=True)
        (db / "test.ndb").write_text(_SIGNATURE)
        self.config_path.write_text(
            f"DatabaseDirectory {db}\n"
            f"LocalSocket {self.socket}\n"
            "LocalSocketMode 666\n"
            f"TCPSocket {self.port}\n"
            f"TCPAddr {self.host}\n"
            "Foreground yes\n"
            f"StreamMaxLength {stream_max_length}\n"
            f"PidFile {self.directory / 'clamd.pid'}\n"
        )

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ping(self) -> bool:
        """True when clamd answers PING on its local socket."""
        try:
            return pyclamd.ClamdUnixSocket(filename=self.socket, timeout=2).ping()
        except OSError:  # pyclamd.ConnectionError is an OSError
            return False

    def start(self):
        """Start clamd (if it is not running) and wait until it answers PING."""
        if self.is_running():
            return
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.executable, "-c", str(self.config_path)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"clamd exited with {self.process.returncode}:\n{self._log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"clamd did not answer PING in {_START_TIMEOUT}s:\n{self._log()}"
                )
            time.sleep(0.02)

    def stop(self):
        """Stop clamd by its PID and wait for it to exit, so it no longer answers at all."""
        if not self.is_running():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # A killed clamd leaves its socket file behind; a stale one would only confuse.
        if os.path.exists(self.socket):
            os.unlink(self.socket)

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


def _clamd_executable() -> str:
    return require_executable(
        "clamd", "apt-get install -y --no-install-recommends clamav-daemon clamav"
    )


@pytest.fixture(scope="session")
def _clamd_shared(tmp_path_factory):
    server = ClamdServer(tmp_path_factory.mktemp("clamd"), executable=_clamd_executable())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clamd(_clamd_shared):
    """The session's clamd, answering PING; restarted after the test if the test stopped it."""
    _clamd_shared.start()
    yield _clamd_shared
    _clamd_shared.start()


@pytest.fixture
def clamd_settings(clamd, settings):
    """`clamd`, with Django settings pointing at its local socket (as production would)."""
    settings.CLAMD_SOCKET = clamd.socket
    settings.CLAMD_HOST = ""
    settings.CLAMD_PORT = clamd.port
    return clamd


@pytest.fixture
def clamd_factory(tmp_path_factory):
    """Start private clamds with their own options (e.g. a small StreamMaxLength); stopped after
    the test. Use it for tests that need limits the shared instance does not have."""
    servers = []

    def start(*, stream_max_length: str = "100M") -> ClamdServer:
        server = ClamdServer(
            tmp_path_factory.mktemp("clamd-private"),
            executable=_clamd_executable(),
            stream_max_length=stream_max_length,
        )
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def eicar_bytes() -> bytes:
    """Bytes that embed the EICAR marker, which the test clamd reports as infected."""
    return eicar_payload()
