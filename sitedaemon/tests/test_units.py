"""The daemon's parts in-process: filters, the queue, the HTTP answer parser, settling."""

import hashlib
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from sitedaemon.client import Client, RequestError
from sitedaemon.detector import Detector
from sitedaemon.filters import ignored_name, ignored_path
from sitedaemon.helper import HashHelper
from sitedaemon.store import Store

from .process import gone


@pytest.mark.parametrize(
    "name",
    [".hidden", "a.part", "A.PART", "b~", "c.tmp", "d.crdownload", "~$e.docx", "#f#", "g.partial"],
)
def test_temporary_and_hidden_names_are_ignored(name):
    assert ignored_name(name)


@pytest.mark.parametrize("name", ["clip.mov", "A001_C002.R3D", "part.mov", "tmp.exr", "x~y.mov"])
def test_media_names_are_not(name):
    assert not ignored_name(name)


def test_files_in_hidden_folders_are_ignored():
    assert ignored_path(".cache/clip.mov")
    assert ignored_path("A001/.git/x.mov")
    assert not ignored_path("A001/B/clip.mov")


def test_the_queue_never_holds_a_version_twice(tmp_path):
    store = Store(tmp_path / "q.sqlite3")
    store.add([("a.mov", 1, 10, "aa"), ("b.mov", 2, 20, "bb")])
    store.add([("a.mov", 1, 11, "aa")])  # touched, same content: the same version
    assert store.counts() == {"pending": 2}
    assert store.known("a.mov", 1, 11) and not store.known("a.mov", 1, 10)
    first = store.pending(10)[0]
    store.update([(first.id, "done", 17, "")])
    store.add([("a.mov", 1, 12, "aa")])
    assert store.counts() == {"done": 1, "pending": 1}  # done stays done: not re-sent
    assert [i.path for i in store.pending(10, after=first.id)] == ["b.mov"]
    store.close()


def test_a_new_version_supersedes_one_not_delivered(tmp_path):
    store = Store(tmp_path / "q.sqlite3")
    store.add([("a.mov", 1, 10, "old")])
    store.add([("a.mov", 2, 20, "new")])
    assert [(i.sha256, i.state) for i in store.pending(10)] == [("new", "pending")]
    assert store.counts() == {"pending": 1, "superseded": 1}
    # The old content coming back makes the old version current again, and the other one old.
    store.add([("a.mov", 1, 30, "old")])
    assert [i.sha256 for i in store.pending(10)] == ["old"]
    assert store.counts() == {"pending": 1, "superseded": 1}
    store.close()


def test_the_queue_survives_reopening(tmp_path):
    store = Store(tmp_path / "q.sqlite3")
    store.add([("a.mov", 1, 10, "aa")])
    store.close()
    again = Store(tmp_path / "q.sqlite3")
    assert again.waiting() == 1
    assert again.known_versions(10) == {("a.mov", 1, 10)}
    assert again.known_versions(0) is None
    again.close()


def parse(raw: bytes):
    client = Client("http://127.0.0.1:1", "key")
    client._buffer = bytearray(raw)
    return [(a.status, a.body, a.keep_alive) for a in client._parse()], bytes(client._buffer)


def test_pipelined_answers_are_split_in_order():
    answers, rest = parse(
        b'HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n{"id": 1}'
        b'HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{"id": 2}'
        b"HTTP/1.1 200 OK\r\nContent-Len"
    )
    assert answers == [(201, b'{"id": 1}', True), (200, b'{"id": 2}', True)]
    assert rest == b"HTTP/1.1 200 OK\r\nContent-Len"  # incomplete: kept for later


def test_chunked_continue_and_close_are_understood():
    answers, rest = parse(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbad \r\n"
        b"7\r\ngateway\r\n0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
        b"HTTP/1.1 200 OK\r\n"
    )
    assert answers == [(502, b"bad gateway", True), (200, b"{}", False)]
    assert rest == b"HTTP/1.1 200 OK\r\n"  # after "close" nothing more is read


def test_garbage_is_not_taken_for_an_answer():
    with pytest.raises(RequestError):
        parse(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


def test_the_api_key_must_be_printable():
    with pytest.raises(ValueError, match="printable"):
        Client("http://x", "key\r\nX-Evil: 1")


def make_detector(tmp_path, settle, helper=None):
    root = tmp_path / "watch"
    root.mkdir(exist_ok=True)
    store = Store(tmp_path / "q.sqlite3")
    return (
        root,
        store,
        Detector(root, settle=settle, store=store, stop=threading.Event(), helper=helper),
    )


def step_until(detector, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        detector.step(64)
        time.sleep(0.01)


def test_a_file_is_hashed_only_after_it_settled(tmp_path):
    root, store, detector = make_detector(tmp_path, settle=0.3)
    (root / "a.mov").write_bytes(b"first")
    detector.scan(str(root))
    detector.step(64)
    assert "a.mov" in detector.candidates and store.waiting() == 0
    time.sleep(0.15)
    with open(root / "a.mov", "ab") as out:
        out.write(b" and more")  # changed: settling starts again
    detector.step(64)
    time.sleep(0.2)
    detector.step(64)
    assert store.waiting() == 0  # 0.35 s since it appeared, but 0.2 s since it changed
    step_until(detector, lambda: store.waiting() == 1)
    (item,) = store.pending(1)
    assert item.sha256 == hashlib.sha256(b"first and more").hexdigest()
    store.close()


def test_the_hash_helper_hashes_in_order_and_reports_changes(tmp_path):
    helper = HashHelper.start()
    try:
        root, store, detector = make_detector(tmp_path, settle=0, helper=helper)
        contents = {f"f{i}.bin": os.urandom(1000 + i) for i in range(150)}
        for name, data in contents.items():
            (root / name).write_bytes(data)
        detector.scan(str(root))
        step_until(detector, lambda: not detector.busy)
        assert {(i.path, i.sha256) for i in store.pending(500)} == {
            (name, hashlib.sha256(data).hexdigest()) for name, data in contents.items()
        }
        assert detector.helper is helper  # it did the work
    finally:
        pid = helper.pid
        helper.close()
    assert gone(pid)


def test_walking_pauses_while_many_files_settle_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr("sitedaemon.detector.WALK_AHEAD", 10)
    root, store, detector = make_detector(tmp_path, settle=0.1)
    for i in range(45):
        (root / f"{i:02d}.mov").write_bytes(b"x" * i)
    detector.scan(str(root))
    detector.step(64)
    assert len(detector.candidates) == 10 and detector.busy and not detector.can_work
    step_until(detector, lambda: store.waiting() == 45)
    assert not detector.busy
    store.close()


class PiecemealServer:
    """Answers each request the way wsgiref (Django's runserver) writes: status line, headers
    and body in separate writes, with Nagle on (no TCP_NODELAY)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        connection, _ = self.sock.accept()
        with connection:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = connection.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(buffer) < length:
                    buffer += connection.recv(65536)
                buffer = buffer[length:]
                for piece in (b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\n", b"{}"):
                    connection.sendall(piece)


def test_answers_written_in_pieces_are_not_held_up_by_delayed_acks():
    server = PiecemealServer()
    client = Client(server.url, "key")
    try:
        client.post_json("/beat/", {"n": 0})  # the connection is open and warm
        took = []
        for n in range(15):
            started = time.perf_counter()
            assert client.post_json("/beat/", {"n": n}).status == 200
            took.append(time.perf_counter() - started)
    finally:
        client.close()
        server.sock.close()
    # Without quick ACKs each answer waits ~40 ms for the client's delayed ACK.
    assert sorted(took)[len(took) // 2] < 0.02, took


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for localhost: (certificate file, key file)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_answers_are_read_while_a_long_pipeline_is_written(scheme, certificate, monkeypatch):
    """A server that answers each request before it reads the next stops reading once its
    answers fill the socket buffers: the client must read them as it writes, or both wait."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
    port, count, padding = listener.getsockname()[1], 1500, b"x" * 8192
    if scheme == "https":
        server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_side.load_cert_chain(*certificate)
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the client trusts it

    def serve():
        conn, _ = listener.accept()
        if scheme == "https":
            conn = server_side.wrap_socket(conn, server_side=True)
        with conn, conn.makefile("rb") as requests:
            for _ in range(count):
                length = 0
                while (line := requests.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = requests.read(length)
                answer = b'{"n":%s,"pad":"%s"}' % (body[5 : body.index(b",")], padding)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)
                )

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    client = Client(f"{scheme}://localhost:{port}", "key", timeout=5)
    pad = "y" * 8192
    client.send([client.json_request("/files/", {"n": n, "pad": pad}) for n in range(count)])
    answers = []
    while len(answers) < count:
        answers += client.receive(5)
    assert [a.json()["n"] for a in answers] == list(range(count))
    client.close()
    server.join(5)
    listener.close()
