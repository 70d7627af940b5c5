"""Property-based tests (hypothesis) of the pure parsers that read a credential or a query
string (usetix.core: authorization, token_format, list_query). The same inputs sent to the
API through the test client are in tests/app/test_fuzz.py.

Every test is bounded (max_examples, no deadline).
"""

from __future__ import annotations

import string
import zlib

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from usetix.core import token_format as tokens
from usetix.core.authorization import parse_authorization
from usetix.core.list_query import MAX_PAGE, BadParameter, ListQuery, parse_list_query

# As many examples as the run's Hypothesis profile says: 100 by default, so that tests/unit runs in
# seconds; 500 with --hypothesis-profile=thorough (tests/conftest.py).
PURE = settings(deadline=None)

MAX_HEADER = 64 * 1024
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2000\u3000"

# --- Strategies -------------------------------------------------------------------------------

random_parts = st.text(alphabet=tokens.ALPHABET, min_size=tokens.RANDOM_LENGTH, max_size=tokens.RANDOM_LENGTH)
# Well-formed tokens with a valid checksum that no account holds.
well_formed_tokens = random_parts.map(lambda body: tokens.PREFIX + body + tokens.checksum(body))


@st.composite
def broken_checksum_tokens(draw) -> str:
    """utx_ + 36 base62 characters whose last six are not the checksum of the first 30."""
    body = draw(random_parts)
    check = draw(st.text(alphabet=tokens.ALPHABET, min_size=tokens.CHECKSUM_LENGTH, max_size=tokens.CHECKSUM_LENGTH))
    assume(check != tokens.checksum(body))
    return tokens.PREFIX + body + check


@st.composite
def one_character_changed(draw) -> str:
    """A real token with one character of its random part or checksum replaced."""
    value = draw(well_formed_tokens)
    index = draw(st.integers(len(tokens.PREFIX), tokens.TOKEN_LENGTH - 1))
    replacement = draw(st.sampled_from(tokens.ALPHABET).filter(lambda c: c != value[index]))
    return value[:index] + replacement + value[index + 1:]


def _repeat_to(piece: str, times: int) -> str:
    return (piece * times)[:MAX_HEADER]


# Long values: hypothesis seldom draws 64 KiB by itself, so repeat a short piece.
long_text = st.builds(_repeat_to, st.text(min_size=1, max_size=16), st.integers(1, MAX_HEADER))
schemes = st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Token", "Bearer:", "Bearer,", "utx_", ""])
spaces = st.text(alphabet=WHITESPACE, max_size=64) | st.builds(lambda n: " " * n, st.integers(0, MAX_HEADER // 2))
credentials = st.one_of(
    st.text(max_size=256),  # any unicode, NUL and control characters included
    well_formed_tokens, broken_checksum_tokens(), one_character_changed(),
    well_formed_tokens.map(str.upper), well_formed_tokens.map(lambda t: t[:-1]),
    well_formed_tokens.map(lambda t: t + "A"),
    st.builds(lambda t, junk: t + junk, well_formed_tokens, st.text(min_size=1, max_size=8)),
    long_text,
)


@st.composite
def header_texts(draw) -> str:
    """An Authorization value: scheme, spaces and credentials in any arrangement, or junk."""
    shaped = st.builds(lambda s1, scheme, s2, cred, s3: s1 + scheme + s2 + cred + s3,
                       spaces, schemes, spaces, credentials, spaces)
    several = st.lists(shaped, min_size=2, max_size=4).map(", ".join)
    return draw(st.one_of(shaped, several, st.text(max_size=512), long_text))[:MAX_HEADER]


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
