"""Scanning a file with clamd: clean only when clamd answered OK for the whole content.

The file is streamed with INSTREAM over a raw socket in fixed-size chunks (constant memory).
pyclamd's scan_stream is not used for this: it sends with `send` (a partial send corrupts the
stream framing) and turns a connection dropped mid-stream into an unexplained socket error.
"""

import hashlib
import os
import select
import struct
from dataclasses import dataclass

from ._pipeline import open_regular
from .clamav import ClamdAddress, open_socket

CLEAN, INFECTED, UNSCANNED, ERROR = "clean", "infected", "unscanned", "error"
STATUSES = (CLEAN, INFECTED, UNSCANNED, ERROR)
# ClamAV cannot scan more than this in one go, whatever its configuration says.
CLAMAV_MAX_BYTES = (2 << 30) - 1
STREAM_CHUNK = 256 << 10
# Waiting for the verdict: the address's timeout, plus time for clamd to scan what it got.
_SCAN_BYTES_PER_SECOND = 4 << 20
_MAX_REPLY = 64 << 10
# Signatures that mean "could not look inside", not "found something".
_NOT_SCANNED_PREFIXES = ("Heuristics.Encrypted.", "Heuristics.Limits.Exceeded")
_NOT_SCANNED_MARKERS = (".Exceeded", "Exceeds")


@dataclass(frozen=True)
class ScanResult:
    """What clamd said about a file. `detail`: the signature (infected) or the reason
    (unscanned, error). `sha256`: hash of exactly the bytes clamd scanned (clean or infected),
    so a caller can prove the scanned content is the one in its manifest."""

    status: str
    detail: str = ""
    sha256: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown scan status {self.status!r}")

    def is_clean(self) -> bool:
        return self.status == CLEAN

    def is_infected(self) -> bool:
        return self.status == INFECTED

    def is_unscanned(self) -> bool:
        return self.status == UNSCANNED

    def is_error(self) -> bool:
        return self.status == ERROR


class _Reply(Exception):
    """clamd answered before the stream was complete."""

    def __init__(self, lines: list[str]):
        self.lines = lines


def scan_file(
    path, address: ClamdAddress | None = None, max_stream_bytes: int | None = None
) -> ScanResult:
    """Stream the file at `path` to clamd (INSTREAM) and say what it found. `address` defaults
    to `ClamdAddress.from_env()`.

    - clean: clamd answered OK for the whole content;
    - infected: detail is the signature (several joined by ", ");
    - unscanned: clamd could not look at it: larger than 2 GiB or than `max_stream_bytes` (set
      it to clamd's StreamMaxLength; such files are not sent at all), refused as over its
      StreamMaxLength, encrypted, over a scan limit (Heuristics.Limits.Exceeded.*);
    - error: the file could not be read, or clamd could not be reached or gave no verdict.
    Never clean unless clamd said OK for every byte of the file.
    """
    address = ClamdAddress.from_env() if address is None else address
    try:
        fd, info = open_regular(path)
    except OSError as exc:
        return ScanResult(ERROR, f"cannot read {path}: {exc.strerror or exc}")
    try:
        limit = (
            CLAMAV_MAX_BYTES
            if max_stream_bytes is None
            else min(max_stream_bytes, CLAMAV_MAX_BYTES)
        )
        if info.st_size > limit:
            return ScanResult(UNSCANNED, _too_large(info.st_size, max_stream_bytes))
        try:
            sock = open_socket(address)
        except OSError as exc:
            return ScanResult(ERROR, f"clamd at {address.describe()} unreachable: {exc}")
        with sock:
            return _stream(fd, sock, address, limit, max_stream_bytes)
    finally:
        os.close(fd)


def _too_large(size, max_stream_bytes) -> str:
    if size > CLAMAV_MAX_BYTES:
        return f"{size} bytes: larger than ClamAV can scan (2 GiB)"
    return f"{size} bytes: larger than clamd's StreamMaxLength ({max_stream_bytes} bytes)"


def _stream(fd, sock, address, limit, max_stream_bytes) -> ScanResult:
    where = f"clamd at {address.describe()}"
    digest = hashlib.sha256()
    sent = 0
    try:
        sock.sendall(b"zINSTREAM\0")
        buffer = bytearray(STREAM_CHUNK)
        while length := os.readv(fd, [buffer]):
            if sent + length > limit:
                return ScanResult(UNSCANNED, _too_large(sent + length, max_stream_bytes))
            _raise_if_replied(sock)
            chunk = memoryview(buffer)[:length]
            sock.sendall(struct.pack("!I", length))
            sock.sendall(chunk)
            digest.update(chunk)
            sent += length
        sock.sendall(b"\0\0\0\0")
    except _Reply as early:
        if early.lines:
            return _verdict(early.lines, where, sent, "")
        return _dropped(sock, address, sent, "connection closed")
    except (BrokenPipeError, ConnectionResetError) as exc:
        return _dropped(sock, address, sent, exc)
    except TimeoutError:
        return ScanResult(ERROR, f"{where} stopped reading the stream after {sent} bytes")
    except OSError as exc:  # reading the file, or the socket
        return ScanResult(ERROR, f"scan stopped after {sent} bytes: {exc}")
    sock.settimeout(address.timeout + sent / _SCAN_BYTES_PER_SECOND)
    try:
        lines = _read_reply(sock)
    except TimeoutError:
        return ScanResult(ERROR, f"{where} gave no verdict in {sock.gettimeout():.0f} s")
    except ConnectionResetError as exc:
        return _dropped(sock, address, sent, exc)
    except OSError as exc:
        return ScanResult(ERROR, f"{where} dropped the connection before its verdict: {exc}")
    return _verdict(lines, where, sent, digest.hexdigest())


def _raise_if_replied(sock):
    """clamd answers mid-stream only to refuse it (size limit): read that before sending on."""
    poller = select.poll()  # not select.select: it fails on descriptors above 1023
    poller.register(sock, select.POLLIN)
    if poller.poll(0):
        raise _Reply(_read_reply(sock))


def _read_reply(sock) -> list[str]:
    """clamd's reply lines, read until it closes the connection ('z' replies end with NUL)."""
    data = bytearray()
    while len(data) < _MAX_REPLY:
        try:
            part = sock.recv(4096)
        except ConnectionResetError:
            if not data:
                raise
            break  # clamd closed right after answering, with some of our stream unread
        if not part:
            break
        data += part
    text = data.decode("utf-8", "replace")
    return [line.strip() for line in text.split("\0") if line.strip()]


def _dropped(sock, address, sent, exc) -> ScanResult:
    """The connection broke while streaming. clamd drops streams over StreamMaxLength, often
    before its "size limit" reply can be read; if it still answers PING, that is the likely
    reason, and retrying would not help."""
    where = f"clamd at {address.describe()}"
    try:
        sock.settimeout(1)
        lines = _read_reply(sock)
    except OSError:
        lines = []
    if lines:
        return _verdict(lines, where, sent, "")
    if _answers_ping(address):
        return ScanResult(
            UNSCANNED,
            f"{where} closed the connection after {sent} bytes: the file is probably larger "
            "than clamd's StreamMaxLength",
        )
    return ScanResult(ERROR, f"{where} dropped the connection after {sent} bytes: {exc}")


def _answers_ping(address: ClamdAddress) -> bool:
    try:
        with open_socket(address) as sock:
            sock.settimeout(min(address.timeout, 5))
            sock.sendall(b"zPING\0")
            return _read_reply(sock) == ["PONG"]
    except OSError:
        return False


def _verdict(lines: list[str], where: str, sent: int, sha256: str) -> ScanResult:
    if not lines:
        return ScanResult(ERROR, f"{where} closed the connection without a verdict")
    found, not_scanned, other = [], [], []
    for line in lines:
        if "size limit exceeded" in line:
            return ScanResult(
                UNSCANNED,
                f"clamd refused it after {sent} bytes: larger than clamd's StreamMaxLength "
                f"({line})",
            )
        body = line.removeprefix("stream:").strip()
        if body == "OK":
            continue
        if body.endswith(" FOUND"):
            signature = body.removesuffix(" FOUND").strip()
            (not_scanned if _means_not_scanned(signature) else found).append(signature)
        else:
            other.append(line)
    if found:
        return ScanResult(INFECTED, ", ".join(found), sha256)
    if not_scanned:
        return ScanResult(UNSCANNED, f"clamd could not scan it: {', '.join(not_scanned)}")
    if other:
        return ScanResult(ERROR, f"{where} answered: {'; '.join(other)}")
    if not sha256:  # OK, but not after the whole file: never call that clean
        return ScanResult(ERROR, f"{where} answered OK before the whole file was sent")
    return ScanResult(CLEAN, "", sha256)


def _means_not_scanned(signature: str) -> bool:
    return signature.startswith(_NOT_SCANNED_PREFIXES) or any(
        marker in signature for marker in _NOT_SCANNED_MARKERS
    )
