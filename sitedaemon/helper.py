"""A helper process that hashes files for the worker thread.

Hashing is most of the work (reading every byte), and a Python thread cannot overlap it with
the worker's other work: they would share one interpreter lock. So the daemon forks one
helper at start (before any thread exists); the worker sends it batches of files to hash over
a socket pair and goes on registering and uploading meanwhile; a file of hundreds of GB
no longer stops the daemon for minutes. The helper exits when the daemon closes the socket,
stops it, or dies (it notices its parent is gone between files and every few MiB).
If the helper cannot start or dies, the worker hashes in its own thread.
"""

import contextlib
import marshal
import os
import select
import signal
import socket
import struct
import time

from .hashing import FileChanged, Hasher, Stopping

_LENGTH = struct.Struct("!I")
OK, CHANGED, ERROR = 0, 1, 2  # result codes


class HelperGone(Exception):
    """The helper process exited or its socket failed."""


class HashHelper:
    def __init__(self, pid: int, sock: socket.socket):
        self.pid: int | None = pid
        self._sock = sock
        self._buffer = bytearray()

    @classmethod
    def start(cls) -> "HashHelper | None":
        """Fork the helper; call it before starting any thread. None where fork is missing."""
        if not hasattr(os, "fork"):
            return None
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the helper
            code = 0
            try:
                parent_end.close()
                _serve(child_end)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child_end.close()
        return cls(pid, parent_end)

    def fileno(self) -> int:
        return self._sock.fileno()

    def submit(self, files: list[tuple[str, int, int]]):
        """Ask for the hashes of (absolute path, size, mtime_ns) files; answered in order."""
        data = marshal.dumps(files)
        try:
            self._sock.sendall(_LENGTH.pack(len(data)) + data)
        except OSError as exc:
            raise HelperGone(str(exc)) from None

    def results(self) -> list[list[tuple[int, str]]]:
        """The answers that have arrived (without waiting), one list per batch submitted:
        (OK, sha256), (CHANGED, why) or (ERROR, why) per file."""
        try:
            while select.select([self._sock], [], [], 0)[0]:
                data = self._sock.recv(1 << 16)
                if not data:
                    raise HelperGone("the hash helper exited")
                self._buffer += data
        except OSError as exc:
            raise HelperGone(str(exc)) from None
        answers = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            answers.append(marshal.loads(self._buffer[_LENGTH.size : end]))  # noqa: S302 (our child)
            del self._buffer[:end]
        return answers

    def close(self):
        """Stop the helper (abandoning a file in progress) and reap it. Idempotent."""
        self._sock.close()
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline, pause = time.monotonic() + 5, 0.0005
        if _wait_exit(pid, 5):
            return
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def _wait_exit(pid: int, timeout: float) -> bool:
    """Wait for the child to exit, woken the moment it does (a pidfd, Linux 5.3 and later),
    and reap it; False where pidfds are missing, to poll instead."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return False
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    try:
        return bool(os.waitpid(pid, os.WNOHANG)[0])
    except ChildProcessError:
        return True


def _serve(sock: socket.socket):
    """The helper's loop: read a batch, hash it, answer; until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the daemon stops it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    hasher = Hasher(lambda: os.getppid() != parent)
    buffer = bytearray()
    while True:
        while (
            len(buffer) < _LENGTH.size
            or len(buffer) < _LENGTH.size + _LENGTH.unpack_from(buffer)[0]
        ):
            data = sock.recv(1 << 16)
            if not data:
                return
            buffer += data
        (length,) = _LENGTH.unpack_from(buffer)
        files = marshal.loads(buffer[_LENGTH.size : _LENGTH.size + length])  # noqa: S302 (parent)
        del buffer[: _LENGTH.size + length]
        results = []
        for path, size, mtime in files:
            if os.getppid() != parent:
                return
            try:
                results.append((OK, hasher.hash(path, size, mtime)))
            except FileChanged as exc:
                results.append((CHANGED, str(exc)))
            except Stopping:
                return
            except OSError as exc:
                results.append((ERROR, exc.strerror or str(exc)))
        data = marshal.dumps(results)
        sock.sendall(_LENGTH.pack(len(data)) + data)
