"""The one rule for text typed into Usetix (API fields and dashboard forms). No Flask.

Refused: C0 controls and DEL (no field takes a newline: titles, names, emails, ticket
types and token descriptions are one line), C1 controls (U+0085, NEL, is a newline to
some readers), the line and paragraph separators U+2028/U+2029, and the bidirectional
embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069, which reorder the
text after them (a description that reads backwards in the audit log) and can leak into
the text around them on a page. The marks U+200E, U+200F and U+061C stay allowed: they
are how right-to-left text is typed correctly, they only settle the direction of the
neutral characters next to them, and they cannot reverse a run of letters.
"""

from __future__ import annotations

import re

# One character class, written in the syntax both Python's re and JSON Schema
# (ECMA-262) patterns read, so the OpenAPI document states the same rule.
_REFUSED_CLASS = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_REFUSED = re.compile(f"[{_REFUSED_CLASS}]")
# A whole value free of them, as a JSON Schema pattern.
PRINTABLE_PATTERN = f"^[^{_REFUSED_CLASS}]+$"
REFUSAL = "control characters, line separators and bidirectional overrides are not allowed"


def refused_character(text: str) -> str | None:
    """The first character of ``text`` the rule refuses, or None."""
    found = _REFUSED.search(text)
    return found.group() if found else None
