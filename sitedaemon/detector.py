"""Finds files in the watch folder, waits until each has settled, hashes it and queues it.

The worker thread drives it (see daemon.Worker); filesystem events (from watchdog's thread)
and requests to look at a path again only drop the path in the inbox and wake the worker, so
their callers never wait; each step does a bounded amount of work. A file is a candidate until its size and mtime have stayed the same
for `settle` seconds, checked by stat-ing it again every tick; only then is it hashed (and it
must not change while it is read), and the versions are committed to the queue in batches.
"""

import logging
import os
import queue
import stat
import time
from collections import deque

from .filters import ignored_name, ignored_path
from .hashing import SMALL_FILE, FileChanged, Hasher, Stopping
from .helper import CHANGED, OK, HelperGone

log = logging.getLogger("sitedaemon")

PRELOAD_LIMIT = 100_000  # queues up to this many versions are kept in memory for look-ups
HELPER_BATCH = 64  # files per request to the hash helper
HELPER_BATCHES = 4  # requests in flight to it
WALK_AHEAD = 4096  # files found, settling or waiting to be hashed, before walking pauses
SHARE_BATCH = 16  # small files the worker hashes itself when it would otherwise wait
_DONE = object()


class Detector:
    def __init__(self, root, *, settle, store, stop, inbox=None, helper=None):
        self.root = os.fspath(root)
        self.settle = settle
        self.store = store
        self.stop = stop  # threading.Event
        # (is a folder, absolute path) from other threads: events, paths to look at again
        self.inbox: queue.SimpleQueue = inbox if inbox is not None else queue.SimpleQueue()
        self.hasher = Hasher(stop.is_set)
        self.helper = helper  # a HashHelper, or None to hash in this thread
        self._hashing: deque[list[tuple[str, int, int]]] = deque()  # batches sent to it
        # relative path -> [size, mtime_ns, stable since (monotonic)]
        self.candidates: dict[str, list] = {}
        self.ready: deque[tuple[str, int, int]] = deque()
        self._scans: list = []  # walks in progress (generators)
        self._warned: set[str] = set()
        self.tick_seconds = max(0.05, min(1.0, settle / 4))
        self._next_tick = 0.0
        # (path, size, mtime_ns) of the versions queued, and their paths; None: ask the store
        self._known = store.known_versions(PRELOAD_LIMIT)
        self._known_paths = None if self._known is None else {v[0] for v in self._known}

    # --- called by the worker --------------------------------------------------------------

    @property
    def can_work(self) -> bool:
        """Work this thread can do now: walking, hashing or handing files to the helper."""
        if self._may_walk():
            return True
        if self.helper is None:
            return bool(self.ready)
        return bool(self.ready) and len(self._hashing) < HELPER_BATCHES

    @property
    def busy(self) -> bool:
        """Files found and not queued yet (not counting candidates still settling)."""
        return bool(self._scans or self.ready or self._hashing)

    @property
    def hashing_elsewhere(self) -> bool:
        """Files are with the hash helper: its fileno() becomes readable with the answers."""
        return bool(self._hashing)

    def next_check(self) -> float | None:
        """When (monotonic) the candidates are next due to be checked, if there are any."""
        return self._next_tick if self.candidates else None

    def scan(self, folder: str):
        """Walk `folder` (in the watch folder), step by step as `step` is called."""
        relative = self._relative(folder)
        if folder == self.root:
            self._scans.append(self._walk(folder, ""))
        elif relative is not None and not ignored_path(relative):
            self._scans.append(self._walk(folder, relative + "/"))

    def step(self, budget: int) -> int:
        """Do up to about `budget` files' worth of work: events, walking, settle checks,
        hashing. Versions hashed are committed to the queue; returns how many were."""
        self._drain_inbox()
        walked = 0
        while walked < 8 * budget and self._may_walk():
            if next(self._scans[-1], _DONE) is _DONE:
                self._scans.pop()
            walked += 1
        if self.candidates and time.monotonic() >= self._next_tick:
            self._check_candidates()
        return self._hash_ready(budget)

    def _may_walk(self) -> bool:
        """A walk is in progress and not too far ahead of settling and hashing (memory)."""
        return bool(self._scans) and len(self.ready) + len(self.candidates) < WALK_AHEAD

    def share_hashing(self) -> int:
        """The worker has nothing else to do and the helper has all the files it can take:
        hash a few small ready files here (well under a millisecond each; a large one is
        left to the helper) and commit them. How many were."""
        if self.helper is None or not self.ready or self.ready[0][1] > SMALL_FILE:
            return 0
        return self._hash_here(SHARE_BATCH, small_only=True)

    def give_up_unsettled(self) -> int:
        """--once is over: log the files still changing (not reported); how many."""
        unsettled = sorted(
            {*self.candidates, *(path for path, _size, _mtime in self.ready)}
            | {path for batch in self._hashing for path, _size, _mtime in batch}
        )
        for path in unsettled:
            log.warning("not reported: %s was still changing", path)
        return len(unsettled)

    def forget(self, path: str, size: int, mtime_ns: int):
        """A version was superseded: the same size and mtime no longer mean "known"."""
        if self._known is not None:
            self._known.discard((path, size, mtime_ns))

    # --- internals -------------------------------------------------------------------------

    def _drain_inbox(self):
        while True:
            try:
                is_folder, path = self.inbox.get_nowait()
            except queue.Empty:
                return
            if is_folder:
                self.scan(path)
            else:
                self._observe_absolute(path)

    def _observe_absolute(self, path: str):
        relative = self._relative(path)
        if relative is None or ignored_path(relative):
            return
        try:
            info = os.lstat(path)
        except OSError:
            self.candidates.pop(relative, None)
            return
        if stat.S_ISDIR(info.st_mode):
            self.scan(path)
        else:
            self._observe(relative, info)

    def _relative(self, path: str) -> str | None:
        path = os.fspath(path)
        if not path.startswith(self.root + os.sep):
            return None
        relative = path[len(self.root) + 1 :]
        return relative.replace(os.sep, "/") if os.sep != "/" else relative

    def _walk(self, folder: str, prefix: str):
        """Generator: observes the files under `folder` (skipping ignored names and symbolic
        links), yielding after each one so that the worker can interleave other work."""
        stack = [(folder, prefix)]
        while stack:
            directory, prefix = stack.pop()
            try:
                entries = os.scandir(directory)
            except OSError as exc:
                log.warning("cannot list %s: %s", directory, exc.strerror or exc)
                continue
            with entries:
                for entry in entries:
                    name = entry.name
                    if ignored_name(name):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append((entry.path, prefix + name + "/"))
                        elif entry.is_file(follow_symlinks=False):
                            self._observe(prefix + name, entry.stat(follow_symlinks=False))
                            yield True
                    except OSError:
                        continue  # gone meanwhile

    def _observe(self, relative: str, info: os.stat_result):
        if not stat.S_ISREG(info.st_mode) or not self._usable_name(relative):
            return
        size, mtime = info.st_size, info.st_mtime_ns
        candidate = self.candidates.get(relative)
        if candidate is not None:
            if candidate[0] != size or candidate[1] != mtime:
                candidate[:] = [size, mtime, time.monotonic()]
            return
        if self._is_known(relative, size, mtime):
            return
        if self.settle <= 0:
            self.ready.append((relative, size, mtime))
        else:
            if not self.candidates:
                self._next_tick = time.monotonic() + self.tick_seconds
            self.candidates[relative] = [size, mtime, time.monotonic()]

    def _is_known(self, relative, size, mtime) -> bool:
        if self._known is not None:
            return (relative, size, mtime) in self._known
        return self.store.known(relative, size, mtime)

    def _usable_name(self, relative: str) -> bool:
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:
            if relative not in self._warned:
                self._warned.add(relative)
                log.warning("skipped %r: its name is not valid UTF-8", relative)
            return False
        return True

    def _check_candidates(self):
        """Stat every candidate again: changed ones start settling anew, settled ones are
        ready to hash."""
        now = time.monotonic()
        self._next_tick = now + self.tick_seconds
        for relative, candidate in list(self.candidates.items()):
            try:
                info = os.lstat(os.path.join(self.root, relative))
            except OSError:
                del self.candidates[relative]
                continue
            if not stat.S_ISREG(info.st_mode):
                del self.candidates[relative]
            elif candidate[0] != info.st_size or candidate[1] != info.st_mtime_ns:
                candidate[:] = [info.st_size, info.st_mtime_ns, now]
            elif now - candidate[2] >= self.settle:
                del self.candidates[relative]
                self.ready.append((relative, info.st_size, info.st_mtime_ns))

    def _hash_ready(self, budget: int) -> int:
        """Hash ready files (here, or by the helper: then collect what it has finished and
        give it more); commit the versions hashed. How many were."""
        if self.helper is not None:
            try:
                return self._with_helper()
            except HelperGone as exc:
                log.warning("hash helper stopped (%s); hashing in this thread from now on", exc)
                self.helper.close()
                self.helper = None
                while self._hashing:
                    self.ready.extendleft(reversed(self._hashing.pop()))
        return self._hash_here(budget)

    def _hash_here(self, budget: int, small_only: bool = False) -> int:
        """Hash up to `budget` ready files in this thread (only small ones with `small_only`)
        and commit them; how many were."""
        batch = []
        started = time.monotonic()
        root = self.root + os.sep
        while self.ready and len(batch) < budget and not self.stop.is_set():
            if small_only and self.ready[0][1] > SMALL_FILE:
                break
            relative, size, mtime = self.ready.popleft()
            try:
                digest = self.hasher.hash(root + relative, size, mtime)
            except Stopping:
                self.ready.appendleft((relative, size, mtime))
                break
            except FileChanged:
                self._observe_absolute(root + relative)
                continue
            except OSError as exc:
                log.warning("cannot read %s: %s", relative, exc.strerror or exc)
                continue
            batch.append((relative, size, mtime, digest))
            if size > 1 << 20 and time.monotonic() - started > 0.25:
                break  # large files: commit what is done, let the network have a turn
        self._commit(batch)
        return len(batch)

    def _with_helper(self) -> int:
        done = []
        root = self.root + os.sep
        for results in self.helper.results():
            for (relative, size, mtime), (code, value) in zip(
                self._hashing.popleft(), results, strict=True
            ):
                if code == OK:
                    done.append((relative, size, mtime, value))
                elif code == CHANGED:
                    self._observe_absolute(root + relative)
                else:
                    log.warning("cannot read %s: %s", relative, value)
        while self.ready and len(self._hashing) < HELPER_BATCHES:
            batch = [self.ready.popleft() for _ in range(min(HELPER_BATCH, len(self.ready)))]
            self.helper.submit([(root + relative, size, mtime) for relative, size, mtime in batch])
            self._hashing.append(batch)
        self._commit(done)
        return len(done)

    def _commit(self, batch: list[tuple[str, int, int, str]]):
        if batch:
            known_paths = self._known_paths
            fresh = known_paths is not None and not any(v[0] in known_paths for v in batch)
            self.store.add(batch, fresh_paths=fresh)
            if self._known is not None:
                self._known.update((path, size, mtime) for path, size, mtime, _ in batch)
                known_paths.update(v[0] for v in batch)
