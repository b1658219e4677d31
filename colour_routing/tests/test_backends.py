"""Transfer backends, run for real: copy_verified, the rsync binary, and `cp`/`sh` standing in
for a vendor CLI. No database needed."""

import hashlib
import os
import shlex
import stat
import threading
import time
from pathlib import Path

import pytest

from colour_routing import backends
from pipeline_project.testing import require_executable

KINDS = ["mounted", "rsync", "command"]
SIZE = (3 << 20) + 12_345  # more than one fileops chunk


@pytest.fixture
def source(tmp_path) -> tuple[Path, bytes, str]:
    path = tmp_path / "tustin" / "A001_C002.mov"
    path.parent.mkdir()
    data = os.urandom(SIZE)
    path.write_bytes(data)
    return path, data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def rsync():
    return require_executable("rsync", "apt-get install rsync")


def make(kind: str, options: dict | None = None) -> backends.Backend:
    if kind == "rsync":
        require_executable("rsync", "apt-get install rsync")
    if kind == "command" and options is None:
        options = {"template": "cp {src} {tmp}"}
    return backends.make_backend(kind, options)


def write_script(path: Path, text: str) -> Path:
    path.write_text(f"#!/bin/sh\n{text}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_each_backend_copies_and_verifies(kind, source, tmp_path):
    src, data, sha = source
    dst = tmp_path / "nashville" / "incoming" / "tustin" / "A001_C002.mov"
    calls = []

    verified = make(kind).send(
        src, dst, expected_sha256=sha, progress=lambda done, total: calls.append((done, total))
    )

    assert verified == sha
    assert dst.read_bytes() == data
    assert os.listdir(dst.parent) == ["A001_C002.mov"]  # no temporary file left behind
    assert calls[-1] == (SIZE, SIZE)


@pytest.mark.parametrize("kind", KINDS)
def test_each_backend_refuses_a_copy_that_does_not_hash_as_expected(kind, source, tmp_path):
    src, _, sha = source
    wrong = hashlib.sha256(b"what the daemon hashed").hexdigest()
    dst = tmp_path / "nashville" / "A001_C002.mov"

    with pytest.raises(backends.VerificationFailed) as failed:
        make(kind).send(src, dst, expected_sha256=wrong)

    assert (failed.value.expected, failed.value.actual) == (wrong, sha)
    assert not dst.exists()
    assert os.listdir(dst.parent) == []


@pytest.mark.parametrize("kind", KINDS)
def test_each_backend_leaves_an_existing_destination_alone(kind, source, tmp_path):
    src, _, sha = source
    dst = tmp_path / "nashville" / "A001_C002.mov"
    dst.parent.mkdir()
    dst.write_bytes(b"graded already")

    with pytest.raises(FileExistsError):
        make(kind).send(src, dst, expected_sha256=sha)

    assert dst.read_bytes() == b"graded already"
    assert os.listdir(dst.parent) == ["A001_C002.mov"]


def test_rsync_detects_a_destination_corrupted_after_writing(rsync, source, tmp_path):
    src, _, sha = source
    # Real rsync, then one byte of what it wrote is flipped: the read-back hash must catch it.
    wrapper = write_script(
        tmp_path / "rsync-then-corrupt",
        f'{shlex.quote(rsync)} "$@" || exit $?\n'
        'for last; do :; done\nprintf X | dd of="$last" bs=1 seek=1000 conv=notrunc 2>/dev/null\n',
    )
    dst = tmp_path / "nashville" / "A001_C002.mov"

    with pytest.raises(backends.VerificationFailed) as failed:
        make("rsync", {"binary": str(wrapper)}).send(src, dst, expected_sha256=sha)

    assert failed.value.expected == sha
    assert failed.value.actual != sha
    assert os.listdir(dst.parent) == []


def test_command_backend_detects_a_truncated_copy(source, tmp_path):
    src, data, sha = source
    backend = make("command", {"template": """sh -c 'head -c 10 "$0" > "$1"' {src} {tmp}"""})
    dst = tmp_path / "nashville" / "A001_C002.mov"

    with pytest.raises(backends.VerificationFailed) as failed:
        backend.send(src, dst, expected_sha256=sha)

    assert failed.value.actual == hashlib.sha256(data[:10]).hexdigest()
    assert failed.value.path == str(dst)
    assert os.listdir(dst.parent) == []


def test_command_template_keeps_quoted_arguments_and_odd_paths_whole(tmp_path):
    src = tmp_path / "reel 01" / "take 2; echo 'pwned' > x.mov"
    src.parent.mkdir()
    src.write_bytes(b"frame data")
    sha = hashlib.sha256(b"frame data").hexdigest()
    seen = tmp_path / "name seen by the CLI"
    template = (
        """sh -c 'cp -- "$0" "$1" && printf %s "$2" > "$3"' {src} {tmp} {name} """
        + shlex.quote(str(seen))
    )
    dst = tmp_path / "dallas site" / "graded clip.mov"

    verified = make("command", {"template": template}).send(src, dst, expected_sha256=sha)

    assert verified == sha
    assert dst.read_bytes() == b"frame data"
    assert seen.read_text() == "graded clip.mov"
    assert sorted(os.listdir(tmp_path)) == ["dallas site", "name seen by the CLI", "reel 01"]


def test_progress_is_reported_from_the_calling_thread_while_the_command_runs(source, tmp_path):
    src, _, sha = source
    template = """sh -c 'head -c 1000 "$0" > "$1"; sleep 1.5; cat "$0" > "$1"' {src} {tmp}"""
    calls = []

    def progress(done, total):
        calls.append((done, total, threading.get_ident()))

    make("command", {"template": template}).send(
        src, tmp_path / "out" / "clip.mov", expected_sha256=sha, progress=progress
    )

    assert (1000, SIZE, threading.get_ident()) in calls
    assert calls[-1] == (SIZE, SIZE, threading.get_ident())
    assert {thread for *_, thread in calls} == {threading.get_ident()}


def test_command_failure_reports_the_end_of_its_output(source, tmp_path):
    src, _, sha = source
    template = (
        """sh -c 'echo "connecting"; echo "vendor: login refused for studio" >&2; exit 3' {tmp}"""
    )
    dst = tmp_path / "nashville" / "A001_C002.mov"

    with pytest.raises(backends.TransferError) as failed:
        make("command", {"template": template}).send(src, dst, expected_sha256=sha)
    assert not isinstance(failed.value, backends.TransientTransferError)
    assert "exited with code 3" in str(failed.value)
    assert "vendor: login refused for studio" in str(failed.value)

    with pytest.raises(backends.TransientTransferError):
        make("command", {"template": template, "transient_exit_codes": [3]}).send(
            src, dst, expected_sha256=sha
        )
    assert os.listdir(dst.parent) == []


def test_command_that_writes_nothing_is_an_error(source, tmp_path):
    src, _, sha = source
    dst = tmp_path / "nashville" / "A001_C002.mov"

    with pytest.raises(backends.TransferError, match="wrote nothing"):
        make("command", {"template": "sh -c 'exit 0' {tmp}"}).send(src, dst, expected_sha256=sha)
    assert not dst.exists()


def test_command_that_cannot_be_found_is_an_error(source, tmp_path):
    src, _, sha = source
    backend = make("command", {"template": "no-such-vendor-cli upload {src} {tmp}"})

    with pytest.raises(backends.TransferError, match="cannot run no-such-vendor-cli"):
        backend.send(src, tmp_path / "out" / "clip.mov", expected_sha256=sha)


def test_command_timeout_stops_it_and_everything_it_started(source, tmp_path):
    src, _, sha = source
    pid_file = tmp_path / "child.pid"
    template = (
        """sh -c 'head -c 100 "$0" > "$1"; sleep 60 & echo $! > "$2"; wait' {src} {tmp} """
        + shlex.quote(str(pid_file))
    )
    dst = tmp_path / "nashville" / "A001_C002.mov"
    started = time.monotonic()

    with pytest.raises(backends.TransientTransferError, match="did not finish within 1 s"):
        make("command", {"template": template, "timeout": 1}).send(src, dst, expected_sha256=sha)

    assert time.monotonic() - started < 10
    assert os.listdir(dst.parent) == []  # the partial temporary file is gone
    child = int(pid_file.read_text())
    assert wait_until_gone(child), f"the command's child {child} is still running"


def wait_until_gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):  # dead, waiting for a parent to reap it
            return True
        time.sleep(0.05)
    return False


def test_rsync_failures_are_classified_by_exit_code(rsync, source, tmp_path):
    src, _, sha = source
    dst = tmp_path / "nashville" / "A001_C002.mov"

    with pytest.raises(backends.TransferError) as usage:
        make("rsync", {"rsync_args": ["--no-such-option"]}).send(src, dst, expected_sha256=sha)
    assert not isinstance(usage.value, backends.TransientTransferError)
    assert "code 1 (syntax or usage error)" in str(usage.value)
    assert "no-such-option" in str(usage.value)  # rsync's own complaint is in the message

    timing_out = write_script(
        tmp_path / "rsync-timing-out",
        'echo "rsync error: timeout in data send/receive (code 30)" >&2\nexit 30\n',
    )
    with pytest.raises(backends.TransientTransferError, match="code 30"):
        make("rsync", {"binary": str(timing_out)}).send(src, dst, expected_sha256=sha)
    assert os.listdir(dst.parent) == []


def test_make_backend_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="command, mounted, rsync"):
        backends.make_backend("ftp")


@pytest.mark.parametrize(
    ("kind", "options", "complaint"),
    [
        ("command", {}, "needs"),
        ("command", {"template": "cp {src} {dst}"}, "must write to {tmp}"),
        ("command", {"template": "cp {source} {tmp}"}, "only {src}"),
        ("command", {"template": "cp {src.__class__} {tmp}"}, "only {src}"),
        ("command", {"template": "cp '{src} {tmp}"}, "cannot be split"),
        ("command", {"template": "cp {src} {tmp}", "transient_exit_codes": "3"}, "list"),
        ("rsync", {"rsync_args": "-v"}, "list of strings"),
        ("rsync", {"timeout": 0}, "positive"),
        ("mounted", {"template": "cp {src} {tmp}"}, "unknown option"),
    ],
)
def test_make_backend_rejects_options_that_make_no_sense(kind, options, complaint):
    with pytest.raises(ValueError, match=complaint.replace("{", r"\{").replace("}", r"\}")):
        backends.make_backend(kind, options)
