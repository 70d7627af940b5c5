"""The token format module: no Flask, no database."""

import math
import re

import pytest

from usetix.core import token_format as tokens


def test_generated_token_round_trips_through_parse():
    value = tokens.generate()
    assert tokens.parse(value) == value


def test_shape_prefix_and_alphabet():
    value = tokens.generate()
    assert re.fullmatch(r"utx_[0-9A-Za-z]{36}", value)
    assert len(value) == tokens.TOKEN_LENGTH == 40


def test_random_part_carries_at_least_160_bits():
    assert tokens.RANDOM_LENGTH * math.log2(len(tokens.ALPHABET)) >= 160
    assert len({tokens.generate() for _ in range(1000)}) == 1000


def test_checksum_is_crc32_of_the_random_part():
    value = tokens.generate()
    random_part, check = value[4:34], value[34:]
    assert tokens.checksum(random_part) == check


@pytest.mark.parametrize(("number", "digits"), [
    (0, "000000"), (61, "00000z"), (62, "000010"), (62**2, "000100"), (62**4 - 1, "00zzzz"),
    (2**32 - 1, "4gfFC3"), (62**6 - 1, "zzzzzz"),
])
def test_six_base62_digits_most_significant_first(number, digits):
    assert tokens._six_base62(number) == digits
    assert sum(tokens.ALPHABET.index(c) * 62**i for i, c in enumerate(reversed(digits))) == number


@pytest.mark.parametrize("position", range(4, 40))
def test_any_changed_character_fails_the_checksum(position):
    value = tokens.generate()
    replacement = "A" if value[position] != "A" else "B"
    changed = value[:position] + replacement + value[position + 1:]
    with pytest.raises(tokens.MalformedToken):
        tokens.parse(changed)


@pytest.mark.parametrize("value", [
    "",
    "utx_",
    "abc_" + "A" * 36,
    "UTX_" + "A" * 36,
    "utx_" + "A" * 35,
    "utx_" + "A" * 37,
    "utx_" + "A" * 29 + "-" + "AAAAAA",
    "utx_" + "é" * 36,
])
def test_malformed_values_are_rejected(value):
    with pytest.raises(tokens.MalformedToken):
        tokens.parse(value)


def test_digest_is_sha256_hex_of_the_value():
    import hashlib

    value = tokens.generate()
    assert tokens.digest(value) == hashlib.sha256(value.encode()).hexdigest()
    assert len(tokens.digest(value)) == 64
