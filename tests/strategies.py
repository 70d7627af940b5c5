"""Hypothesis strategies for what arrives as an Authorization header: well-formed tokens no
account holds, broken checksums, one character changed, any text, runs of spaces, long values.
Shared by the pure parsers' properties (tests/unit/test_fuzz.py) and the API's
(tests/app/test_fuzz.py)."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from usetix.core import token_format as tokens

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
