"""Verified copies and safe moves: nothing partial or unverified ever appears under a final name.

copy_verified writes to `.{name}.part-<random>` beside the destination while hashing what it
writes, fsyncs, re-reads the written file and hashes it again, and only then gives it its
final name, never replacing an existing file. A killed copy leaves only a `.part-` file,
which remove_stale_parts deletes before a re-run.

Where the re-read comes from (`readback`, else the FILEOPS_READBACK environment variable):
- "storage": the copy's pages are dropped from the page cache and it is read back from the
  device or file server: this also catches what a storage stack damaged on the way.
- "cache": it is read back as the system holds it after the fsync, through the page cache
  (as `cp` and then `sha256sum` would): this catches everything but damage below the kernel.
- "auto" (the default): "cache" on filesystems on this machine's own disks (ext4, xfs,
  btrfs, zfs, f2fs, bcachefs, tmpfs), whose devices check their own writes; "storage"
  everywhere else: NFS, SMB, FUSE and other network or unknown filesystems, where data goes
  through a network and a server before it is stored and the page cache proves nothing.
"""

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
import stat
import sys
from pathlib import Path

from . import _pipeline, _readback
from ._pipeline import ChunkStream, Progress, advise, cached_pages, libc_function, open_regular
from .hashing import sha256_fd, sha256_file

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
READBACK_MODES = ("auto", "storage", "cache")
# statfs(2) f_type of filesystems on this machine's own disks or memory ("auto" reads through
# the page cache there).
_LOCAL_FILESYSTEMS = {
    0xEF53,  # ext2, ext3, ext4
    0x58465342,  # xfs
    0x9123683E,  # btrfs
    0xF2F52010,  # f2fs
    0x2FC12FC1,  # zfs
    0xCA451A4E,  # bcachefs
    0x01021994,  # tmpfs
}
_PART_MARK = ".part-"
_PART_NAME_BYTES = 200


class ChecksumMismatch(Exception):
    """A verified copy found two SHA-256 values that should be equal.

    kind "source": the source did not hash to `expected` (it changed after it was scanned, or
    while it was copied). kind "destination": what was written did not read back the same.
    """

    def __init__(self, path, expected, actual, kind, reason=""):
        self.path, self.expected, self.actual, self.kind = Path(path), expected, actual, kind
        self.reason = reason or _default_reason(kind)
        super().__init__(
            f"{self.path}: {self.reason} (expected sha256 {expected or 'unknown'}, got {actual})"
        )

    def __reduce__(self):
        return type(self), (self.path, self.expected, self.actual, self.kind, self.reason)


def _default_reason(kind: str) -> str:
    if kind == "source":
        return "the source does not match the expected hash; it changed after it was scanned"
    return "the copy written does not read back the same as the source"


def part_prefix(dst) -> str:
    """Temporary files of copies to `dst` are named `{part_prefix(dst)}<random>`. Long names
    are cut to 200 bytes so the temporary name stays within the 255-byte limit."""
    name = Path(dst).name
    if len(os.fsencode(name)) > _PART_NAME_BYTES:
        name = os.fsdecode(os.fsencode(name)[:_PART_NAME_BYTES])
    return f".{name}{_PART_MARK}"


def remove_stale_parts(dst) -> list[Path]:
    """Delete leftover temporary files of earlier, killed copies to `dst`; returns their paths.

    Only call it when no other copy to the same `dst` is running (the job's lock ensures it):
    a running copy would lose its temporary file and fail (safely, but needlessly).
    """
    dst = Path(dst)
    prefix = part_prefix(dst)
    removed = []
    try:
        entries = list(os.scandir(dst.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix) and not entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def readback_mode(directory, readback: str | None = None) -> str:
    """Where a copy into `directory` is read back from: "storage" or "cache" (see above).

    `readback`, else FILEOPS_READBACK, else "auto"; ValueError for anything else."""
    mode = readback or os.environ.get("FILEOPS_READBACK", "").strip().lower() or "auto"
    if mode not in READBACK_MODES:
        raise ValueError(f"readback must be one of {', '.join(READBACK_MODES)}, not {mode!r}")
    if mode == "auto":
        return "cache" if filesystem_type(directory) in _LOCAL_FILESYSTEMS else "storage"
    return mode


def filesystem_type(path) -> int | None:
    """statfs(2)'s f_type for `path`, or None where that cannot be told."""
    if _statfs is None:
        return None
    buffer = ctypes.create_string_buffer(256)  # struct statfs: 120 bytes on 64-bit Linux
    if _statfs(os.fsencode(path), buffer) != 0:
        return None
    value = ctypes.c_ulong.from_buffer(buffer).value  # f_type comes first: a long...
    if sys.byteorder == "big" and value > 0xFFFFFFFF:
        value >>= 32  # ... but 4 bytes on s390x, followed by f_bsize
    return value & 0xFFFFFFFF


_statfs = libc_function("statfs", ctypes.c_char_p, ctypes.c_void_p)


def copy_verified(src, dst, expected_sha256=None, progress=None, readback=None) -> str:
    """Copy `src` to `dst` and return the SHA-256, verified on both sides.

    - Writes `.{dst.name}.part-<random>` in dst's folder (created if missing), hashing the
      bytes as they are written, then fsyncs it.
    - The source hash must equal `expected_sha256` when given, else ChecksumMismatch("source").
    - The written file is read back and hashed, from storage (its cached pages dropped first)
      or through the page cache, as `readback` says (see readback_mode); a difference raises
      ChecksumMismatch("destination").
    - Only then is it placed under `dst` (never replacing a file: FileExistsError) and the
      folder fsynced. Source mtime and permission bits are kept.
    On any failure, including KeyboardInterrupt, the temporary file is removed and nothing
    exists under `dst`. `progress(phase, done, total)` gets phase "copy" then "verify".
    """
    src, dst = Path(src), Path(dst)
    expected = _normalise_sha256(expected_sha256)
    readback_mode(dst.parent, readback)  # a wrong mode fails before anything is done
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination already exists", str(dst))
    src_fd, src_stat = open_regular(src)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        from_storage = readback_mode(dst.parent, readback) == "storage"
        _check_free_space(dst.parent, src_stat.st_size)
        early = None if from_storage else _EarlyReadBack.possible(dst.parent, src_stat.st_size)
        try:
            temp, temp_fd = _create_part(dst)
        except BaseException:
            if early is not None:
                early.close()
            raise
        try:
            try:
                if early is not None:
                    early.open(temp_fd)
                sha256 = _copy_and_verify(
                    src,
                    src_fd,
                    src_stat,
                    dst,
                    temp,
                    temp_fd,
                    expected,
                    progress,
                    from_storage,
                    early,
                )
            finally:
                try:
                    if early is not None:
                        early.close()
                finally:
                    os.close(temp_fd)
            place_new(temp, dst)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    finally:
        os.close(src_fd)
    with contextlib.suppress(OSError):  # placed by a hard link: drop the temporary name
        os.unlink(temp)
    _fsync_dir_or_undo(dst)
    return sha256


def _copy_and_verify(
    src, src_fd, src_stat, dst, temp, temp_fd, expected, progress, from_storage, early
) -> str:
    """Copy and verify: read back from storage, or through the page cache, during the copy
    where `early` (an _EarlyReadBack) could start, else after it."""
    meter = _phase(progress, "copy", src_stat.st_size)
    on_written = early.written if early is not None and early.reading else None
    # Pages written back leave the cache once they were read back (or when that is done after
    # the copy from storage): a copy of hundreds of GB does not push everything else out.
    drop = from_storage or on_written is not None
    copied = _copy_hashing(src_fd, temp_fd, meter, drop, on_written)
    if expected is not None and copied != expected:
        raise ChecksumMismatch(src, expected, copied, "source")
    if expected is None and _changed(src_fd, src_stat):
        raise ChecksumMismatch(
            src, None, copied, "source", reason="the source changed while it was being copied"
        )
    os.fsync(temp_fd)
    written = os.fstat(temp_fd)

    def verify():
        return _phase(progress, "verify", src_stat.st_size)

    if from_storage:
        reread = _hash_from_storage(temp, verify)
    elif early is None or (reread := early.finish(temp, src_stat.st_size, verify())) is None:
        # Not read back during the copy, or opened by another program meanwhile: all again.
        reread = _hash_through_cache(temp, verify())
        if reread != copied and early is not None and early.opened_by_others:
            raise _destination(dst, copied, reread, "the copy was modified while it was read back")
    if reread != copied:
        raise _destination(dst, copied, reread)
    if written.st_size != src_stat.st_size or _has_hole(temp_fd, written.st_size):
        # truncate(2) by name: no open, so nothing else can tell
        raise _destination(
            dst, copied, reread, "the copy was truncated or extended by another program"
        )
    if _changed(temp_fd, written):  # a write behind the read-back, which the hash cannot see
        raise _destination(dst, copied, reread, "the copy was modified while it was read back")
    os.fchmod(temp_fd, stat.S_IMODE(src_stat.st_mode) & 0o777)
    os.utime(temp_fd, ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))
    at_name = os.lstat(temp)  # the name is what gets linked into place: still this file?
    if (at_name.st_dev, at_name.st_ino) != (written.st_dev, written.st_ino):
        raise _destination(
            dst, copied, reread, "the temporary file was replaced by another program"
        )
    return copied


def _destination(dst, copied: str, reread: str, reason: str = "") -> ChecksumMismatch:
    return ChecksumMismatch(dst, copied, reread, "destination", reason=reason)


def _phase(progress, phase: str, total: int) -> Progress:
    if progress is None:
        return Progress()
    return Progress(lambda done: progress(phase, done, total))


def _copy_hashing(
    src_fd: int, temp_fd: int, meter: Progress, drop_written=True, on_written=None
) -> str:
    advise(src_fd, "POSIX_FADV_SEQUENTIAL")
    digest = hashlib.sha256()
    meter.start()
    stream = ChunkStream(src_fd, write_fd=temp_fd, drop_written=drop_written, on_written=on_written)
    with stream as chunks:
        for chunk in chunks:  # already written to temp_fd when it arrives here
            digest.update(chunk)
            meter.add(len(chunk))
    meter.finish()
    return digest.hexdigest()


class _EarlyReadBack:
    """The read-back through the page cache, done while the copy is written (see _readback),
    for files of EARLY_FROM bytes or more on local filesystems with inotify; possible() is
    None elsewhere. `reading` is False when the reader could not start, and finish() gives
    None when the whole file must be read back after all."""

    EARLY_FROM = 4 * _pipeline.CHUNK_SIZE
    OWN_OPENS = 1  # the temporary file's creation; the read-back uses its descriptor

    @classmethod
    def possible(cls, directory: Path, size: int):
        """An instance watching `directory`, before the temporary file is created; or None."""
        if size < cls.EARLY_FROM or filesystem_type(directory) not in _LOCAL_FILESYSTEMS:
            return None
        try:
            return cls(_readback.OpenWatch(directory))
        except OSError:  # e.g. no inotify instances left: read back after the copy
            return None

    def __init__(self, watch):
        self._watch = watch
        self._reader = None
        self.opened_by_others = False

    @property
    def reading(self) -> bool:
        return self._reader is not None

    def open(self, temp_fd: int):
        """Watch the file just created (through its descriptor: that very file, whatever
        happens to its name) and start reading it back."""
        try:
            self._watch.watch_fd(temp_fd)
        except OSError:  # no /proc, or no watches left: read back after the copy
            return
        self._reader = _readback.ReadBack(temp_fd)

    def written(self, upto: int):
        self._reader.written(upto)

    def finish(self, temp: Path, size: int, meter: Progress) -> str | None:
        if not self.reading or self._others(temp):
            return None
        digest = self._reader.finish(size, meter)
        return None if self._others(temp) else digest

    def _others(self, temp: Path) -> bool:
        if not self.opened_by_others:
            self.opened_by_others = self._watch.opened_by_others(temp.name, self.OWN_OPENS)
        return self.opened_by_others

    def close(self):
        try:
            if self._reader is not None:
                self._reader.close()
        finally:
            self._watch.close()


def _hash_through_cache(path: Path, meter: Progress) -> str:
    """Hash the file as the system holds it (a new descriptor; what is cached is used)."""
    return _hash_opened(path, os.O_RDONLY | os.O_CLOEXEC, meter)


def _hash_from_storage(path: Path, new_meter) -> str:
    """Hash the file as storage holds it, not as the page cache remembers it.

    The copy is fsynced, so its cached pages are clean: drop them, and when mincore confirms
    that none is left, read it back through the page cache (with readahead: the fastest read
    there is). If a page stayed cached (someone maps the file) or that cannot be told, read with
    O_DIRECT where the filesystem allows it, else after the drop anyway."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        advise(fd, "POSIX_FADV_DONTNEED")
        if cached_pages(fd) == 0:
            return sha256_fd(fd, new_meter())
    finally:
        os.close(fd)
    direct = getattr(os, "O_DIRECT", 0)
    if direct:
        try:
            return _hash_opened(path, os.O_RDONLY | os.O_CLOEXEC | direct, new_meter())
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: no direct I/O here (tmpfs, some FUSE/SMB)
                raise
    return _hash_opened(path, os.O_RDONLY | os.O_CLOEXEC, new_meter(), drop_cache=True)


def _hash_opened(path: Path, flags: int, meter: Progress, drop_cache=False) -> str:
    fd = os.open(path, flags)
    try:
        if drop_cache:
            advise(fd, "POSIX_FADV_DONTNEED")
        return sha256_fd(fd, meter)
    finally:
        os.close(fd)


def _has_hole(fd: int, size: int) -> bool:
    """Whether the file has a hole before `size`: a copy writes every byte, so only a truncation
    that the copy then wrote past can have made one. False where holes cannot be told."""
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_hole is None or size == 0:
        return False
    try:
        return os.lseek(fd, 0, seek_hole) < size
    except OSError:
        return False


def _changed(fd: int, before: os.stat_result) -> bool:
    after = os.fstat(fd)
    return (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)


def _normalise_sha256(value):
    if value is None:
        return None
    text = str(value).strip().lower()
    if not _SHA256_HEX.fullmatch(text):
        raise ValueError(f"expected_sha256 is not a SHA-256 hex digest: {value!r}")
    return text


def _check_free_space(directory: Path, size: int):
    """Fail at once, not after writing most of a large file, when it cannot fit."""
    try:
        info = os.statvfs(directory)
    except OSError:
        return
    free = info.f_bavail * info.f_frsize
    if info.f_blocks and info.f_frsize and free < size:  # some network mounts report zeros
        raise OSError(
            errno.ENOSPC, f"{size} bytes do not fit in the {free} bytes free", str(directory)
        )


def _create_part(dst: Path) -> tuple[Path, int]:
    while True:
        temp = dst.parent / f"{part_prefix(dst)}{secrets.token_hex(6)}"
        try:
            # 0600 until verified: nobody reads a half-written file by accident.
            # Read-write: the read-back during the copy reads through the same descriptor.
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        return temp, fd


def place_new(temp: Path, dst: Path):
    """Give `temp` the name `dst` atomically, failing with FileExistsError if `dst` exists.

    A hard link is atomic and never replaces; where links are unsupported (some SMB/NFS
    shares, protected_hardlinks), fall back to renameat2(RENAME_NOREPLACE), then to a rename
    after checking nothing is there. After a link the caller removes `temp`.
    """
    try:
        os.link(temp, dst)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _LINK_UNSUPPORTED:
            raise
    rename_noreplace(temp, dst)


_LINK_UNSUPPORTED = {errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


_renameat2 = libc_function(
    "renameat2", ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint
)


def rename_noreplace(src, dst):
    """Rename `src` to `dst`, raising FileExistsError instead of replacing an existing `dst`.

    Atomic where the kernel and filesystem support RENAME_NOREPLACE; elsewhere the check and the
    rename are two steps (the best POSIX offers without hard links).
    """
    if _renameat2 is not None:
        result = _renameat2(
            _AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE
        )
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), os.fspath(src), None, os.fspath(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination already exists", os.fspath(dst))
    os.rename(src, dst)


def fsync_dir(directory: Path):
    """Make a rename or link in `directory` durable (a no-op where the filesystem refuses)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):  # not supported
            raise
    finally:
        os.close(fd)


def _fsync_dir_or_undo(dst: Path):
    """Make the new name durable; if that fails, take the name away again and re-raise."""
    try:
        fsync_dir(dst.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(dst)
        raise


def move_file(src, dst) -> str:
    """Move the regular file `src` to `dst` (e.g. into quarantine) and return its SHA-256.

    Never replaces an existing `dst` (FileExistsError) and never loses the file: on the same
    filesystem it is renamed without replacing; across filesystems it is copied with
    copy_verified and the source removed only once the copy is verified. dst's folder is
    created if missing.
    """
    src, dst = Path(src), Path(dst)
    info = os.lstat(src)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(src))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination already exists", str(dst))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if os.stat(dst.parent).st_dev == info.st_dev:
        try:
            place_new(src, dst)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # e.g. a bind mount of the same device
                raise
        else:
            with contextlib.suppress(FileNotFoundError):
                if os.path.samefile(src, dst):  # placed by a hard link: drop the old name
                    os.unlink(src)
            fsync_dir(dst.parent)
            fsync_dir(src.parent)
            return sha256_file(dst)
    sha256 = copy_verified(src, dst)
    os.unlink(src)
    fsync_dir(src.parent)
    return sha256
