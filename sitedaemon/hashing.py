"""SHA-256 of a watched file, with the size and mtime it had while it was read."""

import errno
import hashlib
import os
import stat

# Files up to this size are read in one call into a reused buffer and hashed here: for them
# sha256_file's read-ahead threads and buffers would cost far more than the hashing itself
# (0.7 ms a file against 0.03 ms for 32 KiB). Larger files go to sha256_file.
SMALL_FILE = 1 << 20


class Stopping(Exception):
    """The daemon is stopping: the hash in progress was abandoned."""


class FileChanged(Exception):
    """The file changed (or went away, or stopped being a regular file) while it was hashed."""


class Hasher:
    """Hashes one file at a time (one instance per thread)."""

    def __init__(self, should_stop=lambda: False):
        self._buffer = memoryview(bytearray(SMALL_FILE + 1))
        self._should_stop = should_stop

    def hash(self, path: str, size: int, mtime_ns: int) -> str:
        """The hex SHA-256 of the regular file at `path`, which must still have `size` and
        `mtime_ns` before and after it is read (FileChanged otherwise)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise FileChanged(f"{path} went away") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW: it became a symbolic link
                raise FileChanged(f"{path} is now a symbolic link") from None
            raise
        try:
            if size <= SMALL_FILE:
                # O_NONBLOCK does not apply to regular files; the check after the read
                # catches a file that was replaced by something else meanwhile.
                digest = self._hash_small(fd, path, size)
            else:
                _check(os.fstat(fd), path, size, mtime_ns)
                digest = self._hash_large(path, size)
            _check(os.fstat(fd), path, size, mtime_ns)
            return digest
        finally:
            os.close(fd)

    def _hash_small(self, fd: int, path: str, size: int) -> str:
        view, done = self._buffer, 0
        while done < size:  # a file that grew meanwhile fails the fstat check after
            count = os.readv(fd, [view[done:]])
            if not count:
                break
            done += count
        if done != size:
            raise FileChanged(f"{path} changed size while it was read")
        return hashlib.sha256(view[:done]).hexdigest()

    def _hash_large(self, path: str, size: int) -> str:
        from pipeline_project.fileops.hashing import sha256_file  # only when needed: slow import

        read = [0]

        def progress(done):
            read[0] = done
            if self._should_stop():
                raise Stopping

        digest = sha256_file(path, progress=progress)
        if read[0] != size:
            raise FileChanged(f"{path} changed size while it was read")
        return digest


def _check(info: os.stat_result, path: str, size: int, mtime_ns: int):
    if not stat.S_ISREG(info.st_mode):
        raise FileChanged(f"{path} is not a regular file any more")
    if info.st_size != size or info.st_mtime_ns != mtime_ns:
        raise FileChanged(f"{path} changed while it was hashed")
