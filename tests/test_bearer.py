"""Authorization header parsing: no Flask."""

import pytest

from usetix.bearer import parse_authorization


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_credentials(header):
    assert parse_authorization(header).problem == "missing"


@pytest.mark.parametrize("header", ["Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc  "])
def test_bearer_with_one_value(header):
    credential = parse_authorization(header)
    assert credential.problem is None
    assert credential.token == "abc"


@pytest.mark.parametrize("header, detail", [
    ("Basic dXNlcjpwYXNz", "scheme must be Bearer"),
    ("Token abc", "scheme must be Bearer"),
    ("Bearer", "needs a token"),
    ("Bearer  ", "needs a token"),
    ("Bearer a b", "exactly one token"),
    ("Bearer abc, Bearer def", "exactly one token"),
])
def test_malformed_headers(header, detail):
    credential = parse_authorization(header)
    assert credential.problem == "malformed"
    assert credential.token is None
    assert detail in credential.detail
