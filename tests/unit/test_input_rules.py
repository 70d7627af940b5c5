"""The input rules shared by every endpoint, on their own: how deeply a JSON body may nest
(usetix/core/json_nesting.py), and which characters text may hold
(usetix/core/printable_text.py). The API and the forms applying them: tests/app/test_input_rules.py."""

from __future__ import annotations

import json

import pytest

from usetix.core.json_nesting import MAX_JSON_DEPTH, nests_too_deep
from usetix.core.printable_text import PRINTABLE_PATTERN, refused_character


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


# --- The nesting scanner --------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [0, 1, MAX_JSON_DEPTH])
def test_nesting_up_to_the_limit_passes(depth):
    assert not nests_too_deep(nested(depth))
    assert not nests_too_deep(b'{"a": ' * depth + b"1" + b"}" * depth)


def test_nesting_past_the_limit_is_found_for_arrays_objects_and_both():
    assert nests_too_deep(nested(MAX_JSON_DEPTH + 1))
    assert nests_too_deep(b'{"a": ' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1))
    assert nests_too_deep(b'{"a": [' * 17 + b"1" + b"]}" * 17)  # 34 levels
    assert nests_too_deep(nested(973))
    assert nests_too_deep(nested(MAX_JSON_DEPTH + 1)[:-5])  # unclosed: still too deep


def test_depth_is_nesting_not_the_number_of_brackets():
    flat = b"[" + b"[], {}, " * 1000 + b"[]]"
    assert not nests_too_deep(flat)
    assert nests_too_deep(flat, limit=1)


@pytest.mark.parametrize("text", [
    "[" * 100,                  # brackets in a string are text
    "]" * 100 + "[" * 100,
    '\\"' + "[" * 100,          # an escaped quote does not end the string
    "\\\\" + "{" * 100,         # nor does an escaped backslash start an escape of the quote
    "\\u005b" * 100,            # an escaped bracket is text too
    "[" * 50 + '\\"]' + "[" * 50,
])
def test_brackets_inside_strings_do_not_count(text):
    body = json.dumps({"title": text, "list": [[text]]}, ensure_ascii=False).encode()
    json.loads(body)  # the case is real JSON
    assert not nests_too_deep(body)


def test_a_string_after_an_escaped_backslash_ends_where_json_says():
    # "\\" is a complete string: the brackets after it are structure.
    body = b'["\\\\", ' + nested(MAX_JSON_DEPTH) + b"]"
    assert len(json.loads(body)) == 2
    assert nests_too_deep(body)


def test_an_unterminated_string_runs_to_the_end_of_the_body():
    # Every quote after the first is escaped, so the brackets after the open quote are text.
    body = b"[" * MAX_JSON_DEPTH + b'"' + b'\\"[' * 300_000
    assert not nests_too_deep(body)
    assert nests_too_deep(b"[" + body)


# --- The text rule ----------------------------------------------------------------------------------

REFUSED = ["\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9f", "\u2028", "\u2029",
           "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
ALLOWED = ["Synchro Müller – 日本 ✓", "مزامنة", "שלום\u200f!", "\u061cعربي", "a\u200eb", "👩\u200d💻 sync",
           "<b>&amp;</b>", "\u00a0no-break space", "\u00a0"]


@pytest.mark.parametrize("character", REFUSED)
def test_the_rule_refuses_controls_separators_and_bidi_overrides(character):
    assert refused_character(f"before{character}after") == character


@pytest.mark.parametrize("text", ALLOWED)
def test_the_rule_allows_text_in_any_script_with_its_marks(text):
    assert refused_character(text) is None


def test_the_documented_pattern_is_the_rule():
    import re

    pattern = re.compile(PRINTABLE_PATTERN)
    for character in REFUSED:
        assert not pattern.match(f"a{character}b")
    for text in ALLOWED:
        assert pattern.match(text)
