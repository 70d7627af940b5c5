"""Address keys of the login throttle are bounded, however long the address."""

from __future__ import annotations

from usetix.ratelimit import address_key


def test_address_keys_are_bounded():
    assert address_key("2001:db8::1") == "2001:db8::1"
    assert address_key(None) == ""
    long = address_key("x" * 10_000)
    assert long.startswith("sha256:") and len(long) < 64
