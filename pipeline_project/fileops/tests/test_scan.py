import hashlib
import os
import socket
import struct
import threading
import tracemalloc

import pytest

from pipeline_project.fileops.clamav import ClamdAddress
from pipeline_project.fileops.scan import CLAMAV_MAX_BYTES, ScanResult, scan_file
from pipeline_project.testing import require_executable
from pipeline_project.testing.clamd import EICAR_SIGNATURE_NAME, ClamdServer, free_port

from .helpers import write_random

MiB = 1 << 20


def socket_address(server) -> ClamdAddress:
    return ClamdAddress(socket=server.socket, timeout=10)


def tcp_address(server) -> ClamdAddress:
    return ClamdAddress(host=server.host, port=server.port, timeout=10)


def closed_port() -> ClamdAddress:
    return ClamdAddress(host="127.0.0.1", port=free_port(), timeout=2)


# --- against the real clamd ------------------------------------------------------------------
@pytest.mark.services
@pytest.mark.parametrize("address_of", [socket_address, tcp_address])
def test_scan_clean_file_is_clean_with_the_hash_of_what_was_scanned(clamd, tmp_path, address_of):
    data = write_random(tmp_path / "plate.exr", 3 * MiB + 5)

    result = scan_file(tmp_path / "plate.exr", address_of(clamd))

    assert result == ScanResult("clean", "", hashlib.sha256(data).hexdigest())
    assert result.is_clean()


@pytest.mark.services
def test_scan_empty_file_is_clean(clamd, tmp_path):
    (tmp_path / "empty").write_bytes(b"")

    assert scan_file(tmp_path / "empty", socket_address(clamd)).is_clean()


@pytest.mark.services
@pytest.mark.parametrize("address_of", [socket_address, tcp_address])
def test_scan_eicar_is_infected_with_its_signature(clamd, tmp_path, eicar_bytes, address_of):
    (tmp_path / "infected.txt").write_bytes(os.urandom(MiB) + eicar_bytes)

    result = scan_file(tmp_path / "infected.txt", address_of(clamd))

    assert (result.status, result.detail) == ("infected", EICAR_SIGNATURE_NAME)
    assert result.is_infected() and not result.is_clean()


@pytest.mark.services
@pytest.mark.parametrize("address_of", [socket_address, tcp_address])
def test_scan_file_over_stream_max_length_is_unscanned_never_clean(
    clamd_factory, tmp_path, address_of
):
    small = clamd_factory(stream_max_length="1M")
    write_random(tmp_path / "big.exr", 4 * MiB)

    result = scan_file(tmp_path / "big.exr", address_of(small))

    assert result.status == "unscanned"
    assert "StreamMaxLength" in result.detail


@pytest.mark.services
def test_scan_file_one_byte_over_stream_max_length_is_unscanned(clamd_factory, tmp_path):
    small = clamd_factory(stream_max_length="1M")
    write_random(tmp_path / "exact.exr", MiB)
    write_random(tmp_path / "over.exr", MiB + 1)

    assert scan_file(tmp_path / "exact.exr", socket_address(small)).is_clean()
    assert scan_file(tmp_path / "over.exr", socket_address(small)).is_unscanned()


@pytest.fixture
def clamd_alerting_on_limits(tmp_path_factory):
    """A clamd with a 1 MiB MaxFileSize and `AlertExceedsMax yes`, as production must run it:
    without that option clamd skips content over its limits and answers OK."""
    executable = require_executable("clamd", "apt-get install clamav-daemon clamav")
    server = ClamdServer(tmp_path_factory.mktemp("clamd-limits"), executable=executable)
    with open(server.config_path, "a") as config:
        config.write("MaxFileSize 1M\nMaxScanSize 1M\nAlertExceedsMax yes\n")
    server.start()
    yield server
    server.stop()


@pytest.mark.services
def test_scan_over_clamd_max_file_size_is_unscanned(
    clamd_alerting_on_limits, tmp_path, eicar_bytes
):
    (tmp_path / "big.mov").write_bytes(os.urandom(2 * MiB) + eicar_bytes)

    result = scan_file(tmp_path / "big.mov", socket_address(clamd_alerting_on_limits))

    assert result.status == "unscanned"
    assert "Heuristics.Limits.Exceeded.MaxFileSize" in result.detail


@pytest.mark.services
def test_scan_with_clamd_stopped_is_an_error_never_clean(clamd, tmp_path):
    write_random(tmp_path / "plate.exr", MiB)
    clamd.stop()

    for address in (socket_address(clamd), tcp_address(clamd)):
        result = scan_file(tmp_path / "plate.exr", address)
        assert result.status == "error"
        assert "unreachable" in result.detail


@pytest.mark.services
def test_scan_does_not_read_the_whole_file_into_memory(clamd, tmp_path):
    size = 64 * MiB
    write_random(tmp_path / "large.mov", size)

    tracemalloc.start()
    try:
        result = scan_file(tmp_path / "large.mov", socket_address(clamd))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.is_clean()
    assert peak < 4 * MiB


# --- without contacting clamd ----------------------------------------------------------------
def test_scan_with_nothing_listening_is_an_error(tmp_path):
    write_random(tmp_path / "plate.exr", 1000)

    result = scan_file(tmp_path / "plate.exr", closed_port())

    assert result.status == "error"
    assert "unreachable" in result.detail


def test_scan_over_max_stream_bytes_is_unscanned_without_contacting_clamd(tmp_path):
    write_random(tmp_path / "big.exr", 2000)

    # Nothing listens there: any attempt to connect would have given "error".
    result = scan_file(tmp_path / "big.exr", closed_port(), max_stream_bytes=1999)

    assert result.status == "unscanned"
    assert "StreamMaxLength" in result.detail


def test_scan_over_the_clamav_hard_limit_is_unscanned_without_sending(tmp_path):
    with open(tmp_path / "huge.mov", "wb") as f:
        f.truncate(CLAMAV_MAX_BYTES + 1)  # sparse: no disk used

    result = scan_file(tmp_path / "huge.mov", closed_port(), max_stream_bytes=4 << 30)

    assert result.status == "unscanned"
    assert "2 GiB" in result.detail


def test_scan_of_an_unreadable_file_is_an_error(tmp_path):
    for path in (tmp_path / "missing.exr", tmp_path):
        result = scan_file(path, closed_port())
        assert result.status == "error"
        assert str(path) in result.detail


def test_scan_result_refuses_unknown_statuses():
    with pytest.raises(ValueError):
        ScanResult("probably-fine")


# --- clamd answering oddly (a scripted stand-in) ---------------------------------------------
class FakeClamd:
    """Listens on 127.0.0.1 and handles successive connections with `behaviours(self, conn)`."""

    def __init__(self, *behaviours):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = 0
        self.thread = threading.Thread(target=self._serve, args=(behaviours,), daemon=True)
        self.thread.start()

    def address(self, timeout=5) -> ClamdAddress:
        return ClamdAddress(host="127.0.0.1", port=self.port, timeout=timeout)

    def _serve(self, behaviours):
        with self.listener:
            for behaviour in behaviours:
                conn, _ = self.listener.accept()
                with conn:
                    behaviour(self, conn)

    def read_stream(self, conn, stop_after=None):
        """Read the INSTREAM command and chunks up to the terminator (or `stop_after` bytes)."""
        assert _recv_exact(conn, 10) == b"zINSTREAM\0"
        while stop_after is None or self.received < stop_after:
            (length,) = struct.unpack("!I", _recv_exact(conn, 4))
            if length == 0:
                return
            _recv_exact(conn, length)
            self.received += length

    def close(self):
        self.thread.join(timeout=10)


def _recv_exact(conn, count) -> bytes:
    data = b""
    while len(data) < count:
        part = conn.recv(count - len(data))
        if not part:
            raise ConnectionError("client went away")
        data += part
    return data


def replying(reply: bytes):
    def behaviour(server, conn):
        server.read_stream(conn)
        conn.sendall(reply)

    return behaviour


@pytest.mark.parametrize(
    ("reply", "status", "detail"),
    [
        (b"stream: OK\0", "clean", ""),
        (b"stream: Win.Test.EICAR_HDB-1 FOUND\0", "infected", "Win.Test.EICAR_HDB-1"),
        (b"stream: Heuristics.Encrypted.Zip FOUND\0", "unscanned", "Heuristics.Encrypted.Zip"),
        (
            b"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0",
            "unscanned",
            "Heuristics.Limits.Exceeded.MaxFileSize",
        ),
        (b"stream: Can't allocate memory ERROR\0", "error", "Can't allocate memory"),
        (b"INSTREAM size limit exceeded. ERROR\0", "unscanned", "StreamMaxLength"),
        (b"stream: OK\0stream: Trojan.X FOUND\0", "infected", "Trojan.X"),
        (b"", "error", "without a verdict"),
        (b"something else entirely\0", "error", "something else entirely"),
    ],
)
def test_scan_maps_clamd_replies(tmp_path, reply, status, detail):
    write_random(tmp_path / "f.bin", 300_000)
    fake = FakeClamd(replying(reply))

    result = scan_file(tmp_path / "f.bin", fake.address())
    fake.close()

    assert result.status == status
    assert detail in result.detail
    assert fake.received == 300_000


def test_scan_reads_the_verdict_of_a_clamd_that_resets_right_after_it(tmp_path):
    write_random(tmp_path / "f.bin", MiB)

    def refuse_and_reset(server, conn):
        server.read_stream(conn)
        conn.sendall(b"INSTREAM size limit exceeded. ERROR\0")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    fake = FakeClamd(refuse_and_reset)
    result = scan_file(tmp_path / "f.bin", fake.address())
    fake.close()

    assert result.status == "unscanned"
    assert "StreamMaxLength" in result.detail


def test_scan_is_not_clean_when_clamd_answers_ok_before_the_end(tmp_path):
    write_random(tmp_path / "f.bin", 4 * MiB)

    def answer_early(server, conn):
        server.read_stream(conn, stop_after=1)
        conn.sendall(b"stream: OK\0")
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):  # keep reading so the client sees the answer, not a reset
            pass

    fake = FakeClamd(answer_early)
    result = scan_file(tmp_path / "f.bin", fake.address())
    fake.close()

    assert result.status == "error"
    assert "before the whole file" in result.detail


def test_scan_is_not_clean_when_the_connection_drops_midway(tmp_path):
    write_random(tmp_path / "f.bin", 8 * MiB)

    def drop(server, conn):
        server.read_stream(conn, stop_after=MiB)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset

    fake = FakeClamd(drop)
    result = scan_file(tmp_path / "f.bin", fake.address())
    fake.close()

    # The stand-in no longer answers PING either, so this is an error (clamd gone), not a
    # size refusal.
    assert result.status == "error"
    assert "dropped the connection" in result.detail


def test_scan_dropped_midway_by_a_clamd_that_still_answers_ping_is_unscanned(tmp_path):
    write_random(tmp_path / "f.bin", 8 * MiB)

    def drop(server, conn):
        server.read_stream(conn, stop_after=MiB)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def pong(server, conn):
        assert _recv_exact(conn, 6) == b"zPING\0"
        conn.sendall(b"PONG\0")

    fake = FakeClamd(drop, pong)
    result = scan_file(tmp_path / "f.bin", fake.address())
    fake.close()

    assert result.status == "unscanned"
    assert "StreamMaxLength" in result.detail


def test_scan_is_an_error_when_clamd_never_answers(tmp_path):
    write_random(tmp_path / "f.bin", 1000)
    finished = threading.Event()

    def silent(server, conn):
        server.read_stream(conn)
        finished.wait(10)

    fake = FakeClamd(silent)
    result = scan_file(tmp_path / "f.bin", fake.address(timeout=0.5))
    finished.set()
    fake.close()

    assert result.status == "error"
    assert "no verdict" in result.detail


@pytest.mark.services
def test_scan_file_without_an_address_uses_the_clamd_environment(
    clamd, tmp_path, eicar_bytes, monkeypatch
):
    (tmp_path / "infected.txt").write_bytes(eicar_bytes)
    monkeypatch.setenv("CLAMD_SOCKET", "")
    monkeypatch.setenv("CLAMD_HOST", "127.0.0.1")
    monkeypatch.setenv("CLAMD_PORT", str(tcp_address(clamd).port))

    result = scan_file(tmp_path / "infected.txt")

    assert (result.status, result.detail) == ("infected", EICAR_SIGNATURE_NAME)
    monkeypatch.setenv("CLAMD_HOST", "")
    assert scan_file(tmp_path / "infected.txt").status == "error"  # nothing configured: not clean
