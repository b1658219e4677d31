import ctypes
import errno
import hashlib
import os
import pickle
import signal
import threading
import time
import tracemalloc

import pytest

from pipeline_project.fileops import copy as copy_module
from pipeline_project.fileops._pipeline import PROGRESS_EVERY
from pipeline_project.fileops.copy import (
    ChecksumMismatch,
    copy_verified,
    move_file,
    part_prefix,
    remove_stale_parts,
)

from .helpers import fileops_threads, run_child, write_random

MiB = 1 << 20
SIZE = 3 * PROGRESS_EVERY + 4321  # several progress steps, not a multiple of any chunk


@pytest.fixture(autouse=True, params=["storage", "cache"])
def readback(request, monkeypatch):
    """Every test runs with the copy read back from storage, then through the page cache."""
    monkeypatch.setenv("FILEOPS_READBACK", request.param)
    return request.param


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "staging" / "sh010_comp_v003.exr"
    write_random(path, SIZE)
    os.chmod(path, 0o640)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))
    return path


@pytest.fixture
def dst(tmp_path):
    return tmp_path / "production" / "proj" / "TRF-00001" / "sh010_comp_v003.exr"


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parts(dst) -> list:
    if not dst.parent.exists():
        return []
    return sorted(p for p in dst.parent.iterdir() if p.name.startswith(part_prefix(dst)))


def assert_nothing_left(dst):
    assert not os.path.lexists(dst)
    assert parts(dst) == []
    assert fileops_threads() == []


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


# --- happy path ------------------------------------------------------------------------------
def test_copy_verified_copies_and_returns_the_verified_hash(src, dst):
    expected = sha256_of(src)

    result = copy_verified(src, dst)

    assert result == expected
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_mtime_ns == src.stat().st_mtime_ns
    assert oct(dst.stat().st_mode & 0o777) == oct(0o640)
    assert parts(dst) == []
    assert fileops_threads() == []


def test_copy_verified_handles_names_at_the_filesystem_limit(src, tmp_path):
    dst = tmp_path / "out" / ("\u00e9" * 125 + ".exr")  # 254 bytes: no room for a suffix

    assert copy_verified(src, dst) == sha256_of(src)
    assert dst.read_bytes() == src.read_bytes()
    assert os.listdir(dst.parent) == [dst.name]


def test_copy_verified_accepts_a_matching_expected_hash_in_any_case(src, dst):
    expected = sha256_of(src)

    assert copy_verified(src, dst, expected_sha256=expected.upper()) == expected
    assert sha256_of(dst) == expected


def test_copy_verified_copies_an_empty_file(tmp_path):
    (tmp_path / "empty").write_bytes(b"")

    result = copy_verified(tmp_path / "empty", tmp_path / "out" / "empty")

    assert result == hashlib.sha256(b"").hexdigest()
    assert (tmp_path / "out" / "empty").read_bytes() == b""


def test_copy_verified_reports_copy_then_verify_progress(src, dst):
    calls = []

    copy_verified(src, dst, progress=lambda *args: calls.append(args))

    phases = [phase for phase, _, _ in calls]
    assert phases == sorted(phases)  # "copy" ... then "verify" ...
    for phase in ("copy", "verify"):
        done = [d for p, d, _ in calls if p == phase]
        assert done[0] == 0
        assert done[-1] == SIZE
        assert done == sorted(done)
        assert len(done) <= SIZE // PROGRESS_EVERY + 2
    assert {total for _, _, total in calls} == {SIZE}


def test_copy_verified_keeps_memory_flat(tmp_path):
    size = 40 * MiB
    write_random(tmp_path / "big.bin", size)

    tracemalloc.start()
    try:
        copy_verified(tmp_path / "big.bin", tmp_path / "out" / "big.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8 * MiB


# --- mismatches ------------------------------------------------------------------------------
def test_copy_verified_with_a_different_expected_hash_fails_and_leaves_nothing(src, dst):
    wrong = hashlib.sha256(b"what was approved").hexdigest()

    with pytest.raises(ChecksumMismatch) as caught:
        copy_verified(src, dst, expected_sha256=wrong)

    error = caught.value
    assert (error.kind, error.path, error.expected, error.actual) == (
        "source",
        src,
        wrong,
        sha256_of(src),
    )
    assert str(src) in str(error)
    assert wrong in str(error)
    assert sha256_of(src) in str(error)
    assert_nothing_left(dst)


def test_copy_verified_detects_a_source_changed_during_the_copy(src, dst):
    def progress(phase, done, total):
        if phase == "copy" and done >= PROGRESS_EVERY:
            flip_byte(src, SIZE - 1)  # not read yet: the copy reads the changed byte
            os.utime(src, ns=(0, 1_700_000_000_000_000_000))

    with pytest.raises(ChecksumMismatch) as caught:
        copy_verified(src, dst, progress=progress)

    assert caught.value.kind == "source"
    assert "changed while it was being copied" in str(caught.value)
    assert_nothing_left(dst)


@pytest.mark.parametrize(("phase", "at"), [("copy", PROGRESS_EVERY), ("verify", 0)])
def test_copy_verified_detects_a_destination_byte_changed(src, dst, phase, at):
    flipped = []

    def progress(current, done, total):
        if current == phase and done >= at and not flipped:
            (temp,) = parts(dst)
            flip_byte(temp, 10)  # already written: only the read-back can notice
            flipped.append(temp)

    with pytest.raises(ChecksumMismatch) as caught:
        copy_verified(src, dst, expected_sha256=sha256_of(src), progress=progress)

    error = caught.value
    assert flipped
    assert (error.kind, error.path, error.expected) == ("destination", dst, sha256_of(src))
    assert error.actual != error.expected
    assert error.expected in str(error) and error.actual in str(error)
    assert_nothing_left(dst)


def test_copy_verified_detects_a_destination_byte_changed_behind_the_read_back(src, dst):
    def progress(phase, done, total):
        if phase == "verify" and done >= PROGRESS_EVERY:
            flip_byte(parts(dst)[0], 10)  # already read back: the hash alone cannot see it

    with pytest.raises(ChecksumMismatch) as caught:
        copy_verified(src, dst, progress=progress)

    assert caught.value.kind == "destination"
    assert "modified while it was read back" in str(caught.value)
    assert_nothing_left(dst)


def _refuse_direct_io(monkeypatch):
    real_hash_opened = copy_module._hash_opened

    def refusing(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")  # as tmpfs and some mounts answer
        return real_hash_opened(path, flags, *args, **kwargs)

    monkeypatch.setattr(copy_module, "_hash_opened", refusing)


@pytest.mark.parametrize("unsupported", ["refused", "absent"])
def test_copy_verified_reads_back_from_storage_without_direct_io(
    src, dst, monkeypatch, unsupported
):
    monkeypatch.setenv("FILEOPS_READBACK", "storage")
    if unsupported == "refused":
        _refuse_direct_io(monkeypatch)
    else:
        monkeypatch.delattr(copy_module.os, "O_DIRECT")

    assert copy_verified(src, dst) == sha256_of(src)

    def progress(phase, done, total):
        if phase == "verify" and done == 0:
            flip_byte(parts(other)[0], 10)

    other = dst.with_name("second.exr")
    with pytest.raises(ChecksumMismatch) as caught:
        copy_verified(src, other, progress=progress)
    assert caught.value.kind == "destination"
    assert_nothing_left(other)


def spy_readbacks(monkeypatch) -> list[str]:
    calls = []
    for name, kind in (("_hash_from_storage", "storage"), ("_hash_through_cache", "cache")):
        real = getattr(copy_module, name)

        def spy(*args, _real=real, _kind=kind):
            calls.append(_kind)
            return _real(*args)

        monkeypatch.setattr(copy_module, name, spy)
    real_finish = copy_module._EarlyReadBack.finish

    def finish(self, *args):
        digest = real_finish(self, *args)
        calls.append("during the copy" if digest is not None else "given up")
        return digest

    monkeypatch.setattr(copy_module._EarlyReadBack, "finish", finish)
    return calls


@pytest.mark.parametrize(
    ("setting", "fs_type", "expected"),
    [
        ("auto", 0xEF53, "during the copy"),  # ext4
        ("auto", 0x58465342, "during the copy"),  # xfs
        ("auto", 0x6969, "storage"),  # NFS
        ("auto", 0xFE534D42, "storage"),  # SMB2
        ("auto", 0x65735546, "storage"),  # FUSE
        ("auto", None, "storage"),  # cannot tell
        ("", 0xEF53, "during the copy"),  # unset: auto
        ("storage", 0xEF53, "storage"),
        # Through the cache on a network filesystem: not during the copy, where inotify would
        # not see another client's writes, but after it.
        ("cache", 0x6969, "cache"),
    ],
)
def test_the_read_back_comes_from_storage_on_network_filesystems_else_during_the_copy(
    src, dst, monkeypatch, setting, fs_type, expected
):
    monkeypatch.setenv("FILEOPS_READBACK", setting)
    monkeypatch.setattr(copy_module, "filesystem_type", lambda path: fs_type)
    calls = spy_readbacks(monkeypatch)

    assert copy_verified(src, dst) == sha256_of(src)

    assert calls == [expected]


def test_the_read_back_argument_wins_over_the_environment(src, dst, monkeypatch):
    monkeypatch.setenv("FILEOPS_READBACK", "cache")
    calls = spy_readbacks(monkeypatch)
    copy_verified(src, dst, readback="storage")
    assert calls == ["storage"]


def test_the_real_filesystem_type_decides_auto(tmp_path):
    """The real statfs (no monkeypatch): a type for an existing folder, none for a missing
    one, and auto follows it."""
    kind = copy_module.filesystem_type(tmp_path)
    assert kind is not None and kind > 0
    local = kind in copy_module._LOCAL_FILESYSTEMS
    assert copy_module.readback_mode(tmp_path, "auto") == ("cache" if local else "storage")
    assert copy_module.filesystem_type(tmp_path / "missing") is None


@pytest.mark.parametrize("where", ["argument", "environment"])
def test_an_unknown_read_back_mode_is_refused_before_anything_is_done(src, dst, monkeypatch, where):
    if where == "environment":
        monkeypatch.setenv("FILEOPS_READBACK", "tape")
    with pytest.raises(ValueError, match="readback must be one of auto, storage, cache"):
        copy_verified(src, dst, readback="tape" if where == "argument" else None)
    assert not dst.parent.exists()


@pytest.mark.parametrize("by", ["its name", "a hard link elsewhere"])
def test_a_copy_read_back_during_the_copy_is_read_again_when_someone_else_opened_it(
    src, dst, tmp_path, monkeypatch, by
):
    """An indexer or a backup opening the half-written file only reads it: the copy still
    succeeds, but the hash taken during the copy is no proof any more, so it is read again.
    Opened through a hard link in another folder, only the watch on the file itself sees it."""
    monkeypatch.setenv("FILEOPS_READBACK", "cache")
    calls = spy_readbacks(monkeypatch)
    elsewhere = tmp_path / "production" / "elsewhere"
    elsewhere.mkdir(parents=True)

    def progress(phase, done, total):
        if phase == "copy" and done >= PROGRESS_EVERY and not calls:
            path = parts(dst)[0]
            if by != "its name":
                os.link(path, elsewhere / "link")
                path = elsewhere / "link"
            with open(path, "rb") as reader:
                reader.read(4096)
            if by != "its name":
                os.unlink(path)
            calls.append("opened")

    assert copy_verified(src, dst, progress=progress) == sha256_of(src)
    assert calls == ["opened", "given up", "cache"]


def capture_readers(monkeypatch) -> list:
    readers, real_init = [], copy_module._readback.ReadBack.__init__

    def init(self, *args):
        real_init(self, *args)
        readers.append(self)

    monkeypatch.setattr(copy_module._readback.ReadBack, "__init__", init)
    return readers


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_a_byte_changed_after_it_was_read_back_during_the_copy_is_detected(src, dst, monkeypatch):
    monkeypatch.setenv("FILEOPS_READBACK", "cache")
    readers = capture_readers(monkeypatch)
    calls = spy_readbacks(monkeypatch)

    def progress(phase, done, total):
        if phase == "copy" and done >= 2 * PROGRESS_EVERY and not calls:
            wait_until(lambda: readers[0].verified >= MiB)  # read back, hashed: the hash
            flip_byte(parts(dst)[0], 10)  # taken during the copy cannot see this
            calls.append("flipped")

    with pytest.raises(ChecksumMismatch) as caught:
        copy_verified(src, dst, expected_sha256=sha256_of(src), progress=progress)

    assert calls == ["flipped", "given up", "cache"]
    assert caught.value.kind == "destination"
    assert "modified while it was read back" in str(caught.value)
    assert_nothing_left(dst)


@pytest.mark.parametrize("new_size", [4096, 3 * SIZE])
def test_a_copy_truncated_or_extended_by_name_during_the_copy_is_detected(
    tmp_path, dst, monkeypatch, readback, new_size
):
    """truncate(2) by name needs no open, so inotify cannot see it: the size and the holes
    tell (bytes cut off and then written past are a hole of zeros)."""
    src = tmp_path / "big.exr"
    write_random(src, 8 * PROGRESS_EVERY)  # the writer cannot be done when it is cut
    readers = capture_readers(monkeypatch)
    truncated = []

    def progress(phase, done, total):
        if phase == "copy" and done >= PROGRESS_EVERY and not truncated:
            part = parts(dst)[0]
            if readers:  # the writer stalls while this callback runs: let the reader catch up
                wait_until(lambda: stalled(part) and readers[0].verified >= os.path.getsize(part))
            truncated.append(os.path.getsize(part))
            os.truncate(part, new_size)

    with pytest.raises(ChecksumMismatch) as caught:
        copy_verified(src, dst, progress=progress)

    assert truncated and truncated[0] < 8 * PROGRESS_EVERY
    assert caught.value.kind == "destination"
    # During the copy, the hash saw the bytes before the cut; only the size and the holes tell
    # (unless the reader was still reading when it came, and read the zeros).
    assert "truncated or extended by another program" in str(
        caught.value
    ) or "does not read back the same" in str(caught.value)
    assert_nothing_left(dst)


def stalled(path) -> bool:
    before = os.path.getsize(path)
    time.sleep(0.05)
    return os.path.getsize(path) == before


def test_holes_are_found(tmp_path):
    with open(tmp_path / "cut", "wb") as f:
        f.write(b"x" * 4096)
        f.seek(16 * MiB)  # as when a truncation is written past
        f.write(b"y" * 4096)
    with open(tmp_path / "whole", "wb") as f:
        f.write(os.urandom(16 * MiB + 4096))
    for name, hole in (("cut", True), ("whole", False)):
        fd = os.open(tmp_path / name, os.O_RDONLY)
        try:
            assert copy_module._has_hole(fd, os.fstat(fd).st_size) is hole, name
        finally:
            os.close(fd)


def test_a_file_renamed_over_the_temporary_name_is_not_placed(src, dst, tmp_path, readback):
    intruder = tmp_path / "production" / "intruder"

    def progress(phase, done, total):
        if phase == "copy" and done >= PROGRESS_EVERY and not intruder.exists():
            intruder.write_bytes(b"not the approved bytes")
            os.rename(intruder, parts(dst)[0])

    with pytest.raises(ChecksumMismatch) as caught:
        copy_verified(src, dst, progress=progress)

    assert caught.value.kind == "destination"
    if readback == "cache":
        assert "replaced by another program" in str(caught.value)
    assert not os.path.lexists(dst)


def fake_sync_file_range(code):
    def sync_file_range(fd, offset, length, flags):
        ctypes.set_errno(code)
        return -1

    return sync_file_range


def test_a_write_back_error_fails_the_copy(src, dst, monkeypatch):
    """sync_file_range reports a write error once: the fsync after it would not."""
    monkeypatch.setattr(copy_module._pipeline, "WRITEBACK_EVERY", 2 * MiB)
    monkeypatch.setattr(copy_module._pipeline, "_sync_file_range", fake_sync_file_range(errno.EIO))

    with pytest.raises(OSError) as caught:
        copy_verified(src, dst)

    assert caught.value.errno == errno.EIO
    assert "writing the copy back to storage failed" in str(caught.value)
    assert_nothing_left(dst)


def test_a_filesystem_without_sync_file_range_still_copies(src, dst, monkeypatch):
    monkeypatch.setattr(copy_module._pipeline, "WRITEBACK_EVERY", 2 * MiB)
    monkeypatch.setattr(
        copy_module._pipeline, "_sync_file_range", fake_sync_file_range(errno.EINVAL)
    )
    assert copy_verified(src, dst) == sha256_of(src)


def test_without_inotify_the_copy_is_read_back_after_it_is_written(src, dst, monkeypatch):
    monkeypatch.setenv("FILEOPS_READBACK", "cache")

    def no_instances_left(directory):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(copy_module._readback, "OpenWatch", no_instances_left)
    calls = spy_readbacks(monkeypatch)

    assert copy_verified(src, dst) == sha256_of(src)
    assert calls == ["cache"]


def test_small_files_are_read_back_after_the_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("FILEOPS_READBACK", "cache")
    small = tmp_path / "small.bin"
    write_random(small, copy_module._EarlyReadBack.EARLY_FROM - 1)
    calls = spy_readbacks(monkeypatch)

    assert copy_verified(small, tmp_path / "out" / "small.bin") == sha256_of(small)
    assert calls == ["cache"]


def test_checksum_mismatch_survives_pickling(tmp_path):
    error = ChecksumMismatch(tmp_path / "f", "a" * 64, "b" * 64, "destination")

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object, as RQ stores it

    assert (copy.path, copy.expected, copy.actual, copy.kind) == (
        tmp_path / "f",
        "a" * 64,
        "b" * 64,
        "destination",
    )
    assert str(copy) == str(error)


# --- refusing and failing cleanly ------------------------------------------------------------
def test_copy_verified_refuses_an_existing_destination_and_leaves_it_untouched(src, dst):
    dst.parent.mkdir(parents=True)
    dst.write_bytes(b"the file already in production")

    with pytest.raises(FileExistsError):
        copy_verified(src, dst)

    assert dst.read_bytes() == b"the file already in production"
    assert parts(dst) == []


def test_copy_verified_refuses_a_destination_that_appears_during_the_copy(src, dst):
    def progress(phase, done, total):
        if phase == "verify" and done == 0:
            dst.write_bytes(b"someone else's file")

    with pytest.raises(FileExistsError):
        copy_verified(src, dst, progress=progress)

    assert dst.read_bytes() == b"someone else's file"
    assert parts(dst) == []


def test_concurrent_copies_to_one_destination_leave_exactly_one_intact_file(src, dst, tmp_path):
    other = tmp_path / "staging" / "other.exr"
    write_random(other, SIZE)
    barrier = threading.Barrier(2)
    outcomes = {}

    def run(source):
        barrier.wait()
        try:
            outcomes[source] = copy_verified(source, dst)
        except FileExistsError as exc:
            outcomes[source] = exc

    threads = [threading.Thread(target=run, args=(s,)) for s in (src, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [s for s, outcome in outcomes.items() if isinstance(outcome, str)]
    assert len(winners) == 1
    assert sha256_of(dst) == sha256_of(winners[0]) == outcomes[winners[0]]
    assert parts(dst) == []


def test_copy_verified_into_a_path_blocked_by_a_file_fails_and_leaves_nothing(src, tmp_path):
    (tmp_path / "production").write_bytes(b"a file where a folder should be")
    dst = tmp_path / "production" / "proj" / "f.exr"

    with pytest.raises(NotADirectoryError):
        copy_verified(src, dst)

    assert (tmp_path / "production").read_bytes() == b"a file where a folder should be"
    assert fileops_threads() == []


WRITE_LIMITED = """
import resource, signal, sys
from pipeline_project.fileops.copy import copy_verified
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    copy_verified(sys.argv[1], sys.argv[2])
except OSError as exc:
    print(exc.errno)
    sys.exit(3)
"""


def test_copy_verified_that_cannot_write_fails_and_leaves_nothing(src, dst):
    # Works as root too (where chmod would not stop writes): the kernel refuses every write
    # past the first MiB, as a full or read-only share would refuse them.
    dst.parent.mkdir(parents=True)

    child = run_child(WRITE_LIMITED, src, dst, MiB)

    assert child.returncode == 3, child.stderr
    assert child.stdout.strip() == str(errno.EFBIG)
    assert not dst.exists()
    assert parts(dst) == []


def test_copy_verified_into_a_full_filesystem_fails_before_writing(src, dst, monkeypatch):
    real_statvfs = os.statvfs

    def nearly_full(path):
        stats = real_statvfs(path)
        return os.statvfs_result((*stats[:4], 1, *stats[5:]))  # f_bavail: one block

    monkeypatch.setattr(copy_module.os, "statvfs", nearly_full)

    with pytest.raises(OSError) as caught:
        copy_verified(src, dst)

    assert caught.value.errno == errno.ENOSPC
    assert_nothing_left(dst)


def test_copy_verified_of_a_missing_source_raises_and_creates_nothing(tmp_path, dst):
    with pytest.raises(FileNotFoundError):
        copy_verified(tmp_path / "staging" / "missing.exr", dst)

    assert not dst.parent.exists()


def test_copy_verified_refuses_a_malformed_expected_hash(src, dst):
    with pytest.raises(ValueError, match="SHA-256"):
        copy_verified(src, dst, expected_sha256="not-a-hash")

    assert not dst.parent.exists()


@pytest.mark.parametrize(("when", "at"), [("copy", PROGRESS_EVERY), ("verify", PROGRESS_EVERY)])
def test_copy_verified_interrupted_removes_its_temporary_file(src, dst, when, at):
    def progress(phase, done, total):
        if phase == when and done >= at:
            assert parts(dst)  # the temporary file exists at this point
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_verified(src, dst, progress=progress)

    assert_nothing_left(dst)


KILLED = """
import os, signal, sys
from pipeline_project.fileops.copy import copy_verified
phase, after = sys.argv[3], int(sys.argv[4])

def progress(current, done, total):
    if current == phase and done >= after:
        os.kill(os.getpid(), signal.SIGKILL)

copy_verified(sys.argv[1], sys.argv[2], progress=progress)
"""


@pytest.mark.parametrize(("phase", "after"), [("copy", PROGRESS_EVERY), ("verify", 1)])
def test_copy_killed_midway_leaves_no_final_file_and_a_rerun_completes(src, dst, phase, after):
    child = run_child(KILLED, src, dst, phase, after)

    assert child.returncode == -signal.SIGKILL, child.stderr
    assert not dst.exists()
    stale = parts(dst)
    assert len(stale) == 1

    assert remove_stale_parts(dst) == stale
    assert parts(dst) == []
    assert copy_verified(src, dst, expected_sha256=sha256_of(src)) == sha256_of(src)
    assert dst.read_bytes() == src.read_bytes()
    assert parts(dst) == []


def test_remove_stale_parts_removes_only_that_files_parts(tmp_path):
    dst = tmp_path / "out" / "shot[1].exr"  # glob characters must not matter
    dst.parent.mkdir()
    mine = [dst.parent / f".shot[1].exr.part-{n}" for n in ("abc", "def")]
    others = [dst.parent / ".other.exr.part-abc", dst.parent / "shot[1].exr.part-x", dst]
    for path in mine + others:
        path.write_bytes(b"x")

    assert sorted(remove_stale_parts(dst)) == sorted(mine)
    assert all(p.exists() for p in others)
    assert remove_stale_parts(tmp_path / "no-such-folder" / "f") == []


# --- placing without hard links --------------------------------------------------------------
def _no_hard_links(monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(copy_module.os, "link", refuse)


def test_copy_verified_works_where_hard_links_are_unsupported(src, dst, monkeypatch):
    _no_hard_links(monkeypatch)

    assert copy_verified(src, dst) == sha256_of(src)
    assert dst.read_bytes() == src.read_bytes()
    assert parts(dst) == []


@pytest.mark.parametrize("with_renameat2", [True, False])
def test_copy_verified_without_hard_links_still_never_replaces(
    src, dst, monkeypatch, with_renameat2
):
    _no_hard_links(monkeypatch)
    if not with_renameat2:
        monkeypatch.setattr(copy_module, "_renameat2", None)

    def progress(phase, done, total):
        if phase == "verify" and done == SIZE:  # after the last check, just before the rename
            dst.write_bytes(b"arrived meanwhile")

    with pytest.raises(FileExistsError):
        copy_verified(src, dst, progress=progress)

    assert dst.read_bytes() == b"arrived meanwhile"
    assert parts(dst) == []


# --- move_file -------------------------------------------------------------------------------
def test_move_file_on_the_same_filesystem_moves_and_returns_the_hash(src, tmp_path):
    expected, content = sha256_of(src), src.read_bytes()
    target = tmp_path / "quarantine" / "TRF-00001" / src.name

    assert move_file(src, target) == expected

    assert not src.exists()
    assert target.read_bytes() == content
    assert target.stat().st_mtime_ns == 1_600_000_000_987_654_321


def test_move_file_refuses_to_overwrite(src, tmp_path):
    target = tmp_path / "quarantine" / src.name
    target.parent.mkdir()
    target.write_bytes(b"earlier quarantined file")
    content = src.read_bytes()

    with pytest.raises(FileExistsError):
        move_file(src, target)

    assert src.read_bytes() == content
    assert target.read_bytes() == b"earlier quarantined file"


def test_move_file_across_filesystems_copies_verifies_then_removes_the_source(
    src, tmp_path, monkeypatch
):
    expected, content = sha256_of(src), src.read_bytes()
    target = tmp_path / "quarantine" / src.name
    placed = []

    def cross_device(source, destination):
        if source == src:  # the rename of the move itself: another filesystem
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        placed.append(destination)
        return real_place(source, destination)

    real_place = copy_module.place_new
    monkeypatch.setattr(copy_module, "place_new", cross_device)

    assert move_file(src, target) == expected

    assert placed == [target]  # went through copy_verified
    assert not src.exists()
    assert target.read_bytes() == content
    assert parts(target) == []


def test_move_file_refuses_directories_and_keeps_them(tmp_path):
    (tmp_path / "folder").mkdir()

    with pytest.raises(OSError, match="not a regular file"):
        move_file(tmp_path / "folder", tmp_path / "elsewhere")

    assert (tmp_path / "folder").is_dir()
    assert not (tmp_path / "elsewhere").exists()


def test_cached_pages_sees_what_the_page_cache_holds_and_the_drop_empties_it(tmp_path):
    from pipeline_project.fileops._pipeline import advise, cached_pages

    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(4 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.read(fd, 4 << 20)
        assert cached_pages(fd) > 0
        advise(fd, "POSIX_FADV_DONTNEED")  # clean after fsync: every page can go
        assert cached_pages(fd) == 0
        os.pread(fd, 4096, 0)
        assert cached_pages(fd) >= 1
    finally:
        os.close(fd)
    empty = tmp_path / "empty"
    empty.touch()
    fd = os.open(empty, os.O_RDONLY)
    try:
        assert cached_pages(fd) == 0
    finally:
        os.close(fd)
