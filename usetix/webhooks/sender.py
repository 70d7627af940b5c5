"""One HTTP attempt of one message, signed as Standard Webhooks says.

Signed with the official ``standardwebhooks`` package's public API (``Webhook.sign``), the
library the consumers verify with. Sent with the standard library's ``http.client``,
connected to the address usetix/webhooks/targets.py checked (the name is not resolved
again, so it cannot be rebound in between), with the URL's host as Host and TLS server
name. It never follows a redirect (a 3xx is a failed attempt) and gives the endpoint 15 s.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from datetime import UTC, datetime
from typing import NamedTuple

from standardwebhooks.webhooks import Webhook

from ..core.webhooks import DELIVERY_TIMEOUT_SECONDS, RESPONSE_KEPT_BYTES, RefusedTarget
from .targets import Target, resolve

USER_AGENT = "Usetix-Webhooks/1 (+https://www.standardwebhooks.com/)"


class Outcome(NamedTuple):
    succeeded: bool
    status_code: int | None
    error: str | None
    latency_ms: int
    response_body: str | None


def signature(message_id: str, timestamp: datetime, body: str, secrets: list[str]) -> str:
    """The ``webhook-signature`` header: a ``v1,<base64>`` per secret, space-separated
    (after a rotation, the new secret's and the previous one's)."""
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets)


def headers_for(message_id: str, body: str, secrets: list[str], now: float | None = None) -> dict[str, str]:
    timestamp = datetime.fromtimestamp(int(now if now is not None else time.time()), UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature(message_id, timestamp, body, secrets),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def send(url: str, message_id: str, body: str, secrets: list[str], allow_private: bool = False,
         timeout: float = DELIVERY_TIMEOUT_SECONDS) -> Outcome:
    """POST ``body`` to ``url``: success is a 2xx within ``timeout`` seconds."""
    started = time.monotonic()

    def failed(error: str, status: int | None = None, answer: str | None = None) -> Outcome:
        return Outcome(False, status, error[:200], int((time.monotonic() - started) * 1000), answer)

    try:
        target = resolve(url, allow_private)
    except RefusedTarget as refused:
        return failed(f"refused target: {refused}")
    connection_class = _PinnedHTTPSConnection if target.https else _PinnedHTTPConnection
    connection = connection_class(target, timeout)
    try:
        connection.request("POST", target.path, body=body.encode(), headers={
            "Host": target.host_header, **headers_for(message_id, body, secrets)})
        response = connection.getresponse()
        answer = response.read(RESPONSE_KEPT_BYTES).decode("utf-8", "replace")
        status = response.status
    except TimeoutError:
        return failed(f"timed out after {timeout:g} s")
    except (OSError, http.client.HTTPException) as error:
        return failed(f"{type(error).__name__}: {error}")
    finally:
        connection.close()
    latency = int((time.monotonic() - started) * 1000)
    if latency > timeout * 1000:
        return Outcome(False, status, f"answered after {timeout:g} s", latency, answer)
    if 200 <= status < 300:
        return Outcome(True, status, None, latency, answer)
    return Outcome(False, status, f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else ""),
                   latency, answer)
