"""When a token expires, and how to say so. Pure: no Flask, no database.

The create form offers 7, 30 (default), 60 or 90 days from now, a custom date, or no
expiry, like GitHub's personal access tokens. A custom date means the token stops working
at 00:00 UTC that day; it can be tomorrow at the earliest and 366 days ahead at the latest.
A token is refused from its ``expires_at`` second on (``now >= expires_at``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

PRESET_DAYS = (7, 30, 60, 90)
DEFAULT_CHOICE = "30"
CUSTOM = "custom"
NO_EXPIRY = "none"
MAX_CUSTOM_DAYS = 366
# Highlighted in the dashboard when a live token has less than this left.
EXPIRING_SOON = timedelta(days=7)

_PRESET_CHOICES = frozenset(str(days) for days in PRESET_DAYS)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class BadExpiry(ValueError):
    """The expiry chosen on the form cannot be used; the message says why, for the form."""


def custom_date_range(now: datetime) -> tuple[date, date]:
    """The first and last dates a custom expiry may take (UTC calendar days)."""
    today = now.astimezone(UTC).date()
    return today + timedelta(days=1), today + timedelta(days=MAX_CUSTOM_DAYS)


def expires_at_for(choice: object, custom_date: object, now: datetime) -> datetime | None:
    """The ``expires_at`` for a form choice (``"7"``…``"90"``, ``"custom"``, ``"none"``),
    None for no expiry. Raises BadExpiry for an unknown choice or a bad custom date
    (anything but text included: a form field may arrive as a file part)."""
    if choice == NO_EXPIRY:
        return None
    if choice == CUSTOM:
        text = custom_date.strip() if isinstance(custom_date, str) else ""
        if not text:
            raise BadExpiry("Pick the date the token expires.")
        if not _ISO_DATE.fullmatch(text):
            raise BadExpiry("Give the date as YYYY-MM-DD.")
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise BadExpiry("That date does not exist.") from None
        first, last = custom_date_range(now)
        if day < first:
            raise BadExpiry(f"The expiry date must be tomorrow ({first.isoformat()}) or later.")
        if day > last:
            raise BadExpiry(f"The expiry date can be at most {MAX_CUSTOM_DAYS} days ahead ({last.isoformat()}).")
        return datetime.combine(day, time(0, 0), tzinfo=UTC)
    if isinstance(choice, str) and choice in _PRESET_CHOICES:
        return now.astimezone(UTC).replace(microsecond=0) + timedelta(days=int(choice))
    raise BadExpiry("Choose one of the expiry options.")


def _amount(delta: timedelta) -> str:
    """``delta`` (positive), rounded to the nearest whole unit, in the largest unit that
    leaves at least two of it: "7 days" for 6 days 23 hours, "30 hours", "5 minutes"."""
    seconds = delta.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size:
            return f"{round(seconds / size)} {unit}s"
    whole = int(seconds)
    return f"{whole} second{'s' if whole != 1 else ''}"


def describe_expiry(expires_at: datetime | None, now: datetime) -> str:
    """"No expiry", "Expires in 5 days", "Expired 2 days ago" (see :func:`_amount`)."""
    if expires_at is None:
        return "No expiry"
    if now < expires_at:
        return f"Expires in {_amount(expires_at - now)}"
    if now - expires_at < timedelta(seconds=1):
        return "Expired just now"
    return f"Expired {_amount(now - expires_at)} ago"


def expiring_soon(expires_at: datetime | None, now: datetime) -> bool:
    """Whether a token still valid at ``now`` expires within :data:`EXPIRING_SOON`."""
    return expires_at is not None and now < expires_at <= now + EXPIRING_SOON
