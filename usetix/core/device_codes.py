"""The device grant's codes and numbers (RFC 8628), as the dashboard and the token
endpoint read them. Pure: no Flask, no database.

A user code is 8 letters from an alphabet of 20 (no vowels, so no words; no look-alikes
of digits), shown as ``XXXX-XXXX``: 20^8 (about 2.6 * 10^10) codes, of which a handful
are live at any time, each for ``EXPIRES_IN`` seconds. The approval page accepts one with
or without the dash, in any case, with spaces around.
"""

from __future__ import annotations

import re

CLIENT_ID = "usetix-scanner"
# RFC 8628 §3.2: how long a device code and its user code live, and the least wait between polls.
EXPIRES_IN = 600
INTERVAL = 5
# §3.5: a slow_down adds this to the interval, for that poll and every later one.
SLOW_DOWN_STEP = 5
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
MAX_DEVICE_NAME = 64
DEFAULT_DEVICE_NAME = "Scanner"
# The path of the approval page (verification_uri).
ACTIVATE_PATH = "/admin/devices/activate"

_TYPED_CODE = re.compile(rf"[{USER_CODE_ALPHABET}]{{4}}-?[{USER_CODE_ALPHABET}]{{4}}")


def normalize_user_code(typed: object) -> str | None:
    """The stored form (8 capitals, no dash) of a user code as a person typed it, or None
    when it cannot be one (wrong length or letters: no lookup is needed to refuse it)."""
    if not isinstance(typed, str):
        return None
    text = typed.strip().upper()
    if not _TYPED_CODE.fullmatch(text):
        return None
    return text.replace("-", "")


def display_user_code(stored: str) -> str:
    """``BCDFGHJK`` as a person reads it: ``BCDF-GHJK``."""
    return f"{stored[:4]}-{stored[4:]}"
