"""HTTP/1.1 client for the orchestrator's daemon API: one kept-alive connection, pipelined.

Requests are written on the connection as they are ready and the answers read back in order
whenever they have arrived, without waiting for each in turn (HTTP/1.1 pipelining): the
worker hashes the next files while the orchestrator answers. http.client can neither pipeline
nor read without blocking, hence this small client. Every request the worker pipelines is
idempotent (registration is idempotent on site + path + sha256), so requests left unanswered
when a connection closes are simply sent again on a new one. Uploads stream the file from disk
with sendfile(2), in slices, never reading it into memory.
"""

import contextlib
import json
import json.scanner
import os
import re
import select
import socket
import threading
import time

from . import __version__

IDLE_REUSE = 4.0  # a connection idle longer than this is replaced before an upload
UPLOAD_SLICE = 8 << 20  # bytes sent between checks for a stop request
MAX_HEAD = 64 << 10  # of an answer's status line and headers
MAX_BODY = 1 << 20  # of a JSON answer; a larger one means the URL is not the API
RECEIVE = 256 << 10
SEND_SLICE = 256 << 10  # bytes written at once, between reads of the answers
SEND_POLL = 1.0  # seconds between checks of the send deadline
MAX_PENDING = 64 << 20  # answers read ahead while sending, not yet parsed
_TITLE = re.compile(r"<title>(.*?)</title>", re.I | re.S)
_URL = re.compile(r"(https?)://([^/:\[\]@?#]+|\[[0-9A-Fa-f:.]+\])(?::(\d+))?(/[^?#]*)?", re.I)
# In the lower-cased header fields of an answer (each line preceded by CRLF):
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)")
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked")
_CONNECTION = re.compile(rb"\r\nconnection:([^\r]*)")
_ssl_want: tuple = ()  # ssl.SSLWantReadError and SSLWantWriteError, once ssl is imported
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
# json.loads costs twice as much as its scanner on the small answers that come by the
# thousand (encoding detection, whitespace regexes): _loads tries the scanner first.
_scan = json.scanner.make_scanner(json.JSONDecoder())


class RequestError(Exception):
    """No usable answer: connection refused or lost, timeout, malformed response."""


class Disconnected(RequestError):
    """The server closed the connection before it answered."""


class Stopping(Exception):
    """The daemon is stopping: the request in progress was abandoned."""


class BodyChanged(Exception):
    """The file being uploaded changed or went away."""


class Response:
    __slots__ = ("body", "keep_alive", "status")

    def __init__(self, status: int, body: bytes, keep_alive: bool = True):
        self.status, self.body, self.keep_alive = status, body, keep_alive

    def json(self) -> dict:
        """The decoded JSON body, or {"detail": text} when it is not a JSON object."""
        try:
            value = _loads(self.body)
        except ValueError:
            text = self.body.decode("utf-8", "replace")
            if title := _TITLE.search(text):  # an HTML error page: its title says enough
                text = f"(HTML) {title.group(1)}"
            return {"detail": " ".join(text.split())[:200] or "(empty answer)"}
        return value if isinstance(value, dict) else {"detail": value}

    @property
    def detail(self) -> str:
        body = self.json()
        if "detail" in body:
            return str(body["detail"])
        return json.dumps(body)[:300]  # e.g. DRF field errors: {"path": ["..."]}


class Client:
    def __init__(self, url: str, api_key: str, *, timeout: float = 60.0):
        match = _URL.fullmatch(url)
        if not match:
            raise ValueError(f"orchestrator URL must be http(s)://host[:port][/prefix]: {url!r}")
        scheme, host, port, prefix = match.groups()
        if not api_key.isascii() or not api_key.isprintable():
            raise ValueError("the API key must be printable ASCII")
        self.url = url
        self._https = scheme.lower() == "https"
        self._host = host.strip("[]")  # IPv6 literals come in brackets
        self._port = int(port) if port else (443 if self._https else 80)
        self._prefix = (prefix or "").rstrip("/")
        self._head = (
            f"Host: {host}{':' + port if port else ''}\r\n"
            f"X-API-Key: {api_key}\r\n"
            f"User-Agent: sitedaemon/{__version__}\r\n"
            "Accept: application/json\r\n"
        ).encode("ascii")
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self.answered = 0  # answers received on the current connection
        self.sent = 0  # requests written on the current connection
        # Answers a server gives on one connection before it closes it (nginx's
        # keepalive_requests), once seen: more requests than that on a connection would only
        # have to be sent again on the next.
        self.per_connection: int | None = None
        self._used = 0.0  # monotonic time of the last answer
        self._lock = threading.Lock()  # guards _sock against abort() from another thread
        self._aborted = False

    # --- connection ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def _connect(self) -> socket.socket:
        if self._sock is None:
            if self._aborted:
                raise Stopping
            sock = socket.create_connection((self._host, self._port), timeout=self.timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._https:
                    import ssl  # only when needed: slow to import

                    global _ssl_want
                    _ssl_want = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
                    sock = ssl.create_default_context().wrap_socket(
                        sock, server_hostname=self._host
                    )
            except BaseException:
                sock.close()
                raise
            with self._lock:
                if self._aborted:
                    sock.close()
                    raise Stopping
                self._sock = sock
            self._buffer.clear()
            self.answered = self.sent = 0
            self._used = time.monotonic()
        return self._sock

    def close(self):
        with self._lock:
            sock, self._sock = self._sock, None
        self._buffer.clear()
        if sock is not None:
            sock.close()

    def abort(self):
        """From another thread: make the request in progress fail now, and any later one."""
        with self._lock:
            self._aborted = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def _failed(self, exc: BaseException):
        """Close the connection and raise what the caller handles."""
        self.close()
        if self._aborted:
            raise Stopping from None
        if isinstance(exc, RequestError):
            raise exc
        raise RequestError(_describe(exc)) from None

    # --- pipelined JSON requests -------------------------------------------------------------

    def json_head(self, path: str) -> bytes:
        """The start of a JSON POST to `path`, up to "Content-Length: "; a request is
        head + b"%d\r\n\r\n%s" % (len(body), body)."""
        return b"POST %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: " % (
            self._target(path),
            self._head,
        )

    def json_request(self, path: str, payload) -> bytes:
        """The bytes of a POST of `payload` as JSON to `path`, to pass to send()."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        return (
            b"POST %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (
                self._target(path),
                self._head,
                len(body),
                body,
            )
        )

    def send(self, requests: list[bytes]):
        """Write requests on the connection (opened if needed); the answers come from
        receive(), in the same order.

        Answers that arrive while the requests are written are read into the buffer as they
        come: a server that answers each request before it reads the next (most do) stops
        reading once its answers fill the socket buffers, so a client that only wrote would
        wait for it forever. A connection the server closed meanwhile is left for receive()
        to find, after the answers that came before the close."""
        try:
            sock = self._connect()
            data = memoryview(b"".join(requests))
            self.sent += len(requests)
            # Non-blocking while both ways are in use: a TLS read would otherwise wait for a
            # whole record of application data (after a session ticket, say), a TLS write for
            # all of its slice to go out.
            sock.setblocking(False)
            try:
                self._send_reading(sock, data)
            finally:
                if self._sock is sock:
                    sock.settimeout(self.timeout)
        except (OSError, ValueError) as exc:
            self._failed(exc)

    def _send_reading(self, sock, data: memoryview):
        sent, deadline = 0, time.monotonic() + self.timeout
        while sent < len(data):
            readable, writable, _ = select.select([sock], [sock], [], SEND_POLL)
            if readable:
                if not self._read_some(sock):
                    return  # closed by the server: receive() reads what came first
                deadline = time.monotonic() + self.timeout
            if writable:
                try:  # after a TLS "want", the same bytes again (as OpenSSL requires)
                    sent += sock.send(data[sent : sent + SEND_SLICE])
                except (BlockingIOError, InterruptedError, *_ssl_want):
                    continue
                deadline = time.monotonic() + self.timeout
            elif not readable and time.monotonic() > deadline:
                raise RequestError("timed out")

    def _read_some(self, sock) -> bool:
        """Read what has arrived into the buffer; False at the end of the stream."""
        try:
            data = sock.recv(RECEIVE)
        except (BlockingIOError, InterruptedError, *_ssl_want):
            return True  # TLS: part of a record, or no application data in it
        _quick_ack(sock)
        if not data:
            return False
        self._buffer += data
        if len(self._buffer) > MAX_PENDING:
            raise RequestError("answers pile up unread: is the URL the API?")
        return True

    def receive(self, timeout: float) -> list[Response]:
        """The answers that have arrived, waiting up to `timeout` seconds for the first one
        (0: only those already here). RequestError when the connection failed."""
        try:
            answers = self._parse()
            deadline = time.monotonic() + timeout
            while not answers:
                sock = self._sock
                if sock is None:
                    raise Disconnected("not connected")
                pending = getattr(sock, "pending", None)  # TLS: decrypted bytes held back
                if not (pending and pending()):
                    left = deadline - time.monotonic()
                    if not select.select([sock], [], [], max(left, 0))[0]:
                        if left > 0:
                            continue
                        if timeout >= self.timeout:
                            raise RequestError("timed out")
                        return []
                data = sock.recv(RECEIVE)
                _quick_ack(sock)
                if not data:
                    raise Disconnected("the orchestrator closed the connection without answering")
                self._buffer += data
                answers = self._parse()
        except (OSError, ValueError) as exc:
            self._failed(exc)
        except RequestError as exc:
            self._failed(exc)
        if answers:
            self.answered += len(answers)
            self._used = time.monotonic()
            if not answers[-1].keep_alive:
                if 200 <= answers[-1].status < 300:
                    self.per_connection = self.answered  # its limit, not a failure
                self.close()  # the server said so; what was not answered must be sent again
        return answers

    def post_json(self, path: str, payload) -> Response:
        """One request, waiting for its answer (nothing else may be in flight)."""
        for attempt in (1, 2):
            reused = self.connected
            try:
                self.send([self.json_request(path, payload)])
                return self.receive(self.timeout)[0]
            except (Disconnected, RequestError) as exc:
                # A kept-alive connection the server closed meanwhile: once more, on a new one.
                if attempt == 2 or not reused or not isinstance(exc, Disconnected):
                    raise
        raise AssertionError  # unreachable

    def _parse(self) -> list[Response]:
        """Complete answers at the front of the buffer, removed from it."""
        answers, buffer, start = [], self._buffer, 0
        while True:
            end_of_head = buffer.find(b"\r\n\r\n", start)
            if end_of_head < 0:
                if len(buffer) - start > MAX_HEAD:
                    raise RequestError("malformed answer: headers too long")
                break
            head = bytes(buffer[start:end_of_head])
            status_line, _, fields = head.partition(b"\r\n")
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise RequestError(f"not an HTTP answer: {status_line[:80]!r}")
            status = int(parts[1])
            body_start = end_of_head + 4
            if 100 <= status < 200:
                start = body_start
                continue
            fields = b"\r\n" + fields.lower()
            match = _CONNECTION.search(fields)
            connection = match.group(1) if match else b""
            if parts[0] == b"HTTP/1.0":
                keep_alive = b"keep-alive" in connection
            else:
                keep_alive = b"close" not in connection
            if _CHUNKED.search(fields):
                decoded = _dechunk(buffer, body_start)
                if decoded is None:
                    break
                body, end = decoded
            elif match := _LENGTH.search(fields):
                length = int(match.group(1))
                if length > MAX_BODY:
                    raise RequestError(f"answer of {length} bytes: is the URL the API?")
                end = body_start + length
                if len(buffer) < end:
                    break
                body = bytes(buffer[body_start:end])
            elif status in (204, 304):
                body, end = b"", body_start
            else:
                raise RequestError("answer without a length (not supported)")
            answers.append(Response(status, body, keep_alive))
            start = end
            if not keep_alive:
                break
        if start:
            del buffer[:start]
        return answers

    def _target(self, path: str) -> bytes:
        return (self._prefix + path).encode("ascii")

    # --- uploads ---------------------------------------------------------------------------

    def upload(
        self, path: str, file_path: str, size: int, mtime_ns: int, sha256: str, should_stop
    ) -> Response:
        """POST the file's bytes (exactly `size` of them) to `path` as the body, and wait for
        the answer; nothing else may be in flight.

        BodyChanged when the file no longer has `size` and `mtime_ns`, or is shorter than
        `size` by the time its end is sent.
        """
        try:
            fd = os.open(file_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise BodyChanged(f"cannot open it: {exc.strerror or exc}") from None
        with open(fd, "rb", buffering=0) as file:
            info = os.fstat(fd)
            if info.st_size != size or info.st_mtime_ns != mtime_ns:
                raise BodyChanged("it changed since it was hashed")
            if self._sock is not None and time.monotonic() - self._used > IDLE_REUSE:
                self.close()  # do not stream a large body into a connection closed meanwhile
            try:
                return self._upload(path, file, size, sha256, should_stop)
            except (Stopping, BodyChanged):
                self.close()
                raise
            except (OSError, ValueError, RequestError) as exc:
                self._failed(exc)
                raise AssertionError from None  # unreachable: _failed raises

    def _upload(self, path, file, size, sha256, should_stop) -> Response:
        sock = self._connect()
        self.sent += 1
        sock.sendall(
            b"POST %s HTTP/1.1\r\n%sContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\nX-Content-SHA256: %s\r\n\r\n"
            % (self._target(path), self._head, size, sha256.encode("ascii"))
        )
        offset = 0
        try:
            while offset < size:
                if should_stop():
                    raise Stopping
                sent = sock.sendfile(file, offset, min(UPLOAD_SLICE, size - offset))
                if sent == 0:
                    raise BodyChanged("it became shorter while it was uploaded")
                offset += sent
        except (BrokenPipeError, ConnectionResetError):
            # The server may have answered early (e.g. 401 or 413) and closed: read that.
            answers = self.receive(2.0)
            if not answers:
                raise
            self.close()
            return answers[0]
        _quick_ack(sock)
        # The server verifies (and syncs) the whole file before it answers.
        return self.receive(self.timeout + size / 20e6)[0]


def _loads(body: bytes):
    """json.loads(body), faster for the usual answer: a UTF-8 JSON value without whitespace
    around it. Anything else (whitespace, a BOM, other encodings, errors) goes to json.loads,
    so the outcome is the same."""
    try:
        text = body.decode()
        value, end = _scan(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError):
        return json.loads(body)
    if end != len(text):
        return json.loads(body)
    return value


def _quick_ack(sock):
    """Acknowledge what arrives at once instead of up to 40 ms later (Linux's delayed ACK).

    A server that writes an answer in several small pieces without TCP_NODELAY (Django's
    runserver, wsgiref: the status line, then the headers, then the body) holds each piece
    back until the previous one is acknowledged (Nagle), so with delayed ACKs every answer
    would cost 40 ms. The kernel leaves quick-ACK mode on its own, hence after every read.
    """
    if _TCP_QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


def _dechunk(buffer: bytearray, start: int):
    """(body, end) of a chunked body starting at `start`, or None when incomplete."""
    chunks, position, total = [], start, 0
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0].strip(), 16)
        position = line_end + 2
        if size == 0:
            end = buffer.find(b"\r\n\r\n", position - 2)  # after any trailers
            return (b"".join(chunks), end + 4) if end >= 0 else None
        total += size
        if total > MAX_BODY:
            raise RequestError("answer too large: is the URL the API?")
        if len(buffer) < position + size + 2:
            return None
        chunks.append(bytes(buffer[position : position + size]))
        position += size + 2


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
