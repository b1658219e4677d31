"""Talking to clamd (ClamAV's daemon) through pyclamd."""

import os
import socket
from dataclasses import dataclass

import pyclamd


@dataclass(frozen=True)
class ClamdAddress:
    """Where clamd listens: a local socket path, or host and port."""

    socket: str = ""
    host: str = ""
    port: int = 3310
    timeout: float = 30

    @classmethod
    def from_env(cls, environ=None) -> "ClamdAddress":
        """From CLAMD_SOCKET, CLAMD_HOST, CLAMD_PORT and CLAMD_TIMEOUT, as the site reads them:
        for callers without Django settings (the site daemon's host, a script)."""
        env = os.environ if environ is None else environ
        return cls(
            socket=env.get("CLAMD_SOCKET", ""),
            host=env.get("CLAMD_HOST", ""),
            port=int(env.get("CLAMD_PORT") or 3310),
            timeout=float(env.get("CLAMD_TIMEOUT") or 30),
        )

    def is_configured(self) -> bool:
        return bool(self.socket or self.host)

    def describe(self) -> str:
        return self.socket or f"{self.host}:{self.port}"

    def connect(self):
        if self.socket:
            return pyclamd.ClamdUnixSocket(filename=self.socket, timeout=self.timeout)
        return pyclamd.ClamdNetworkSocket(host=self.host, port=self.port, timeout=self.timeout)


def open_socket(address: ClamdAddress) -> socket.socket:
    """A raw stream socket connected to clamd, with the address's timeout (OSError if not)."""
    if not address.is_configured():
        raise ConnectionRefusedError("clamd is not configured (no socket path and no host)")
    if not address.socket:
        return socket.create_connection((address.host, address.port), timeout=address.timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(address.timeout)
        sock.connect(address.socket)
    except BaseException:
        sock.close()
        raise
    return sock


def ping(address: ClamdAddress) -> tuple[bool, str]:
    """(True, version) when clamd answers PING, else (False, why)."""
    try:
        client = address.connect()
        if not client.ping():
            return False, f"clamd at {address.describe()} did not answer PING"
        return True, client.version()
    except (pyclamd.ConnectionError, OSError) as exc:
        return False, f"clamd at {address.describe()} unreachable: {exc}"
