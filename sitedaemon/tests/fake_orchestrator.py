"""A stand-in for the orchestrator's daemon API, on http.server, for tests and the benchmark.

It implements the contract the daemon codes to (register, upload, heartbeat, X-API-Key per
site), records every call, and can be told to fail: answer every request with a status, refuse
given paths, answer 400 to uploads, go slowly, or be stopped and started again on the same
port. HTTP/1.1 with keep-alive and pipelining, like a real server; requests are parsed by a
lean header reader rather than the email package so that the fake does not dominate the
benchmark's time.
"""

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FILES = re.compile(r"^/api/colour/files/$")
UPLOAD = re.compile(r"^/api/colour/files/(\d+)/upload/$")
HEARTBEAT = re.compile(r"^/api/colour/sites/([a-z0-9_-]+)/heartbeat/$")
KEEP_BYTES = 64 << 20  # uploads up to this size are kept for the tests to compare
REASONS = {200: b"OK", 201: b"Created", 400: b"Bad Request", 401: b"Unauthorized"}


class FakeOrchestrator:
    def __init__(self, keys=None, port=0, host="127.0.0.1"):
        self.keys = dict(keys or {"tustin-key": "tustin", "dallas-key": "dallas"})
        self.host, self.port = host, port
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.calls = []  # (kind, status) of every request, in order
        self.registrations = []  # every register request: body, status, id, created
        self.files = {}  # (site, path, sha256) -> record
        self.by_id = {}
        self.uploads = []  # every upload request: id, status, length, sha256 of the bytes
        self.heartbeats = []  # bodies
        self.uploads_started = 0  # upload bodies begun (finished or not)
        # Failure knobs (tests set them at any time)
        self.fail_status = None  # answer every request with this status
        self.reject_paths = {}  # path -> (status, detail), for registrations
        self.bad_uploads = 0  # answer 400 to this many uploads (as if the bytes were damaged)
        self.register_delay = 0.0  # seconds per registration
        # Refuse the n-th registration from now (1: the next) with 422 *without reading its
        # body*, as some servers do: the body is then taken for the next request.
        self.refuse_unread_in = 0
        # Close each connection after this many answers (nginx's keepalive_requests does).
        self.close_every = 0
        self.unanswered_at_close = []  # per connection closed so: requests it left unread
        self.upload_chunk_delay = 0.0  # seconds per 64 KiB of upload read
        self._server = None
        self._thread = None
        self._connections = set()

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self):
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop listening and cut every open (kept-alive) connection: as if it went down."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self.lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        self._thread.join(5)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- what tests look at --------------------------------------------------------------------

    def wait_for(self, predicate, timeout=20.0, what="condition"):
        """Wait until `predicate(self)` is true (checked under the lock on every change)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self.changed.wait(min(left, 0.1))

    def created(self):
        """(path, sha256) of every registration that created a file, in order."""
        return [
            (r["body"]["path"], r["body"]["sha256"]) for r in self.registrations if r["created"]
        ]

    def stored(self):
        """path -> bytes of the files uploaded and verified."""
        return {r["path"]: r["bytes"] for r in self.files.values() if r["uploaded"]}

    def count(self, kind, status=None):
        return sum(1 for k, s in self.calls if k == kind and (status is None or s == status))

    def registered_paths(self):
        """path -> number of register requests for it."""
        counts = {}
        for r in self.registrations:
            counts[r["body"]["path"]] = counts.get(r["body"]["path"], 0) + 1
        return counts

    # --- handling ------------------------------------------------------------------------------

    def _record(self, kind, status):
        self.calls.append((kind, status))
        self.changed.notify_all()

    def _site_for(self, key):
        return self.keys.get(key or "")

    def handle(self, handler) -> tuple[int, dict]:
        path = handler.path
        body = handler.read_body()
        key_site = self._site_for(handler.headers.get("x-api-key"))
        if (match := FILES.match(path)) and handler.command == "POST":
            kind = "register"
        elif (match := UPLOAD.match(path)) and handler.command == "POST":
            kind = "upload"
        elif (match := HEARTBEAT.match(path)) and handler.command == "POST":
            kind = "heartbeat"
        else:
            return self._done("other", 404, {"detail": "Not found."})
        if self.fail_status:
            return self._done(kind, self.fail_status, {"detail": "The orchestrator is unwell."})
        if key_site is None:
            return self._done(kind, 401, {"detail": "Invalid API key."})
        if kind == "register":
            return self._register(key_site, body)
        if kind == "upload":
            if handler.upload_cut:
                return self._done("upload", "cut", {})
            return self._upload(key_site, int(match.group(1)), handler)
        return self._heartbeat(key_site, match.group(1), body)

    def refuse_unread(self, handler) -> bool:
        if not (FILES.match(handler.path) and self.refuse_unread_in):
            return False
        with self.lock:
            self.refuse_unread_in -= 1
            if self.refuse_unread_in:
                return False
            self._record("register", 422)
        return True

    def _done(self, kind, status, payload):
        with self.lock:
            self._record(kind, status)
        return status, payload

    def _register(self, key_site, raw):
        try:
            body = json.loads(raw)
            problems = _registration_problems(body)
        except ValueError as exc:
            body, problems = {}, [str(exc)]
        if problems:
            return self._done("register", 400, {"detail": "; ".join(problems)})
        if body["site"] != key_site:
            detail = f"This key belongs to site {key_site}, not {body['site']}."
            return self._done("register", 403, {"detail": detail})
        if self.register_delay:
            time.sleep(self.register_delay)
        with self.lock:
            rejected = self.reject_paths.get(body["path"])
            if rejected:
                status, payload = rejected[0], {"detail": rejected[1]}
                self.registrations.append(
                    {"body": body, "status": status, "id": None, "created": False, "at": now()}
                )
                self._record("register", status)
                return status, payload
            identity = (body["site"], body["path"], body["sha256"])
            record = self.files.get(identity)
            created = record is None
            if created:
                record = {
                    "id": len(self.by_id) + 1,
                    "site": body["site"],
                    "path": body["path"],
                    "size": body["size"],
                    "sha256": body["sha256"],
                    "uploaded": False,
                    "bytes": None,
                }
                self.files[identity] = record
                self.by_id[record["id"]] = record
            status = 201 if created else 200
            self.registrations.append(
                {
                    "body": body,
                    "status": status,
                    "id": record["id"],
                    "created": created,
                    "at": now(),
                }
            )
            self._record("register", status)
            return status, {
                "id": record["id"],
                "state": "detected",
                "created": created,
                "upload_needed": not record["uploaded"],
            }

    def _upload(self, key_site, file_id, handler):
        data, digest = handler.upload_bytes, handler.upload_sha256
        with self.lock:
            record = self.by_id.get(file_id)
            entry = {"id": file_id, "length": handler.upload_length, "sha256": digest}
            if record is None:
                status, payload = 404, {"detail": "No such file."}
            elif record["site"] != key_site:
                status, payload = 403, {"detail": f"File {file_id} was reported by another site."}
            elif handler.headers.get("x-content-sha256", "").lower() != record["sha256"]:
                status = 400
                payload = {"detail": "X-Content-SHA256 does not match the registered hash."}
            elif digest != record["sha256"] or handler.upload_length != record["size"]:
                status, payload = 400, {"detail": "The bytes do not match the registered hash."}
            elif self.bad_uploads:
                self.bad_uploads -= 1
                status, payload = 400, {"detail": "The bytes do not match the registered hash."}
            else:
                record["uploaded"], record["bytes"] = True, data
                status, payload = 200, {"id": file_id, "stored": True, "sha256": digest}
            entry["status"] = status
            self.uploads.append(entry)
            self._record("upload", status)
            return status, payload

    def _heartbeat(self, key_site, site, raw):
        if site != key_site:
            detail = f"This key belongs to site {key_site}, not {site}."
            return self._done("heartbeat", 403, {"detail": detail})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._done("heartbeat", 400, {"detail": "Not JSON."})
        with self.lock:
            self.heartbeats.append(body)
            self._record("heartbeat", 200)
        return 200, {"site": site, "status": "online"}


def now() -> float:
    return time.monotonic()


def _registration_problems(body) -> list[str]:
    problems = []
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    for name, kind in (("site", str), ("path", str), ("size", int), ("sha256", str)):
        if not isinstance(body.get(name), kind):
            problems.append(f"{name}: required")
    if isinstance(body.get("sha256"), str) and not re.fullmatch(r"[0-9a-f]{64}", body["sha256"]):
        problems.append("sha256: 64 hex digits")
    path = body.get("path")
    if isinstance(path, str) and (
        path.startswith("/") or "\\" in path or ".." in path.split("/") or not path
    ):
        problems.append("path: must be relative, with forward slashes")
    try:
        stamp = datetime.fromisoformat(body.get("mtime", ""))
        if stamp.utcoffset() is None or stamp.utcoffset().total_seconds() != 0:
            problems.append("mtime: must be UTC")
    except (TypeError, ValueError):
        problems.append("mtime: ISO-8601 required")
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not {"filename", "extension", "hostname"} <= set(metadata):
        problems.append("metadata: filename, extension and hostname required")
    return problems


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


class _Headers(dict):
    def get(self, name, default=None):
        return super().get(name.lower(), default)


class _Writer:
    """Collects the answers and sends them when the handler is about to wait for the next
    request (or leaves): the answers to pipelined requests go out together, as a real server
    would send them, instead of one system call each."""

    closed = False

    def __init__(self, sock):
        self.sock, self.parts = sock, []

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

    def flush(self):
        pass  # BaseHTTPRequestHandler flushes after every request: deferred to send()

    def send(self):
        if self.parts:
            data = b"".join(self.parts)
            self.parts.clear()
            self.sock.sendall(data)

    def close(self):
        self.closed = True


class _Reader:
    """Buffered reads from the socket; sends the pending answers before it waits for more."""

    def __init__(self, sock, writer):
        self.sock, self.writer = sock, writer
        self.buffer, self.pos = bytearray(), 0

    def _fill(self) -> bool:
        self.writer.send()
        chunk = self.sock.recv(1 << 18)
        if not chunk:
            return False
        if self.pos:
            del self.buffer[: self.pos]
            self.pos = 0
        self.buffer += chunk
        return True

    def readline(self, limit=-1):
        while True:
            end = self.buffer.find(b"\n", self.pos)
            available = len(self.buffer) - self.pos
            if end >= 0 and (limit < 0 or end - self.pos < limit):
                return self._take(end + 1 - self.pos)
            if 0 <= limit <= available or not self._fill():
                return self._take(available if limit < 0 else min(limit, available))

    def read(self, size):
        while len(self.buffer) - self.pos < size and self._fill():
            pass
        return self._take(min(size, len(self.buffer) - self.pos))

    def read_head(self):
        """The next request's line and headers (without the blank line), b"" at the end."""
        while True:
            end = self.buffer.find(b"\r\n\r\n", self.pos)
            if end >= 0:
                head = self._take(end - self.pos)
                self.pos += 4
                return head
            if len(self.buffer) - self.pos > 65536 or not self._fill():
                return b""

    def _take(self, count):
        data = bytes(self.buffer[self.pos : self.pos + count])
        self.pos += count
        return data

    def close(self):
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        self.connection = self.request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.wfile = _Writer(self.connection)
        self.rfile = _Reader(self.connection, self.wfile)
        with self.server.fake.lock:
            self.server.fake._connections.add(self.connection)

    def finish(self):
        with self.server.fake.lock:
            self.server.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            self.wfile.send()

    def log_message(self, *args):
        pass

    def handle(self):
        """Requests one after the other on the connection (kept alive, pipelined or not)."""
        self.close_connection = False
        answered = 0
        while not self.close_connection:
            head = self.rfile.read_head()
            if not head:
                return
            lines = head.decode("iso-8859-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
                self.close_connection = True
                self._answer(400, {"detail": "Bad request line."})
                return
            self.command, self.path, self.request_version = parts
            headers = _Headers()
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.headers = headers
            connection = headers.get("connection", "").lower()
            self.close_connection = connection == "close" or (
                self.request_version == "HTTP/1.0" and connection != "keep-alive"
            )
            self.upload_length, self.upload_cut = None, False
            if self.server.fake.refuse_unread(self):
                self._answer(422, {"detail": "Refused unread."})
                continue
            status, payload = self.server.fake.handle(self)
            if self.upload_cut:
                return  # the upload's body was cut short: nobody left to answer
            answered += 1
            if answered == self.server.fake.close_every:
                self.close_connection = True
            self._answer(status, payload)
            if answered == self.server.fake.close_every:
                self._count_unread()

    def _count_unread(self):
        """Closing after close_every answers: note how many requests came in vain."""
        with contextlib.suppress(OSError):
            self.wfile.send()
        time.sleep(0.05)  # what the client wrote with the last request has arrived by now
        unread = bytes(self.rfile.buffer[self.rfile.pos :])
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := self.connection.recv(1 << 20, socket.MSG_DONTWAIT):
                unread += chunk
        with self.server.fake.lock:
            self.server.fake.unanswered_at_close.append(unread.count(b"POST "))

    def read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        if UPLOAD.match(self.path):
            self._read_upload(length)
            return b""
        return self.rfile.read(length)

    def _read_upload(self, length):
        fake = self.server.fake
        with fake.lock:
            fake.uploads_started += 1
            fake.changed.notify_all()
        digest, kept, done = hashlib.sha256(), [], 0
        while done < length:
            chunk = self.rfile.read(min(65536, length - done))
            if not chunk:
                break
            digest.update(chunk)
            if length <= KEEP_BYTES:
                kept.append(chunk)
            done += len(chunk)
            if fake.upload_chunk_delay:
                time.sleep(fake.upload_chunk_delay)
        if done < length:  # the client went away mid-body
            self.close_connection = True
            self.upload_cut = True  # read_body set it False
        self.upload_length = done
        self.upload_sha256 = digest.hexdigest()
        self.upload_bytes = b"".join(kept) if length <= KEEP_BYTES else None

    def _answer(self, status, payload):
        body = json.dumps(payload).encode()
        self.wfile.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (
                status,
                REASONS.get(status, b"Status"),
                len(body),
                b"Connection: close\r\n" if self.close_connection else b"",
                body,
            )
        )
