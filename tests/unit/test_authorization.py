"""Authorization header parsing: no Flask."""

import pytest

from usetix.core.authorization import parse_authorization


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_credentials(header):
    assert parse_authorization(header).problem == "missing"


@pytest.mark.parametrize("header", ["Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc  "])
def test_bearer_with_one_value(header):
    credential = parse_authorization(header)
    assert credential.problem is None
    assert credential.token == "abc"


@pytest.mark.parametrize("header, problem, detail", [
    ("Basic dXNlcjpwYXNz", "scheme", "scheme must be Bearer"),
    ("Token abc", "scheme", "scheme must be Bearer"),
    ("Bearer", "malformed", "needs a token"),
    ("Bearer  ", "malformed", "needs a token"),
    ("Bearer a b", "malformed", "exactly one token"),
    ("Bearer abc, Bearer def", "malformed", "exactly one token"),
])
def test_malformed_headers(header, problem, detail):
    credential = parse_authorization(header)
    assert credential.problem == problem
    assert credential.token is None
    assert detail in credential.detail
