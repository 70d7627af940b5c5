"""One HTTP attempt of one message, signed as Standard Webhooks says.

Signed with the official ``standardwebhooks`` package's public API (``Webhook.sign``), the
library the consumers verify with. Sent with the standard library's ``http.client``,
connected to the address usetix/webhooks/targets.py checked (the name is not resolved
again, so it cannot be rebound in between), with the URL's host as Host and TLS server
name. It never follows a redirect (a 3xx is a failed attempt) and gives the endpoint 15 s
in all: a deadline for the connection, the request and the answer together, each socket
operation waiting no longer than the time left (a server dripping its answer a byte at a
time cannot stretch it).
A worker's batch of messages shares :class:`Connections`: one kept-alive connection per
target (scheme, host, port and the address checked for this very message), so each message
is still checked against what its name resolves to, and only the TCP (and TLS) set-up is
saved. A kept-alive connection the server closed as the request went out (reset, or closed
before the answer's status line) is not the endpoint's failure: the request is sent again,
once, on a fresh connection within the same deadline (the same webhook-id, which consumers
deduplicate on, should the server have taken the first).
"""

from __future__ import annotations

import http.client
import io
import select
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


class _ReaderUntil(io.RawIOBase):
    """A socket's reads, each waiting no longer than the time left before ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the delivery's deadline passed")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _SocketUntil:
    """What an HTTPResponse reads its answer from: the socket, read with a deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_ReaderUntil(self._sock, self._deadline))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    opened: socket.socket | None = None  # the socket connect() made, for Connections
    deadline = float("inf")  # time.monotonic()'s, set for each request

    def response_class(self, sock: socket.socket, **kwargs: object) -> http.client.HTTPResponse:
        return http.client.HTTPResponse(_SocketUntil(sock, self.deadline), **kwargs)  # type: ignore[arg-type]

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = self.opened = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    opened: socket.socket | None = None
    deadline = float("inf")
    response_class = _PinnedHTTPConnection.response_class

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body: two writes
        self.sock = self.opened = self._context.wrap_socket(raw, server_hostname=self.host)


# An answer longer than this is not read to its end: its connection is closed instead.
DRAINED_BYTES = 64 * 1024
# A connection idle longer than this is not used again (servers close idle ones, from 2 s).
IDLE_SECONDS = 1.0


class Connections:
    """Kept-alive connections for one batch of sends; closed with it."""

    def __init__(self) -> None:
        self._idle: dict[tuple, tuple[_PinnedHTTPConnection | _PinnedHTTPSConnection, float]] = {}

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for connection, _ in self._idle.values():
            connection.close()
        self._idle.clear()

    def take(self, target: Target, timeout: float) -> _PinnedHTTPConnection | _PinnedHTTPSConnection:
        """A connection to ``target``'s checked address: an idle one still open, or a new one."""
        idle = self._idle.pop(_key(target, timeout), None)
        if idle is not None:
            connection, since = idle
            if time.monotonic() - since <= IDLE_SECONDS and _still_open(connection.opened):
                return connection
            connection.close()
        return (_PinnedHTTPSConnection if target.https else _PinnedHTTPConnection)(target, timeout)

    def give_back(self, target: Target, timeout: float,
                  connection: _PinnedHTTPConnection | _PinnedHTTPSConnection) -> None:
        self._idle[_key(target, timeout)] = (connection, time.monotonic())


def _key(target: Target, timeout: float) -> tuple:
    return (target.https, target.host, target.port, target.address, timeout)


def _still_open(opened: socket.socket | None) -> bool:
    # An idle connection that is readable is one the server closed (or wrote to unasked).
    if opened is None or opened.fileno() == -1:
        return False
    if hasattr(select, "poll"):  # select() cannot watch a descriptor above 1023
        poller = select.poll()
        poller.register(opened, select.POLLIN)
        return not poller.poll(0)
    readable, _, _ = select.select([opened], [], [], 0)
    return not readable


def _keeps_alive(response: http.client.HTTPResponse) -> bool:
    tokens = (response.getheader("Connection") or "").lower()
    return response.isclosed() and response.version == 11 and "close" not in tokens


def send(url: str, message_id: str, body: str, secrets: list[str], allow_private: bool = False,
         timeout: float = DELIVERY_TIMEOUT_SECONDS, connections: Connections | None = None) -> Outcome:
    """POST ``body`` to ``url``: success is a 2xx within ``timeout`` seconds. With
    ``connections``, over a kept-alive connection to the address checked now."""
    started = time.monotonic()

    def failed(error: str, status: int | None = None, answer: str | None = None) -> Outcome:
        return Outcome(False, status, error[:200], int((time.monotonic() - started) * 1000), answer)

    try:
        target = resolve(url, allow_private)
    except RefusedTarget as refused:
        return failed(f"refused target: {refused}")
    if connections is None:
        with Connections() as own:
            return _post(target, message_id, body, secrets, timeout, own, started)
    return _post(target, message_id, body, secrets, timeout, connections, started)


class _ClosedWhileIdle(Exception):
    """A kept-alive connection failed before the answer's status line: the server closed it."""


def _post(target: Target, message_id: str, body: str, secrets: list[str], timeout: float, connections: Connections,
          started: float) -> Outcome:
    connection = connections.take(target, timeout)
    if connection.sock is not None:  # kept alive: the server may close it as the request goes out
        try:
            return _exchange(connection, target, message_id, body, secrets, timeout, connections, started, True)
        except _ClosedWhileIdle:  # once, on a fresh connection, within the same deadline
            connection = connections.take(target, timeout)
    return _exchange(connection, target, message_id, body, secrets, timeout, connections, started, False)


def _exchange(connection: _PinnedHTTPConnection | _PinnedHTTPSConnection, target: Target, message_id: str,
              body: str, secrets: list[str], timeout: float, connections: Connections, started: float,
              kept_alive: bool) -> Outcome:
    def failed(error: str, status: int | None = None, answer: str | None = None) -> Outcome:
        return Outcome(False, status, error[:200], int((time.monotonic() - started) * 1000), answer)

    connection.deadline = started + timeout
    left = max(connection.deadline - time.monotonic(), 0.001)  # resolving the name took some
    if connection.sock is None:
        connection.timeout = left
    else:
        connection.sock.settimeout(left)
    reusable = False
    try:
        try:
            connection.request("POST", target.path, body=body.encode(), headers={
                "Host": target.host_header, **headers_for(message_id, body, secrets)})
            response = connection.getresponse()
        except ConnectionError:  # reset, broken pipe, or closed with no status line
            if kept_alive:
                raise _ClosedWhileIdle from None
            raise
        answer = response.read(RESPONSE_KEPT_BYTES).decode("utf-8", "replace")
        status = response.status
        if not response.isclosed():
            response.read(DRAINED_BYTES)
        reusable = _keeps_alive(response)
    except TimeoutError:
        return failed(f"timed out after {timeout:g} s")
    except (OSError, http.client.HTTPException) as error:
        return failed(f"{type(error).__name__}: {error}")
    finally:
        if reusable:
            connections.give_back(target, timeout, connection)
        else:
            connection.close()
    latency = int((time.monotonic() - started) * 1000)
    if latency > timeout * 1000:
        return Outcome(False, status, f"answered after {timeout:g} s", latency, answer)
    if 200 <= status < 300:
        return Outcome(True, status, None, latency, answer)
    return Outcome(False, status, f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else ""),
                   latency, answer)
