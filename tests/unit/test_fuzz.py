"""Property-based tests (hypothesis) of the pure parsers that read a credential or a query
string (usetix.core: authorization, token_format, list_query). The same inputs sent to the
API through the test client are in tests/app/test_fuzz.py.

Every test is bounded (max_examples, no deadline).
"""

from __future__ import annotations

import string
import zlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from usetix.core import token_format as tokens
from usetix.core.authorization import parse_authorization
from usetix.core.list_query import MAX_PAGE, BadParameter, ListQuery, parse_list_query

from ..strategies import (
    broken_checksum_tokens,
    header_texts,
    long_text,
    one_character_changed,
    random_parts,
    well_formed_tokens,
)

# As many examples as the run's Hypothesis profile says: 100 by default, so that tests/unit runs in
# seconds; 500 with --hypothesis-profile=thorough (tests/conftest.py).
PURE = settings(deadline=None)



# --- Pure parsers ------------------------------------------------------------------------------

@PURE
@given(st.none() | header_texts() | st.text())
def test_parse_authorization_never_raises_and_classifies(header):
    credential = parse_authorization(header)
    assert credential.problem in (None, "missing", "scheme", "malformed")
    if credential.problem is None:
        assert credential.token and header.split() == [header.split()[0], credential.token]
        assert header.split()[0].lower() == "bearer"
    else:
        assert credential.token is None and credential.detail
    # Another scheme is exactly a first word that is not "bearer" (RFC 6750 §3.1: no error code).
    assert (credential.problem == "scheme") == bool(header and header.split() and header.split()[0].lower() != "bearer")
    if header is None or not header.strip():
        assert credential.problem == "missing"


@PURE
@given(st.sampled_from(["Bearer", "bearer", "BEARER", "BeArEr"]), st.text(alphabet=" \t", min_size=0, max_size=40),
       st.text(alphabet=" ", min_size=1, max_size=4000), st.text(alphabet=" \t", max_size=40),
       st.text(min_size=1).filter(lambda t: len(t.split()) == 1).map(str.strip))
def test_parse_authorization_reads_one_bearer_value_in_any_case_and_spacing(scheme, before, between, after, value):
    credential = parse_authorization(before + scheme + between + value + after)
    assert credential.problem is None
    assert credential.token == value


@PURE
@given(st.lists(well_formed_tokens, min_size=2, max_size=4), st.sampled_from([",", ", ", " , "]))
def test_several_bearer_headers_joined_by_a_server_are_malformed(values, separator):
    # gunicorn and most servers join repeated headers with a comma.
    header = separator.join(f"Bearer {value}" for value in values)
    assert parse_authorization(header).problem == "malformed"


@PURE
@given(st.text(max_size=128) | long_text | broken_checksum_tokens() | one_character_changed())
@example("utx_" + "0" * 36)
@example("utx_" + "é" * 36)
@example("UTX_" + "A" * 36)
def test_tokens_parse_returns_the_value_or_raises_malformed(value):
    try:
        assert tokens.parse(value) == value
    except tokens.MalformedToken:
        return
    # Accepted: then it has the documented shape and a matching checksum.
    assert value.startswith("utx_") and len(value) == tokens.TOKEN_LENGTH
    assert set(value[4:]) <= set(tokens.ALPHABET)
    assert tokens.checksum(value[4:34]) == value[34:]


@PURE
@given(well_formed_tokens)
def test_well_formed_tokens_parse_and_digest_to_64_hex(value):
    assert tokens.parse(value) == value
    digest = tokens.digest(value)
    assert len(digest) == 64 and set(digest) <= set(string.hexdigits.lower())
    assert digest == tokens.digest(value)


@PURE
@given(one_character_changed())
def test_any_single_character_change_is_caught_by_the_checksum(value):
    # CRC32 catches every error burst of up to 32 bits, so one changed character always is.
    with pytest.raises(tokens.MalformedToken):
        tokens.parse(value)


@PURE
@given(random_parts)
def test_checksum_is_six_base62_characters_of_the_crc32(body):
    check = tokens.checksum(body)
    assert len(check) == tokens.CHECKSUM_LENGTH and set(check) <= set(tokens.ALPHABET)
    assert sum(tokens.ALPHABET.index(c) * 62 ** i for i, c in enumerate(reversed(check))) == zlib.crc32(body.encode())


@PURE
@given(st.dictionaries(st.sampled_from(["page", "per_page", "updated_since", "other"]),
                       st.text(max_size=40) | st.integers(-10**12, 10**12).map(str)
                       | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())))
def test_parse_list_query_returns_a_query_or_names_the_bad_parameter(args):
    try:
        query = parse_list_query(args)
    except BadParameter as exc:
        assert exc.parameter in args and exc.message
        return
    assert isinstance(query, ListQuery)
    assert 1 <= query.page <= MAX_PAGE and 1 <= query.per_page <= 100
    assert query.updated_since is None or query.updated_since.utcoffset().total_seconds() == 0
