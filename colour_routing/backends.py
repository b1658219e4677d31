"""Transfer backends: how a file travels from one site's storage to another's.

Every backend keeps fileops.copy_verified's promise: the final name only ever holds a complete
file whose SHA-256 equals the expected one. The bytes go to a temporary name in the destination
folder (`.{name}.part-<random>`, so fileops.remove_stale_parts cleans up after a killed run),
are hashed there from storage, and only then get the final name, never replacing a file.

Plain Python on paths and option dicts: no ORM, so the site daemon or a script could use it too.
"""

import contextlib
import errno
import functools
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import stat
import string
import subprocess
import tempfile
import time
from pathlib import Path

from pipeline_project.fileops.copy import (
    ChecksumMismatch,
    copy_verified,
    fsync_dir,
    part_prefix,
    place_new,
)
from pipeline_project.fileops.hashing import sha256_file

DEFAULT_TIMEOUT = 6 * 3600
POLL_SECONDS = 1.0
KILL_GRACE_SECONDS = 5
_OUTPUT_TAIL_CHARS = 2000
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# rsync's exit codes (man rsync, EXIT VALUES); the transient ones are network faults and timeouts.
RSYNC_EXIT_CODES = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files, dirs",
    5: "error starting client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in rsync protocol data stream",
    20: "received SIGUSR1 or SIGINT",
    23: "partial transfer due to error",
    24: "partial transfer due to vanished source files",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
}
RSYNC_TRANSIENT_EXIT_CODES = frozenset({5, 10, 12, 30, 35})
COMMAND_PLACEHOLDERS = ("src", "dst", "tmp", "name")


class TransferError(Exception):
    """A transfer failed and retrying will not help; the message says what failed."""


class TransientTransferError(TransferError):
    """A transfer failed in a way that may pass: a timeout, a dropped or refused connection."""


class VerificationFailed(TransferError):
    """What arrived does not hash to the expected SHA-256 (nothing was left under `path`)."""

    def __init__(self, message, *, expected, actual, path):
        self.expected, self.actual, self.path = expected, actual, str(path)
        super().__init__(message)

    def __reduce__(self):
        rebuild = functools.partial(
            VerificationFailed, expected=self.expected, actual=self.actual, path=self.path
        )
        return rebuild, (str(self),)


class Backend:
    """Sends one file to a local or mounted path; see send()."""

    kind = ""
    option_names: frozenset[str] = frozenset()

    def __init__(self, options: dict):
        unknown = sorted(set(options) - self.option_names)
        if unknown:
            valid = ", ".join(sorted(self.option_names)) or "none"
            raise ValueError(
                f"unknown option(s) for the {self.kind} backend: {', '.join(unknown)} "
                f"(valid: {valid})"
            )
        self.options = dict(options)

    def send(self, src: Path, dst: Path, *, expected_sha256: str, progress=None) -> str:
        """Copy `src` to `dst` and return the SHA-256 read back from the destination.

        `dst` appears only once complete and equal to `expected_sha256` (else
        VerificationFailed, and nothing under `dst`); an existing `dst` is never replaced
        (FileExistsError); missing folders are created. `progress(done_bytes, total_bytes)` is
        called now and then while the bytes travel (best effort).
        """
        raise NotImplementedError


class MountedBackend(Backend):
    """Both sites' storage is mounted here: fileops.copy_verified does it all."""

    kind = "mounted"

    def send(self, src, dst, *, expected_sha256, progress=None) -> str:
        def report(phase, done, total):
            if progress is not None and phase == "copy":
                progress(done, total)

        try:
            return copy_verified(src, dst, expected_sha256=expected_sha256, progress=report)
        except ChecksumMismatch as exc:
            raise VerificationFailed(
                str(exc), expected=exc.expected, actual=exc.actual, path=exc.path
            ) from exc


class _ExternalBackend(Backend):
    """A program writes the temporary file; we hash it and give it its final name."""

    option_names = frozenset({"timeout"})

    def __init__(self, options: dict):
        super().__init__(options)
        self.timeout = _positive_seconds(self.options.get("timeout", DEFAULT_TIMEOUT))

    def send(self, src, dst, *, expected_sha256, progress=None) -> str:
        src, dst = Path(src).absolute(), Path(dst).absolute()
        expected = _sha256_hex(expected_sha256)
        total = _regular_file_size(src)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "destination already exists", str(dst))
        dst.parent.mkdir(parents=True, exist_ok=True)
        temp = _unused_temp_name(dst)
        try:
            self._run(self.arguments(src, dst, temp), lambda: _report(progress, temp, total))
            actual = self._hash_written(temp)
            if actual != expected:
                raise VerificationFailed(
                    f"{self.kind}: the copy for {dst} hashes to {actual}, expected {expected}; "
                    "it was discarded",
                    expected=expected,
                    actual=actual,
                    path=dst,
                )
            place_new(temp, dst)
        except BaseException:
            _remove(temp)
            raise
        _remove(temp)  # placed by a hard link: drop the temporary name
        fsync_dir(dst.parent)
        if progress is not None:
            progress(total, total)
        return actual

    def arguments(self, src: Path, dst: Path, temp: Path) -> list[str]:
        raise NotImplementedError

    def exit_error(self, code: int, output: str) -> TransferError:
        raise NotImplementedError

    def _run(self, argv: list[str], poll):
        with tempfile.TemporaryFile() as output:
            try:
                # Its own session, so a timeout stops the program and everything it started.
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise TransferError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
            try:
                code = _wait(process, self.timeout, poll)
            except BaseException:
                _stop(process)
                raise
            if code is not None:  # strays it left running could still write to the file
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            else:
                _stop(process)
                raise TransientTransferError(
                    f"{argv[0]} did not finish within {self.timeout:g} s and was stopped"
                    f"{_tail(output)}"
                )
            if code != 0:
                raise self.exit_error(code, _tail(output))

    def _hash_written(self, temp: Path) -> str:
        try:
            info = os.lstat(temp)
        except FileNotFoundError:
            raise TransferError(
                f"{self.kind}: the program exited successfully but wrote nothing at {temp}"
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise TransferError(f"{self.kind}: the program left a non-file at {temp}")
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            # Make it durable, then drop the cached pages so the hash reads what storage holds.
            os.fsync(fd)
            with contextlib.suppress(OSError, AttributeError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return sha256_file(temp)


class RsyncBackend(_ExternalBackend):
    """The real `rsync` binary copies to the temporary name, then the orchestrator verifies.

    Options: `rsync_args` (extra arguments, a list), `timeout` (seconds, default 6 h),
    `binary` (default "rsync" on PATH). The destination must be a local or mounted path, not
    `host:/path`: verification reads the destination, which only works where it is mounted.
    """

    kind = "rsync"
    option_names = _ExternalBackend.option_names | {"rsync_args", "binary"}

    def __init__(self, options: dict):
        super().__init__(options)
        extra = self.options.get("rsync_args", [])
        if not isinstance(extra, list) or not all(isinstance(arg, str) for arg in extra):
            raise ValueError(f"rsync_args must be a list of strings, not {extra!r}")
        self.extra_args = extra
        self.binary = str(self.options.get("binary") or "rsync")

    def arguments(self, src, dst, temp):
        # --inplace: rsync writes our temporary file itself, so a killed run leaves nothing of
        # its own behind. Paths are absolute, so neither is read as an option or a host.
        return [
            self.binary,
            "--inplace",
            "--whole-file",
            "--times",
            "--perms",
            *self.extra_args,
            "--",
            str(src),
            str(temp),
        ]

    def exit_error(self, code, output):
        meaning = RSYNC_EXIT_CODES.get(code, "unknown error")
        error = TransientTransferError if code in RSYNC_TRANSIENT_EXIT_CODES else TransferError
        return error(f"rsync exited with code {code} ({meaning}){output}")


class CommandBackend(_ExternalBackend):
    """A vendor CLI (RaySync, Aspera, ...) run from a template, then verified here.

    `template`, e.g. "raysync-cli upload --src {src} --dst {tmp}", is split like a shell would
    (shlex) and only then are {src}, {dst}, {tmp} and {name} (dst's file name) filled in, one
    argument each, whatever spaces or quotes a path holds; no shell is involved. The program
    must write the file to {tmp}. Options: `timeout` (seconds, default 6 h) and
    `transient_exit_codes` (exit codes worth retrying, e.g. the CLI's "network error").
    """

    kind = "command"
    option_names = _ExternalBackend.option_names | {"template", "transient_exit_codes"}

    def __init__(self, options: dict):
        super().__init__(options)
        self.template = _parse_template(self.options.get("template"))
        codes = self.options.get("transient_exit_codes", [])
        if not isinstance(codes, list) or not all(_is_int(code) for code in codes):
            raise ValueError(f"transient_exit_codes must be a list of integers, not {codes!r}")
        self.transient_exit_codes = frozenset(codes)

    def arguments(self, src, dst, temp):
        values = {"src": str(src), "dst": str(dst), "tmp": str(temp), "name": dst.name}
        return [arg.format(**values) for arg in self.template]

    def exit_error(self, code, output):
        error = TransientTransferError if code in self.transient_exit_codes else TransferError
        return error(f"{self.template[0]} exited with code {code}{output}")


BACKENDS = {backend.kind: backend for backend in (MountedBackend, RsyncBackend, CommandBackend)}


def make_backend(kind: str, options: dict | None = None) -> Backend:
    """The backend `kind` ("mounted", "rsync" or "command") configured with `options`.

    ValueError for an unknown kind, an unknown option or an option that makes no sense.
    """
    try:
        backend = BACKENDS[kind]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown transfer backend {kind!r}; valid kinds: {valid}") from None
    return backend(dict(options or {}))


def _parse_template(template) -> list[str]:
    if not isinstance(template, str) or not template.strip():
        raise ValueError('the command backend needs options["template"], e.g. "cp {src} {tmp}"')
    try:
        args = shlex.split(template)
    except ValueError as exc:
        raise ValueError(f"template {template!r} cannot be split: {exc}") from None
    used = set()
    for arg in args:
        try:
            parts = list(string.Formatter().parse(arg))
        except ValueError as exc:
            raise ValueError(f"template argument {arg!r}: {exc}") from None
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            if field not in COMMAND_PLACEHOLDERS or spec or conversion:
                raise ValueError(
                    f"template argument {arg!r}: only {{src}}, {{dst}}, {{tmp}} and {{name}} "
                    "may be used (write {{ and }} for literal braces)"
                )
            used.add(field)
    if "tmp" not in used:
        raise ValueError(
            "the template must write to {tmp}; the file is moved to {dst} once verified"
        )
    return args


def _wait(process: subprocess.Popen, timeout: float, poll) -> int | None:
    """The exit code, or None at the timeout; `poll()` runs about every POLL_SECONDS meanwhile
    (in this thread, so a progress callback may use the caller's database connection)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            return process.wait(timeout=min(POLL_SECONDS, remaining))
        except subprocess.TimeoutExpired:
            poll()


def _stop(process: subprocess.Popen):
    """SIGTERM the program's process group, SIGKILL it if it is still there after a grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:  # the leader is gone: make sure what it started is too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        return


def _tail(output) -> str:
    output.seek(0, os.SEEK_END)
    size = output.tell()
    output.seek(max(0, size - _OUTPUT_TAIL_CHARS * 4))
    text = output.read().decode("utf-8", "replace").strip()[-_OUTPUT_TAIL_CHARS:]
    return f": {text}" if text else " (no output)"


def _report(progress, temp: Path, total: int):
    if progress is None:
        return
    try:
        done = os.stat(temp).st_size
    except OSError:
        done = 0
    progress(min(done, total), total)


def _regular_file_size(path: Path) -> int:
    info = os.stat(path)  # FileNotFoundError says it all
    if not stat.S_ISREG(info.st_mode):
        raise TransferError(f"{path} is not a regular file")
    return info.st_size


def _unused_temp_name(dst: Path) -> Path:
    # Not created here: a vendor CLI may refuse to write over an existing file.
    while True:
        temp = dst.parent / f"{part_prefix(dst)}{secrets.token_hex(6)}"
        if not os.path.lexists(temp):
            return temp


def _remove(path: Path):
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():  # a CLI that took {tmp} for a folder
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _sha256_hex(value) -> str:
    text = str(value or "").strip().lower()
    if not _SHA256_HEX.fullmatch(text):
        raise ValueError(f"expected_sha256 is not a SHA-256 hex digest: {value!r}")
    return text


def _positive_seconds(value) -> float:
    if (_is_int(value) or isinstance(value, float)) and 0 < value < math.inf:
        return float(value)
    raise ValueError(f"timeout must be a positive number of seconds, not {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
