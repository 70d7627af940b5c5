"""Outbound webhooks' rules (Standard Webhooks, standardwebhooks.com): the event types, the
secret's and the message id's format, the retry schedule, and which target URLs and
addresses are refused. No Flask, no I/O: parsing a URL and resolving its name are
usetix/webhooks/targets.py's business, which asks :func:`refused_address` of every address.
"""

from __future__ import annotations

import base64
import ipaddress
import random
import secrets

EVENT_TYPES = (
    "event.created", "event.updated", "event.deleted",
    "attendee.created", "attendee.updated", "attendee.deleted",
    "attendee.checked_in", "attendee.check_in_undone",
)
# Sent by POST /admin/webhooks/<id>/test only: no endpoint subscribes to it.
TEST_EVENT = "webhook.test"

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64
MESSAGE_ID_PREFIX = "msg_"

# The spec's example schedule: the delay before each retry (seconds), the last repeated
# until the message is about three days old (5 s + 5 min + 30 min + 2 h + 5 h + 7 x 10 h).
RETRY_DELAYS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600) + (10 * 3600,) * 7
JITTER = 0.1  # each delay is drawn within +/- 10 %
# An endpoint whose attempts have failed for this long (no success between) is disabled;
# its admins see a notice from a day before.
DISABLE_AFTER_HOURS = 72
WARN_AFTER_HOURS = 48
RESPONSE_KEPT_BYTES = 2048  # the first 2 KB of an answer, in the delivery log
DELIVERY_TIMEOUT_SECONDS = 15


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes, as the spec and its libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    return MESSAGE_ID_PREFIX + secrets.token_urlsafe(18)


def retry_delay(attempts_made: int, schedule: tuple[float, ...] | list[float] | None = None) -> float | None:
    """Seconds to wait before the next attempt after ``attempts_made`` failed ones, with
    jitter; None when the schedule is spent (the message has failed)."""
    delays = tuple(schedule) if schedule else RETRY_DELAYS
    if attempts_made < 1 or attempts_made > len(delays):
        return None
    delay = delays[attempts_made - 1]
    return delay * random.uniform(1 - JITTER, 1 + JITTER)  # jitter, not a secret


class RefusedTarget(ValueError):
    """A URL or address webhooks may not be sent to; the message says why."""


def refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address | str, allow_private: bool = False) -> None:
    """RefusedTarget unless ``address`` is a public unicast address: never loopback,
    private, link-local, multicast, reserved or unspecified (an IPv4-mapped IPv6 address is
    judged as its IPv4 address). ``allow_private`` lets loopback through (tests)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private and ip.is_loopback:
        return
    if ip.is_loopback:
        raise RefusedTarget(f"{ip} is a loopback address.")
    if ip.is_link_local:
        raise RefusedTarget(f"{ip} is a link-local address.")
    if ip.is_multicast:
        raise RefusedTarget(f"{ip} is a multicast address.")
    if ip.is_private or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        raise RefusedTarget(f"{ip} is a private or reserved address.")


def check_event_types(types: list[str]) -> list[str]:
    """The subscribed types, without repeats, in the order of EVENT_TYPES; RefusedTarget's
    sibling ValueError names the unknown one."""
    unknown = [name for name in types if name not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"Unknown event type {unknown[0]!r}; the types are: {', '.join(EVENT_TYPES)}.")
    if not types:
        raise ValueError("An endpoint subscribes to at least one event type.")
    return [name for name in EVENT_TYPES if name in set(types)]
