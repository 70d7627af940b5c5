"""Ticket codes: what a door scanner reads off a ticket. No Flask, no database.

A code is 24 characters of Crockford's base32 (digits and upper-case letters without I, L,
O and U, which look like 1, 1, 0 and V): 120 random bits, so a code cannot be guessed or
made up from another. A scanner or a person typing one may send it in lower case, with
hyphens or spaces, or with the look-alikes: :func:`normalized` reads it as Crockford does.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 24  # 24 characters of 5 bits: 120 bits
BITS = LENGTH * 5
# The longest code the API reads (a code of another format, hyphenated, is refused as unknown).
MAX_INPUT_LENGTH = 64
# A scan's history keeps this many of the code's last characters, never the whole code.
TAIL_LENGTH = 4
_LOOK_ALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    number = secrets.randbits(BITS)
    return "".join(ALPHABET[(number >> shift) & 31] for shift in range(BITS - 5, -1, -5))


def normalized(raw: str) -> str:
    """``raw`` as a stored code would be written: upper case, without hyphens or spaces, the
    look-alikes read as the digits they stand for."""
    return raw.replace("-", "").replace(" ", "").upper().translate(_LOOK_ALIKES)


def tail(code: str) -> str:
    """What a scan's history keeps of a code: its last characters."""
    return code[-TAIL_LENGTH:]
