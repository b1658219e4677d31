"""Overlap file I/O with hashing: helper threads and a small ring of preallocated buffers.

hashlib, os.preadv and os.write all release the GIL, so on two cores helper threads can read
(and write) the next chunks while the caller's thread hashes this one. Memory stays at
BUFFER_COUNT x CHUNK_SIZE whatever the file size. Private to fileops.
"""

import contextlib
import ctypes
import errno
import mmap
import os
import queue
import stat
import threading

CHUNK_SIZE = 2 << 20
BUFFER_COUNT = 6
# Readers in parallel: storage answers several outstanding requests faster than one at a time
# (a busy local disk, and even more so NFS/SMB); the chunks are still handed over in order.
READERS = 3
PROGRESS_EVERY = 8 << 20
# Start writeback of what has been written every so often, so the final fsync finds little
# left to do and the page cache does not fill with dirty pages during a large copy.
WRITEBACK_EVERY = 32 << 20

_STOP = None  # wakes a stage up and tells it to leave


class ChunkStream:
    """The content of `fd` (from its current offset) as memoryviews, in order, read ahead by
    READERS helper threads.

    With `write_fd`, another thread writes each chunk to `write_fd` before it is handed over,
    so what the caller hashes is exactly what was written; `drop_written` says whether what
    was written back to storage leaves the page cache (see WriteBehind), and `on_written(n)`
    is called from the writing thread once the first n bytes are written. A view is only valid until the next
    one is requested. Use as a context manager: leaving it stops and joins the threads.
    """

    def __init__(
        self, fd: int, *, write_fd: int | None = None, drop_written: bool = True, on_written=None
    ):
        self._chunk = CHUNK_SIZE
        # Anonymous mmaps are page-aligned: the kernel copies them fastest, and O_DIRECT needs it.
        self._buffers = [mmap.mmap(-1, self._chunk) for _ in range(BUFFER_COUNT)]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for index in range(BUFFER_COUNT):
            self._free.put(index)
        self._cancelled = threading.Event()
        self._claim = threading.Lock()
        self._start, self._next_chunk, self._eof = os.lseek(fd, 0, os.SEEK_CUR), 0, False
        self._drop_written = drop_written
        self._on_written = on_written
        self._read_in_order = self._ready = _InOrder()
        stages = [(self._read, fd)] * READERS
        if write_fd is not None:
            self._ready = _InOrder()
            stages.append((self._write, write_fd))
        self._threads: list[threading.Thread] = []
        try:
            for target, arg in stages:
                name = f"fileops-{target.__name__.lstrip('_')}"
                thread = threading.Thread(target=target, args=(arg,), name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __iter__(self):
        previous = None
        while True:
            index, length = self._ready.get()
            if previous is not None:
                self._free.put(previous)
            previous = index
            if length:
                yield memoryview(self._buffers[index])[:length]
            if length < self._chunk:
                return

    def close(self):
        self._cancelled.set()
        for _ in self._threads:  # one per reader blocked on a free buffer (extras are harmless)
            self._free.put(_STOP)
        self._read_in_order.close()
        self._ready.close()
        for thread in self._threads:
            thread.join()
        for buffer in self._buffers:
            with contextlib.suppress(BufferError):  # a caller still holds a view: GC frees it
                buffer.close()

    def _read(self, fd: int):
        try:
            while True:
                with self._claim:  # buffers go to chunks in order, so the oldest always has one
                    if self._eof or self._cancelled.is_set():
                        return
                    index = self._free.get()
                    if index is _STOP:
                        return
                    number, self._next_chunk = self._next_chunk, self._next_chunk + 1
                offset = self._start + number * self._chunk
                length = _pread_full(fd, self._buffers[index], offset)
                if length < self._chunk:
                    self._eof = True
                self._read_in_order.put(number, (index, length))
        except BaseException as exc:
            self._read_in_order.fail(exc)

    def _write(self, fd: int):
        try:
            behind = WriteBehind(fd, drop=self._drop_written)
            number = total = 0
            while True:
                index, length = self._read_in_order.get()
                write_all(fd, memoryview(self._buffers[index])[:length])
                total += length
                if self._on_written is not None:
                    self._on_written(total)
                behind.wrote(length)
                self._ready.put(number, (index, length))
                number += 1
                if length < self._chunk:
                    return
        except _Closed:
            return
        except BaseException as exc:
            self._ready.fail(exc)


class _Closed(Exception):
    """The stream was closed while a stage waited."""


class _InOrder:
    """Hands items over by number, 0, 1, 2, ..., whatever order they arrive in; a failure is
    raised to the taker at once."""

    def __init__(self):
        self._items = {}
        self._next = 0
        self._error: BaseException | None = None
        self._closed = False
        self._changed = threading.Condition()

    def put(self, number: int, item):
        with self._changed:
            self._items[number] = item
            self._changed.notify_all()

    def fail(self, error: BaseException):
        with self._changed:
            self._error = self._error or error
            self._changed.notify_all()

    def close(self):
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def get(self):
        with self._changed:
            while self._next not in self._items and not (self._error or self._closed):
                self._changed.wait()
            if self._error is not None:
                raise self._error
            if self._closed:
                raise _Closed
            self._next += 1
            return self._items.pop(self._next - 1)


def _pread_full(fd: int, buffer, offset: int) -> int:
    """Fill `buffer` from `offset`; fewer bytes only at the end of the file."""
    view = memoryview(buffer)
    done = 0
    while done < len(view):
        length = os.preadv(fd, [view[done:]], offset + done)
        if length == 0:
            break
        done += length
    return done


class WriteBehind:
    """Streams written data to storage as the copy goes instead of all at the final fsync.

    Every WRITEBACK_EVERY bytes it starts writeback of the newest window, waits for the one
    before and (with `drop`) drops it from the page cache. Dirty memory stays bounded, the
    final fsync has little left to do, and with `drop` the read-back that verifies the copy
    comes from storage, not from memory. Linux only (sync_file_range); elsewhere it does nothing and fsync does it all.
    """

    def __init__(self, fd: int, drop: bool = True):
        self._fd = fd
        self._drop = drop
        self._written = self._started = 0
        self._unsupported = _sync_file_range is None
        self._previous: tuple[int, int] | None = None

    def wrote(self, length: int):
        self._written += length
        if self._unsupported or self._written - self._started < WRITEBACK_EVERY:
            return
        window = (self._started, self._written - self._started)
        if not _checked_sync_file_range(self._fd, *window, _SYNC_FILE_RANGE_WRITE):
            self._unsupported = True
            return
        if self._previous is not None:
            # A write error is reported once per descriptor: here, not again by the fsync.
            _checked_sync_file_range(self._fd, *self._previous, _SYNC_FILE_RANGE_WAIT_ALL)
            if self._drop:
                with contextlib.suppress(OSError):
                    os.posix_fadvise(self._fd, *self._previous, os.POSIX_FADV_DONTNEED)
        self._previous = window
        self._started = self._written


def open_regular(path) -> tuple[int, os.stat_result]:
    """Open a regular file for reading: (fd, its stat). A FIFO, device or directory is refused
    (O_NONBLOCK keeps a FIFO from blocking the open)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = IsADirectoryError if stat.S_ISDIR(info.st_mode) else OSError
            raise kind(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def write_all(fd: int, view: memoryview):
    while view:
        view = view[os.write(fd, view) :]


class Progress:
    """Calls `report(done)` when a pass starts, then at most every PROGRESS_EVERY bytes, and
    once at the end."""

    def __init__(self, report=None):
        self._report = report
        self.done = 0
        self._reported = -1

    def start(self):
        self._call()

    def add(self, length: int):
        self.done += length
        if self.done - self._reported >= PROGRESS_EVERY:
            self._call()

    def finish(self):
        if self._reported != self.done:
            self._call()

    def _call(self):
        self._reported = self.done
        if self._report is not None:
            self._report(self.done)


def advise(fd: int, advice_name: str):
    """posix_fadvise on the whole file, where the platform has it (a hint: errors are ignored)."""
    advice = getattr(os, advice_name, None)
    if advice is not None:
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, advice)


def libc_function(name: str, *argtypes):
    """A libc function returning int through ctypes (which releases the GIL while it runs),
    or None where this libc lacks it."""
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)  # libc is loaded already
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function


_sync_file_range = libc_function(
    "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
)
_SYNC_FILE_RANGE_WRITE = 2


def _checked_sync_file_range(fd: int, offset: int, length: int, flags: int) -> bool:
    """sync_file_range(2); False where the filesystem does not support it, OSError when
    writing back failed (EIO, ENOSPC, ...)."""
    if _sync_file_range(fd, offset, length, flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ESPIPE):
        return False
    raise OSError(code, f"writing the copy back to storage failed: {os.strerror(code)}")


_SYNC_FILE_RANGE_WAIT_ALL = 1 | 2 | 4  # WAIT_BEFORE | WRITE | WAIT_AFTER


_mincore = libc_function("mincore", ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


def cached_pages(fd: int) -> int:
    """How many pages of the file behind `fd` the page cache holds now (mincore over a
    private mapping, never written to), or -1 where that cannot be told."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    if _mincore is None:
        return -1
    try:
        mapping = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return -1
    try:
        # The ctypes view is dropped at once, so the mapping can be closed below.
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
        vector = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
        if _mincore(address, size, vector) != 0:
            return -1
        return sum(byte & 1 for byte in bytes(vector))
    finally:
        with contextlib.suppress(BufferError):
            mapping.close()
