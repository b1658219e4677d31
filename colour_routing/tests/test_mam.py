"""MAM delivery against real targets: a drop folder watched with inotify, and a local HTTP
receiver in a thread that checks signatures the way a MAM would. No database needed."""

import datetime as dt
import hashlib
import hmac
import json
import os
import socket
import time
from pathlib import Path

import pytest
from watchdog.events import FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

from colour_routing import mam
from pipeline_project.fileops.copy import ChecksumMismatch

from .receiver import SECRET

METADATA = {"id": 7, "site": "tustin", "colorist": "amy", "metadata": {"reel": "A001"}}


@pytest.fixture
def graded(tmp_path) -> tuple[Path, bytes, str]:
    path = tmp_path / "nashville" / "A001_C002.mov"
    path.parent.mkdir()
    data = os.urandom(300_000)
    path.write_bytes(data)
    return path, data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def drop(tmp_path) -> Path:
    folder = tmp_path / "mam-drop"
    folder.mkdir()
    return folder


def test_drop_folder_gets_the_media_and_a_sidecar_with_metadata_and_hash(graded, drop):
    src, data, sha = graded
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)

    media = mam.deliver_to_folder(src, drop, metadata=METADATA, sha256=sha)

    assert media == drop / "A001_C002.mov"
    assert media.read_bytes() == data
    assert sorted(os.listdir(drop)) == ["A001_C002.mov", "A001_C002.mov.json"]
    sidecar = json.loads((drop / "A001_C002.mov.json").read_text())
    delivered_at = dt.datetime.fromisoformat(sidecar.pop("delivered_at"))
    assert sidecar == {
        **METADATA,
        "filename": "A001_C002.mov",
        "sha256": sha,
        "size": len(data),
    }
    assert delivered_at.utcoffset() == dt.timedelta(0)
    assert before <= delivered_at <= dt.datetime.now(dt.UTC)


class _Appearances(FileSystemEventHandler):
    """Names as they appear in the folder, in inotify's order (created, or renamed into)."""

    def __init__(self):
        self.names = []

    def on_created(self, event):
        self.names.append(Path(event.src_path).name)

    def on_moved(self, event):
        self.names.append(Path(event.dest_path).name)


def test_sidecar_appears_only_after_its_media_is_in_place(graded, drop):
    src, _, sha = graded
    seen = _Appearances()
    observer = InotifyObserver()
    observer.schedule(seen, str(drop))
    observer.start()
    try:
        mam.deliver_to_folder(src, drop, metadata=METADATA, sha256=sha)
        deadline = time.monotonic() + 5
        while "A001_C002.mov.json" not in seen.names and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        observer.stop()
        observer.join()

    final = [name for name in seen.names if not name.startswith(".")]
    assert final == ["A001_C002.mov", "A001_C002.mov.json"]


def test_a_taken_name_gets_a_numbered_one_and_nothing_is_overwritten(graded, drop):
    src, data, sha = graded
    (drop / "A001_C002.mov").write_bytes(b"delivered last week")
    (drop / "A001_C002 (2).mov.json").write_text("{}")  # a sidecar whose media is gone

    first = mam.deliver_to_folder(src, drop, metadata=METADATA, sha256=sha)
    second = mam.deliver_to_folder(src, drop, metadata=METADATA, sha256=sha)

    assert (first.name, second.name) == ("A001_C002 (1).mov", "A001_C002 (3).mov")
    assert (drop / "A001_C002.mov").read_bytes() == b"delivered last week"
    assert (drop / "A001_C002 (2).mov.json").read_text() == "{}"
    assert second.read_bytes() == data
    assert json.loads((drop / "A001_C002 (3).mov.json").read_text())["filename"] == second.name


def test_drop_folder_delivery_of_the_wrong_content_leaves_nothing(graded, drop):
    src, _, _ = graded
    wrong = hashlib.sha256(b"another grade").hexdigest()

    with pytest.raises(ChecksumMismatch):
        mam.deliver_to_folder(src, drop, metadata=METADATA, sha256=wrong)

    assert os.listdir(drop) == []


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"event":"file.delivered"}'

    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()

    assert mam.sign(SECRET, body, "1700000000") == expected


def test_verify_signature_refuses_tampering_other_secrets_and_stale_timestamps():
    body, timestamp = b'{"id":7}', "1700000000"
    signature = mam.sign(SECRET, body, timestamp)
    now = 1700000000 + 60

    assert mam.verify_signature(SECRET, body, timestamp, signature, now=now)
    assert mam.verify_signature(SECRET, body, timestamp, f"sha256={signature}", now=now)
    assert not mam.verify_signature(SECRET, b'{"id":8}', timestamp, signature, now=now)
    assert not mam.verify_signature("another-secret", body, timestamp, signature, now=now)
    assert not mam.verify_signature(SECRET, body, "1700000001", signature, now=now)
    assert not mam.verify_signature(SECRET, body, timestamp, signature, now=1700000000 + 301)
    assert not mam.verify_signature(SECRET, body, timestamp, signature, now=1700000000 - 301)
    assert not mam.verify_signature(SECRET, body, "17e8", signature, now=now)
    assert not mam.verify_signature(SECRET, body, timestamp, "sha256=zz", now=now)


def test_webhook_posts_signed_compact_json(receiver):
    receiver.answers = [(202, "queued as job 41")]
    payload = {"sha256": "ab" * 32, "event": "file.delivered", "id": 7, "site": "tustin"}

    result = mam.post_webhook(receiver.url, SECRET, payload)

    assert result == mam.WebhookResult(202, "queued as job 41")
    [request] = receiver.requests
    assert request["ok"], "the receiver could not verify the signature"
    assert request["path"] == "/hooks/mam?source=pipeline"
    assert request["body"] == json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"] == "StudioPipeline/1"
    assert abs(int(request["headers"]["X-Pipeline-Timestamp"]) - time.time()) < 5


def test_a_failing_receiver_gives_transient_errors_until_it_accepts(receiver):
    receiver.answers = [(500, "database down"), (500, "database down"), (200, "stored")]
    errors = []

    for _ in range(3):  # the caller's retry loop, without the backoff
        try:
            result = mam.post_webhook(receiver.url, SECRET, {"id": 7})
        except mam.WebhookError as exc:
            errors.append(exc)

    assert [(e.status, e.transient, e.body) for e in errors] == [(500, True, "database down")] * 2
    assert "500" in str(errors[0]) and "database down" in str(errors[0])
    assert result.status == 200
    assert [request["ok"] for request in receiver.requests] == [True, True, True]


@pytest.mark.parametrize("status", [408, 429, 502, 503])
def test_throttling_and_server_errors_are_transient(receiver, status):
    receiver.answers = [(status, "later")]

    with pytest.raises(mam.WebhookError) as failed:
        mam.post_webhook(receiver.url, SECRET, {"id": 7})

    assert (failed.value.status, failed.value.transient) == (status, True)


@pytest.mark.parametrize("status", [400, 404, 302])
def test_client_errors_and_redirects_are_permanent(receiver, status):
    receiver.answers = [(status, "unknown asset id")]

    with pytest.raises(mam.WebhookError) as failed:
        mam.post_webhook(receiver.url, SECRET, {"id": 7})

    assert (failed.value.status, failed.value.transient) == (status, False)
    assert failed.value.body == "unknown asset id"


def test_a_receiver_with_another_secret_refuses_the_signature(receiver):
    receiver.secret = "the MAM was given a different secret"

    with pytest.raises(mam.WebhookError) as failed:
        mam.post_webhook(receiver.url, SECRET, {"id": 7})

    assert (failed.value.status, failed.value.transient) == (401, False)
    assert receiver.requests[0]["ok"] is False


def test_connection_refused_is_transient():
    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(mam.WebhookError) as failed:
        mam.post_webhook(f"http://127.0.0.1:{port}/hook", SECRET, {"id": 7})

    assert (failed.value.status, failed.value.transient) == (None, True)
    assert "refused" in str(failed.value).lower()


def test_a_receiver_that_does_not_answer_in_time_is_transient(receiver):
    receiver.delay = 2

    started = time.monotonic()
    with pytest.raises(mam.WebhookError) as failed:
        mam.post_webhook(receiver.url, SECRET, {"id": 7}, timeout=0.3)

    assert failed.value.transient
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    "url", ["ftp://mam.example/hook", "file:///etc/passwd", "mam.example:8080/hook", "http:///x"]
)
def test_only_http_and_https_urls_are_accepted(url):
    with pytest.raises(ValueError, match="http"):
        mam.post_webhook(url, SECRET, {"id": 7})
