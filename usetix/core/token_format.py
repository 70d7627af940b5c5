"""The API token format: generate, checksum, parse and digest. No Flask in here.

A token looks like ``utx_`` + 30 random base62 characters (about 178 bits from
``secrets``) + a 6-character base62 CRC32 of the random part. The prefix lets secret
scanners spot a leaked Usetix token; the checksum lets the server turn away a mistyped or
invented value without a database query. Only the SHA-256 digest is ever stored.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

PREFIX = "utx_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 30
CHECKSUM_LENGTH = 6  # the digits _six_base62 writes
PREFIX_LENGTH = len(PREFIX)
TOKEN_LENGTH = PREFIX_LENGTH + RANDOM_LENGTH + CHECKSUM_LENGTH


class MalformedToken(ValueError):
    """The value cannot be a Usetix token: wrong prefix, length, characters or checksum."""


# Every two-digit base62 string, by value: the checksum in three lookups, not six divisions
# (it is computed for every token a request presents).
_PAIRS = tuple(high + low for high in ALPHABET for low in ALPHABET)


def _six_base62(number: int) -> str:
    """``number`` (below 62**6) in six base62 digits, most significant first."""
    rest, low = divmod(number, 62**2)
    high, middle = divmod(rest, 62**2)
    return _PAIRS[high] + _PAIRS[middle] + _PAIRS[low]


def checksum(random_part: str) -> str:
    """The 6-character base62 CRC32 of the random part (62**6 > 2**32, so it always fits)."""
    return _six_base62(zlib.crc32(random_part.encode("ascii")))


def generate() -> str:
    """A new raw token value. Show it to the admin once; store only :func:`digest`."""
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return PREFIX + random_part + checksum(random_part)


def parse(value: str) -> str:
    """Return ``value`` if it is a well-formed token with a valid checksum, else raise."""
    if len(value) != TOKEN_LENGTH or not value.startswith(PREFIX):
        raise MalformedToken("not a Usetix token (expected utx_ and 36 characters)")
    body = value[PREFIX_LENGTH:]
    # ASCII letters and digits are exactly base62 (str methods: no per-character lookup)
    if not (body.isascii() and body.isalnum()):
        raise MalformedToken("token contains characters outside base62")
    random_part, check = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    if checksum(random_part) != check:
        raise MalformedToken("token checksum does not match (mistyped or truncated?)")
    return value


def digest(value: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(value.encode("ascii")).hexdigest()
