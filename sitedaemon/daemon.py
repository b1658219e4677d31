"""The worker thread, which does all the work, and the heartbeat thread.

One worker thread walks the folder, settles, hashes (through the hash helper process, see
helper.py) and queues files (detector.py) and talks to the orchestrator about them: it sends
registrations of pending versions as they are queued, pipelined on one kept-alive connection,
and reads the answers whenever they have arrived, so that the orchestrator works on one batch
while the next is hashed; uploads go one at a time once nothing else is waiting. Each answer is committed to the queue. Transient trouble
(connection refused, timeouts, 5xx, 408, 429) pauses the network side, with exponential
backoff, while detection goes on; a rejected key (401, 403) or a URL that is not the API
pauses it for longer, with a clear log line; any other 4xx is that file's own problem: it is
marked failed and the worker carries on.
"""

import contextlib
import logging
import os
import queue
import select
import threading
import time
from collections import deque
from json.encoder import encode_basestring_ascii as json_string

from . import __version__
from .client import BodyChanged, Client, RequestError, Response, Stopping
from .detector import Detector
from .hashing import FileChanged
from .hashing import Stopping as HashStopping
from .store import Item, Store

log = logging.getLogger("sitedaemon")

FILES = "/api/colour/files/"
HASH_SLICE = 64  # files hashed (and committed) between turns of the network side
UPLOAD_ATTEMPTS = 3  # 400s for an upload whose file did not change, before it is failed
UPLOAD_FAIRNESS = 10.0  # seconds: an upload goes even while new files keep coming
ONCE_TRANSIENT_FAILURES = 4  # --once gives up after this many failures in a row
AUTH_BACKOFF = 10.0  # first wait after a rejected key; never less, whatever --max-backoff
STOP_GRACE = 2.0  # seconds to collect the answers to requests in flight when stopping


class Settings:
    """What the command line says (see cli.py)."""

    def __init__(self, *, site, root, url, api_key, state_dir, **options):
        self.site, self.root, self.url = site, root, url
        self.api_key, self.state_dir = api_key, state_dir
        self.metadata_only = False
        self.settle = 5.0
        self.heartbeat = 30.0
        self.max_backoff = 300.0
        self.pipeline = 1024
        self.rescan = 0.0
        self.timeout = 60.0
        self.once = False
        self.hostname = ""
        for name, value in options.items():
            if not hasattr(self, name):
                raise TypeError(f"unknown setting {name}")
            setattr(self, name, value)

    @property
    def store_path(self) -> str:
        return os.path.join(self.state_dir, "queue.sqlite3")


class Outcome:
    """What a run leaves behind (for --once's exit status)."""

    def __init__(self):
        self.failed = 0  # versions failed during this run
        self.gave_up = ""  # why --once stopped trying, if it did
        self.unsettled = 0  # files still changing when --once finished


class Worker:
    def __init__(self, settings: Settings, *, stop: threading.Event, outcome: Outcome, helper=None):
        self.s = settings
        self.helper = helper  # a HashHelper process, or None
        self.stop = stop
        self.outcome = outcome
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_fds = (self._wake_r, self._wake_w)
        self.client = Client(settings.url, settings.api_key, timeout=settings.timeout)
        self.window = max(1, settings.pipeline)
        self.in_flight: deque[Item] = deque()  # registrations sent, in order, not answered
        self.cursor = 0  # highest queue id sent in this round
        self.retry_at = 0.0  # monotonic time before which the network side rests
        self.failures = 0  # consecutive failures to talk to the orchestrator
        self.stale_retry = False  # a failure on a reused connection was retried at once
        self.last_upload = 0.0
        self.store: Store | None = None
        self.detector: Detector | None = None
        # Registrations are built from a template: they are the bulk of the traffic.
        self._register_head = self.client.json_head(FILES)
        site, host = json_string(settings.site), json_string(settings.hostname)
        self._register_body = (
            '{"site":' + site.replace("%", "%%") + ',"path":%s,"size":%d,"sha256":"%s",'
            '"mtime":"%s","metadata":{"filename":%s,"extension":%s,"hostname":'
            + host.replace("%", "%%")
            + "}}"
        )

    # --- from other threads ------------------------------------------------------------------

    def wake(self):
        if self._wake_fds:
            with contextlib.suppress(BlockingIOError):  # full: it is awake already
                os.write(self._wake_w, b"\0")

    def file_event(self, path: str):
        self.inbox.put((False, path))
        self.wake()

    def folder_event(self, path: str):
        self.inbox.put((True, path))
        self.wake()

    # --- the thread --------------------------------------------------------------------------

    def run(self):
        self.store = Store(self.s.store_path)
        self.detector = Detector(
            self.s.root,
            settle=self.s.settle,
            store=self.store,
            stop=self.stop,
            inbox=self.inbox,
            helper=self.helper,
        )
        try:
            self._loop()
        except (Stopping, HashStopping):
            pass
        finally:
            try:
                self._collect_in_flight()
            finally:
                self.client.close()
                if self.detector.helper is not None:
                    self.detector.helper.close()
                self.store.close()

    def close(self):
        """Release the wake-up pipe, once nothing can call wake() any more (the observer and
        this thread have stopped): a write to a closed descriptor could hit a reused one."""
        fds, self._wake_fds = self._wake_fds, ()
        for fd in fds:
            os.close(fd)

    def _loop(self):
        detector, once = self.detector, self.s.once
        detector.scan(self.s.root)
        settle_deadline = None  # --once: how long files found may take to settle
        next_rescan = time.monotonic() + self.s.rescan if self.s.rescan and not once else None
        while not self.stop.is_set():
            hashed = detector.step(HASH_SLICE)
            sent = self._network()
            now = time.monotonic()
            if once and not detector.busy:
                if settle_deadline is None:
                    settle_deadline = now + 2 * self.s.settle + 1
                settled = not detector.candidates or now > settle_deadline
                if settled and self._nothing_left():
                    self.outcome.unsettled = detector.give_up_unsettled()
                    return
            if next_rescan is not None and now >= next_rescan:
                detector.scan(self.s.root)
                next_rescan = now + self.s.rescan
            if not (hashed or sent or detector.can_work or detector.share_hashing()):
                self._wait(now)

    def _nothing_left(self) -> bool:
        """--once: nothing more the network side can do in this run."""
        return bool(self.outcome.gave_up) or (not self.in_flight and not self.store.waiting())

    def _wait(self, now: float):
        timeout = 1.0
        if (check := self.detector.next_check()) is not None:
            timeout = min(timeout, check - now)
        if self.retry_at > now:
            timeout = min(timeout, self.retry_at - now)
        waiting_for = [self._wake_r]
        if self.in_flight and self.client.connected:
            waiting_for.append(self.client)
        if self.detector.hashing_elsewhere:
            waiting_for.append(self.detector.helper)
        select.select(waiting_for, [], [], max(0.0, timeout))
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    # --- the network side -------------------------------------------------------------------

    def _network(self) -> bool:
        """Read the answers that have arrived, send more registrations, or upload a file;
        True when something was done."""
        if self.outcome.gave_up or time.monotonic() < self.retry_at:
            return False
        answered, closed = [], False
        if self.in_flight:
            try:
                answers = self.client.receive(0)
            except RequestError as exc:
                return self._connection_failed(exc)
            answered = [(self.in_flight.popleft(), answer) for answer in answers]
            # Closed by the server after its last answer: the rest must be sent again, once
            # these answers are recorded.
            closed = bool(self.in_flight) and not self.client.connected
        # More requests first, so that the orchestrator works on them while the answers to
        # the previous ones are recorded (the cursor keeps those from being sent again).
        sent = False if closed else self._send_registrations()
        if answered:
            self._answered(answered)
        if closed:
            self._resend_later()
        if answered:
            return True
        if sent or self.in_flight or sent is None:
            return bool(sent)
        if not self.detector.busy or time.monotonic() - self.last_upload > UPLOAD_FAIRNESS:
            return self._upload_one()
        return False

    def _send_registrations(self) -> bool | None:
        """Send pending registrations once half the window is free (few, large writes); None
        when the connection failed."""
        if len(self.in_flight) > self.window // 2:
            return False
        room = self.window - len(self.in_flight)
        if (limit := self.client.per_connection) is not None:
            sent = self.client.sent if self.client.connected else 0
            if sent >= limit and not self.in_flight:
                self.client.per_connection = None  # it did not close: no limit
            elif sent >= limit:
                return False  # the server closes this connection after the answers due
            else:
                room = min(room, limit - sent)
        items = self.store.pending(room, after=self.cursor)
        if not items:
            return False
        try:
            self.client.send([self._registration(item) for item in items])
        except RequestError as exc:
            self._connection_failed(exc)
            return None
        self.in_flight.extend(items)
        self.cursor = items[-1].id
        return True

    def _resend_later(self):
        self.in_flight.clear()
        self.cursor = 0

    def _connection_failed(self, exc: RequestError) -> bool:
        reused = self.client.answered > 0
        self._resend_later()
        if reused and not self.stale_retry:
            self.stale_retry = True  # perhaps closed while idle: once more at once
            return True
        self._trouble("transient", str(exc))
        return False

    def _answered(self, answered: list[tuple[Item, Response]]):
        """Record the answers to registrations: (item, answer) pairs, in order.

        After an error answer the connection is dropped and the requests after it are sent
        again on a new one: a server that refused a request without reading its body (some
        do) would take that body for the next request, and answer it with an error that
        belongs to no file."""
        changes, lines, trouble, reconnect = [], [], None, False
        for item, answer in answered:
            status = answer.status
            if status in (200, 201):
                body = answer.json()
                server_id = body.get("id")
                if not isinstance(server_id, int) or isinstance(server_id, bool):
                    trouble = ("config", f"{status} without a file id: {answer.detail}")
                    break
                upload = body.get("upload_needed", True) is not False and not self.s.metadata_only
                changes.append((item.id, "registered" if upload else "done", server_id, ""))
                # A file to upload gets its one line when the upload is done; a registration
                # the orchestrator already had (resent after a crash) is worth its own line.
                if not upload or body.get("created", True) is False:
                    lines.append(
                        f"registered {item.path} {human_size(item.size)} "
                        f"sha256={item.sha256[:12]}… id={server_id}"
                        f"{'' if body.get('created', True) else ' (already known)'}"
                    )
            elif (kind := _kind(status)) != "item":
                trouble = (kind, f"{status} {answer.detail}")
                break
            else:
                changes.append((item.id, "failed", None, f"{status} {answer.detail}"))
                self.outcome.failed += 1
                log.error("failed %s: %s %s", item.path, status, answer.detail)
                reconnect = True
                break
        if changes:
            self.store.update(changes)
        if not self.in_flight:
            self.cursor = 0  # all answered and recorded: look from the start again next time
        if lines:  # one record, one line per file: a record per file costs more than the rest
            log.info("\n".join(lines))
        if trouble or reconnect:
            self.client.close()  # the answers still to come are not wanted
            self._resend_later()
        if trouble:
            self._trouble(*trouble)
        else:
            self._ok()

    def _registration(self, item: Item) -> bytes:
        """The register request for a version: {"site", "path" (relative, with /), "size",
        "sha256", "mtime" (ISO-8601 UTC), "metadata": {"filename", "extension", "hostname"}}."""
        name = item.path.rpartition("/")[2]
        dot = name.rfind(".")
        body = (
            self._register_body
            % (
                json_string(item.path),
                item.size,
                item.sha256,
                iso_utc(item.mtime_ns),
                json_string(name),
                json_string(name[dot:].lower() if dot > 0 else ""),
            )
        ).encode("ascii")
        return b"%s%d\r\n\r\n%s" % (self._register_head, len(body), body)

    def _collect_in_flight(self):
        """Stopping: record the answers to registrations already sent, for a moment."""
        deadline = time.monotonic() + STOP_GRACE
        while self.in_flight and self.client.connected and time.monotonic() < deadline:
            try:
                answers = self.client.receive(0.1)
            except (RequestError, Stopping):
                return
            if answers:
                self._answered([(self.in_flight.popleft(), answer) for answer in answers])

    # --- uploads ---------------------------------------------------------------------------

    def _upload_one(self) -> bool:
        item = self.store.next_upload()
        if item is None:
            return False
        self.last_upload = time.monotonic()
        path = os.path.join(self.s.root, item.path)
        started = time.monotonic()
        try:
            answer = self.client.upload(
                f"{FILES}{item.server_id}/upload/",
                path,
                item.size,
                item.mtime_ns,
                item.sha256,
                self.stop.is_set,
            )
        except BodyChanged as exc:
            self._changed(item, str(exc))
            return True
        except RequestError as exc:
            self._trouble("transient", str(exc))
            return False
        status = answer.status
        if status == 200:
            self.store.update([(item.id, "done", None, "")])
            seconds = time.monotonic() - started
            log.info(
                "uploaded %s %s sha256=%s… id=%s in %.1f s (%s/s)",
                item.path,
                human_size(item.size),
                item.sha256[:12],
                item.server_id,
                seconds,
                human_size(item.size / max(seconds, 1e-6)),
            )
            self._ok()
            return True
        if status == 400:
            return self._rejected_upload(item, answer.detail)
        kind = _kind(status)
        if kind == "item" or status == 404:  # 404: the orchestrator does not know this id
            self._fail(item, f"upload {status} {answer.detail}")
            self._ok()
            return True
        self._trouble(kind, f"{status} {answer.detail}")
        return False

    def _rejected_upload(self, item: Item, detail: str) -> bool:
        """The orchestrator says the bytes do not match the registration: hash the file again.
        A new hash is a new version to register; the same one means the bytes were damaged on
        the way, so it is tried again, a few times."""
        try:
            digest = self.detector.hasher.hash(
                os.path.join(self.s.root, item.path), item.size, item.mtime_ns
            )
        except (FileChanged, OSError) as exc:
            self._changed(item, str(exc))
            return True
        if digest != item.sha256:
            self._changed(item, "its content changed")
            return True
        attempts = self.store.count_attempt(item.id)
        if attempts >= UPLOAD_ATTEMPTS:
            self._fail(item, f"upload 400 {detail} ({attempts} attempts)")
            return True
        log.warning("upload of %s refused (%s); trying again", item.path, detail)
        self._trouble("transient", f"upload refused: {detail}", quiet=True)
        return False

    def _changed(self, item: Item, why: str):
        path = os.path.join(self.s.root, item.path)
        if not os.path.lexists(path):
            self._fail(item, "the file went away before it was uploaded")
            return
        self.store.update([(item.id, "superseded", None, why)])
        self.detector.forget(item.path, item.size, item.mtime_ns)
        log.info("changed %s (%s): its new version will be reported", item.path, why)
        self.inbox.put((False, path))

    def _fail(self, item: Item, error: str):
        self.store.update([(item.id, "failed", None, error)])
        self.outcome.failed += 1
        log.error("failed %s: %s", item.path, error)

    # --- backoff ---------------------------------------------------------------------------

    def _ok(self):
        if self.failures:
            log.info("orchestrator answering again")
        self.failures = 0
        self.stale_retry = False
        self.retry_at = 0.0

    def _trouble(self, kind: str, detail: str, quiet=False):
        """Rest the network side for a while (--once: give up after a few tries)."""
        self.failures += 1
        waiting = self.store.waiting()
        if kind == "transient":
            delay = min(self.s.max_backoff, 0.5 * 2 ** min(self.failures - 1, 20))
            what = f"orchestrator unavailable ({detail})"
        else:
            cap = max(self.s.max_backoff, 60.0)
            delay = min(cap, AUTH_BACKOFF * 2 ** min(self.failures - 1, 20))
            if kind == "auth":
                what = (
                    f"orchestrator rejected the API key for site {self.s.site} ({detail});"
                    " check --api-key / DAEMON_API_KEY"
                )
            else:
                what = f"orchestrator URL {self.s.url} does not look like the API ({detail})"
        import random  # only when needed: it adds to the start-up time

        delay *= 1 + random.random() / 10  # noqa: S311 (jitter, not security)
        self.retry_at = time.monotonic() + delay
        if self.s.once and (kind != "transient" or self.failures >= ONCE_TRANSIENT_FAILURES):
            self.outcome.gave_up = what
            log.error("%s; %d file(s) left in the queue for the next run", what, waiting)
        elif not quiet:
            log.log(
                logging.ERROR if kind != "transient" else logging.WARNING,
                "%s; %d file(s) waiting; retrying in %s",
                what,
                waiting,
                f"{delay:.1f} s" if delay < 10 else f"{delay:.0f} s",
            )


def _kind(status: int) -> str:
    """How a non-2xx answer is handled: transient, auth, config or item (this file only)."""
    if status >= 500 or status in (408, 429):
        return "transient"
    if status in (401, 403):
        return "auth"
    if status in (404, 405) or status < 400:
        return "config"  # for the collection URL: nothing to do with the file
    return "item"


class Heartbeat:
    """Its own thread and connection: a POST every --heartbeat seconds, and one at start."""

    def __init__(self, settings: Settings, *, stop: threading.Event):
        self.s = settings
        self.stop = stop
        self.client = Client(settings.url, settings.api_key, timeout=min(settings.timeout, 30))
        self._last = None

    def run(self):
        store = Store(self.s.store_path)
        try:
            while True:
                self.beat(store)
                if self.stop.wait(self.s.heartbeat):
                    return
        except Stopping:
            pass
        finally:
            self.client.close()
            store.close()

    def beat(self, store: Store):
        payload = {
            "version": __version__,
            "hostname": self.s.hostname,
            "watch": self.s.root,
            "queued": store.waiting(),
        }
        try:
            answer = self.client.post_json(f"/api/colour/sites/{self.s.site}/heartbeat/", payload)
            outcome = "ok" if answer.status == 200 else f"{answer.status} {answer.detail}"
        except RequestError as exc:
            outcome = str(exc)
        if outcome != self._last:  # log changes only, not every beat
            if outcome == "ok":
                log.info("heartbeat ok (%d file(s) waiting)", payload["queued"])
            else:
                log.warning("heartbeat failed: %s", outcome)
            self._last = outcome


_ISO_SECONDS: dict[int, str] = {}  # whole seconds -> "YYYY-MM-DDTHH:MM:SS" (strftime is slow)


def iso_utc(mtime_ns: int) -> str:
    seconds, nanoseconds = divmod(mtime_ns, 1_000_000_000)
    stamp = _ISO_SECONDS.get(seconds)
    if stamp is None:
        if len(_ISO_SECONDS) >= 4096:
            _ISO_SECONDS.clear()
        stamp = _ISO_SECONDS[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{nanoseconds // 1000:06d}Z"


def human_size(size: float) -> str:
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("kB", "MB", "GB"):  # called for every file logged: no more work than needed
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"
