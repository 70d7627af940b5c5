"""The bounded keys a limit counts under: an email as typed, a client address."""

from __future__ import annotations

import hashlib

# An IPv6 address with a zone fits; a longer "address" (a forwarded header's junk) is digested.
MAX_ADDRESS_KEY = 64


def email_key(email: str) -> str:
    """A bounded key for an email as typed: the digest of its normalized form (the raw
    value may be anything a client sends)."""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def address_key(address: str | None) -> str:
    """A bounded key for a client address: itself, or its digest if it is too long to be
    one (behind a misconfigured proxy, the address comes from a header)."""
    address = address or ""
    if len(address) <= MAX_ADDRESS_KEY:
        return address
    return "sha256:" + hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:32]


