"""User codes as people type them (usetix/core/device_codes.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usetix.core import device_codes

LETTERS = device_codes.USER_CODE_ALPHABET


@pytest.mark.parametrize("typed", ["BCDF-GHJK", "bcdf-ghjk", "BCDFGHJK", "bcdfghjk", "  BcDf-gHjK\t"])
def test_a_code_with_or_without_the_dash_in_any_case(typed):
    assert device_codes.normalize_user_code(typed) == "BCDFGHJK"
    assert device_codes.display_user_code("BCDFGHJK") == "BCDF-GHJK"


@pytest.mark.parametrize("typed", ["", "BCDF-GHJ", "BCDF-GHJKL", "BCDF--GHJK", "BCD-FGHJK", "ABCD-EFGH",
                                   "BCDF GHJK", "1234-5678", None, 12345678, "ＢCDF-GHJK"])
def test_what_cannot_be_a_code_needs_no_lookup(typed):
    assert device_codes.normalize_user_code(typed) is None


def test_the_alphabet_has_no_vowels_and_no_digits():
    """No words can be spelt, and no O or I stands beside a 0 or a 1: 20 letters, 20^8 codes."""
    assert len(set(LETTERS)) == len(LETTERS) == 20
    assert not set(LETTERS) & set("AEIOUY0123456789")


@given(st.text(alphabet=LETTERS, min_size=8, max_size=8), st.booleans(), st.booleans())
def test_every_code_shown_is_read_back(code, with_dash, lower):
    shown = device_codes.display_user_code(code) if with_dash else code
    assert device_codes.normalize_user_code(shown.lower() if lower else shown) == code
