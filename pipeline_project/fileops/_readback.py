"""Read a copy back while it is being written. Private to fileops (copy.py uses it).

With the read-back through the page cache (copy.py's "cache" mode), the copy need not be read
back only once it is complete: ReadBack reads and hashes each chunk right behind the thread
that writes it, on another core, so the copy and its verification take little more time than
the copy alone.

Reading back early leaves one gap: a part already verified could be changed afterwards by
another program, and the hash would not see it. To write to the file, a program has to open it
first, so OpenWatch (inotify) watches the folder before the temporary file is created and the
file itself (through the copy's descriptor) right after: if anyone but the copy opened it,
copy.py reads the whole file back once more after the copy. What needs no open is checked by
copy.py itself: the size and holes (truncate(2) by name) and the file under the temporary name
(rename(2) over it). inotify only sees what this machine does, so this is only done on local
filesystems (a remote client of an NFS or SMB share could write unseen).

inotify merges an event into the previous one when both are the same and the first is unread,
so the folder's IN_OPEN events for the name cannot be counted exactly: one (the creation) is
the copy's own, and another program's open in the microseconds between the creation and the
watch on the file may merge into it. Any open after that shows as an event on the file's watch,
which the copy never opens again.
"""

import contextlib
import ctypes
import errno
import hashlib
import mmap
import os
import queue
import struct
import threading

from ._pipeline import CHUNK_SIZE, PROGRESS_EVERY, _pread_full, libc_function

PROGRESS_STEP = PROGRESS_EVERY

BUFFER_COUNT = 4

_IN_OPEN = 0x20
_IN_Q_OVERFLOW = 0x4000
_IN_ONLYDIR = 0x01000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name

_inotify_init1 = libc_function("inotify_init1", ctypes.c_int)
_inotify_add_watch = libc_function(
    "inotify_add_watch", ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32
)


class OpenWatch:
    """Tells whether anyone opened a file besides the opens the caller counts as its own.

    Create it before the file exists (it watches the folder, so an open right after creation
    is seen), call watch_fd() as soon as the file is created (it then sees opens by any path,
    hard links and /proc included), and ask opened_by_others() at the end.
    """

    def __init__(self, directory):
        if _inotify_init1 is None or _inotify_add_watch is None:
            raise OSError(errno.ENOSYS, "no inotify here")
        self._fd = _inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        self._dir = self._file = -1
        self._buffer = b""
        try:
            self._dir = self._add(directory, _IN_OPEN | _IN_ONLYDIR)
        except BaseException:
            self.close()
            raise

    def _add(self, path, mask: int) -> int:
        wd = _inotify_add_watch(self._fd, os.fsencode(path), mask)
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), os.fspath(path))
        return wd

    def watch_fd(self, fd: int):
        """Watch the file open as `fd` (its inode, by whatever name it is opened later)."""
        self._file = self._add(f"/proc/self/fd/{fd}", _IN_OPEN)

    def opened_by_others(self, name: str, own_opens: int) -> bool:
        """True when `name` in the folder was seen opened more than `own_opens` times
        (merged events count once), or the file at all since watch_fd(); also when that
        cannot be told (events lost)."""
        try:
            while chunk := os.read(self._fd, 1 << 16):
                self._buffer += chunk
        except BlockingIOError:
            pass
        wanted, in_folder, of_file, position = os.fsencode(name), 0, 0, 0
        while position + _EVENT.size <= len(self._buffer):
            wd, mask, _cookie, length = _EVENT.unpack_from(self._buffer, position)
            start = position + _EVENT.size
            position = start + length
            if mask & _IN_Q_OVERFLOW:
                return True
            if not mask & _IN_OPEN:
                continue
            if wd == self._dir and self._buffer[start:position].rstrip(b"\0") == wanted:
                in_folder += 1
            elif wd == self._file and self._file >= 0:
                of_file += 1
        self._buffer = self._buffer[position:]
        return in_folder > own_opens or of_file > 0

    def close(self):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ReadBack:
    """Reads `fd` back from the start with pread (the writer's file offset stays as it is), up
    to what written() allows, and hashes it: a reader thread and a hashing thread over a few
    page-aligned buffers. `fd` stays the caller's to close."""

    def __init__(self, fd: int):
        self._fd = fd
        self._buffers = [mmap.mmap(-1, CHUNK_SIZE) for _ in range(BUFFER_COUNT)]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._full: queue.SimpleQueue = queue.SimpleQueue()
        for index in range(BUFFER_COUNT):
            self._free.put(index)
        self._changed = threading.Condition()
        self._limit = 0  # bytes written so far
        self._end: int | None = None  # the copy's size, once it is complete
        self._cancelled = False
        self._error: BaseException | None = None
        self._digest = hashlib.sha256()
        self.verified = 0
        self._hashed_all = False  # the hashing thread has seen the reader's last chunk
        self._threads = [
            threading.Thread(target=self._read, name="fileops-readback", daemon=True),
            threading.Thread(target=self._hash, name="fileops-readback-hash", daemon=True),
        ]
        try:
            for thread in self._threads:
                thread.start()
        except BaseException:
            self.close()
            raise

    def written(self, upto: int):
        """The first `upto` bytes have been written (called from the writing thread)."""
        with self._changed:
            self._limit = max(self._limit, upto)
            self._changed.notify_all()

    def finish(self, size: int, meter) -> str:
        """Read back the rest of a `size`-byte copy (all of it is written now), counting
        verified bytes on `meter` from the caller's thread; the hex SHA-256 read back."""
        meter.start()
        with self._changed:
            self._end = self._limit = size
            self._changed.notify_all()
        while True:
            with self._changed:  # the meter's callback runs outside the lock
                while (
                    not self._hashed_all
                    and self._error is None
                    and (self.verified - meter.done < PROGRESS_STEP)
                ):
                    self._changed.wait()
                error, verified, complete = self._error, self.verified, self._hashed_all
            if error is not None:
                raise error
            meter.add(verified - meter.done)
            if complete:  # all of it, or the file ended early: the hash tells
                break
        meter.finish()
        return self._digest.hexdigest()

    def close(self):
        with self._changed:
            self._cancelled = True
            self._changed.notify_all()
        for _ in self._threads:
            self._free.put(None)
        self._full.put(None)
        for thread in self._threads:
            if thread.ident is not None:
                thread.join()
        for buffer in self._buffers:
            with contextlib.suppress(BufferError):
                buffer.close()

    def _fail(self, exc: BaseException):
        with self._changed:
            self._error = self._error or exc
            self._changed.notify_all()

    def _read(self):
        offset = 0
        try:
            while True:
                with self._changed:
                    while not self._cancelled and offset >= self._limit and self._end is None:
                        self._changed.wait()
                    if self._cancelled or (self._end is not None and offset >= self._end):
                        break
                    limit = self._limit
                index = self._free.get()
                if index is None:
                    break
                wanted = min(CHUNK_SIZE, limit - offset)
                with memoryview(self._buffers[index]) as view:
                    length = _pread_full(self._fd, view[:wanted], offset)
                self._full.put((index, length))
                if length < wanted:  # shorter than what was written: the hash will differ
                    break
                offset += length
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._full.put(None)

    def _hash(self):
        try:
            while (item := self._full.get()) is not None:
                index, length = item
                with memoryview(self._buffers[index]) as view:
                    self._digest.update(view[:length])
                self._free.put(index)
                with self._changed:
                    self.verified += length
                    self._changed.notify_all()
        except BaseException as exc:
            self._fail(exc)
        finally:
            with self._changed:
                self._hashed_all = True
                self._changed.notify_all()
