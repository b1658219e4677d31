"""Delivering finished media to the MAM: a drop folder (media plus JSON sidecar) or a signed
webhook.

Plain Python on paths, dicts and settings values passed in (no ORM); the caller records each
attempt and does the retrying, using WebhookError.transient to decide.

Webhook signature, for whoever writes the receiving end: the request carries
`X-Pipeline-Timestamp: <unix seconds>` and `X-Pipeline-Signature: sha256=<hex>`, where hex is
HMAC-SHA256(secret, timestamp + "." + raw body). verify_signature() checks both.
"""

import contextlib
import datetime as dt
import decimal
import errno
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pipeline_project.fileops.copy import (
    copy_verified,
    fsync_dir,
    part_prefix,
    rename_noreplace,
)
from pipeline_project.fileops.paths import safe_name

SIDECAR_SUFFIX = ".json"
USER_AGENT = "StudioPipeline/1"
TRANSIENT_STATUSES = frozenset({408, 429})
_MAX_RESPONSE_BYTES = 64 << 10
_MAX_COPIES = 10_000
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def deliver_to_folder(src: Path, folder: Path, *, metadata: dict, sha256: str) -> Path:
    """Copy `src` into the drop folder `folder`, then write its sidecar; returns the media path.

    The copy is verified against `sha256` (fileops ChecksumMismatch otherwise, and nothing is
    left behind) and never replaces a file: when the name (or its sidecar's) is taken, the
    media becomes `name (1).ext`, `name (2).ext`, ... The sidecar `<media name>.json` holds
    `metadata` plus `filename`, `sha256`, `size` and `delivered_at` (these four win over keys
    of the same name in `metadata`). It is written to a temporary name, fsynced and renamed
    only once the media is in place, so a MAM that watches for sidecars never sees one before
    its media. If the sidecar cannot be written the media is removed again.
    """
    src, folder = Path(src), Path(folder)
    media, verified = _copy_under_free_name(src, folder, safe_name(src.name), sha256)
    try:
        sidecar = {
            **metadata,
            "filename": media.name,
            "sha256": verified,
            "size": os.stat(media).st_size,
            "delivered_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        _write_new_file(sidecar_path(media), _sidecar_json(sidecar))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(media)
        raise
    return media


def sidecar_path(media: Path) -> Path:
    return media.with_name(f"{media.name}{SIDECAR_SUFFIX}")


def _copy_under_free_name(src: Path, folder: Path, name: str, sha256: str) -> tuple[Path, str]:
    stem, extension = os.path.splitext(name)
    for number in range(_MAX_COPIES):
        candidate = folder / (name if number == 0 else f"{stem} ({number}){extension}")
        if os.path.lexists(sidecar_path(candidate)):  # an orphaned sidecar claims the name too
            continue
        try:
            return candidate, copy_verified(src, candidate, expected_sha256=sha256)
        except FileExistsError:
            continue
    raise FileExistsError(
        errno.EEXIST, f"{_MAX_COPIES} files named like {name!r} already exist", str(folder)
    )


def _sidecar_json(data: dict) -> bytes:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)
    return f"{text}\n".encode()


def _write_new_file(path: Path, content: bytes):
    """Create `path` with `content` atomically (temporary name, fsync, rename without
    replacing), so it is either absent or complete."""
    temp = path.with_name(f"{part_prefix(path)}{secrets.token_hex(6)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        rename_noreplace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


def _json_default(value):
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Path | uuid.UUID | decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- webhook ----------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """Hex HMAC-SHA256 of `timestamp + "." + body` with `secret`."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, body: bytes, timestamp: str, signature: str, *, max_age=300, now=None
) -> bool:
    """True when `signature` (hex, with or without "sha256=") signs `body` at `timestamp` and
    the timestamp is within `max_age` seconds of `now` (either side), so a captured request
    cannot be replayed later. Constant-time comparison."""
    if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > max_age:
        return False
    given = str(signature).removeprefix("sha256=").strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(sign(secret, body, timestamp).encode(), given)


@dataclass(frozen=True)
class WebhookResult:
    status: int
    body: str


class WebhookError(Exception):
    """The webhook was not accepted. `transient`: worth retrying (connection failure, timeout,
    5xx, 408, 429); otherwise the receiver refused it and the same request will fail again."""

    def __init__(self, message, status=None, body="", transient=False):
        super().__init__(message)
        self.status, self.body, self.transient = status, body, transient

    def __reduce__(self):
        return type(self), (str(self), self.status, self.body, self.transient)


def post_webhook(url: str, secret: str, payload: dict, *, timeout=30) -> WebhookResult:
    """POST `payload` as compact JSON with sorted keys, signed (see the module docstring).

    Returns the status and body of a 2xx answer; raises WebhookError otherwise (redirects are
    not followed: a 3xx is a permanent error). `timeout` applies to connecting and to each
    read. Only http and https URLs are accepted (ValueError); https certificates are verified.
    """
    parts = _checked_url(url)
    where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"  # no secrets
    body = json.dumps(
        payload, separators=(",", ":"), sort_keys=True, default=_json_default
    ).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Pipeline-Timestamp": timestamp,
        "X-Pipeline-Signature": f"sha256={sign(secret, body, timestamp)}",
    }
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = _connection(parts, timeout)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read(_MAX_RESPONSE_BYTES).decode("utf-8", "replace")
    except ssl.SSLCertVerificationError as exc:
        raise WebhookError(f"POST {where}: certificate not trusted: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        detail = str(exc) or type(exc).__name__
        raise WebhookError(f"POST {where} failed: {detail}", transient=True) from exc
    finally:
        connection.close()
    if 200 <= response.status < 300:
        return WebhookResult(response.status, text)
    transient = response.status >= 500 or response.status in TRANSIENT_STATUSES
    raise WebhookError(
        f"POST {where} answered {response.status} {response.reason}"
        + (f": {text.strip()[:500]}" if text.strip() else ""),
        status=response.status,
        body=text,
        transient=transient,
    )


def _checked_url(url: str):
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL must be http:// or https:// with a host, not {url!r}")
    parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    return parts


def _connection(parts, timeout) -> http.client.HTTPConnection:
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
