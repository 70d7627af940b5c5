"""How deeply a JSON body may nest arrays and objects, checked before it is parsed. No Flask.

Every JSON body a request sends is screened here first (the API's writes, the leak
report): a body nested past ``MAX_JSON_DEPTH`` is refused as ``400 invalid_json`` before
any parser recurses into it (Python's ``json`` raises RecursionError a few hundred levels
down inside a request). No body of ours nests past 2.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 32
TOO_DEEP = f"The body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep."

# A string, escapes included, or the rest of an unterminated one: brackets in it are text.
# Possessive, and matching to the end when unclosed, so the scan stays linear.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")
_OPENING = frozenset(b"[{")


def nests_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the UTF-8 JSON text ``body`` opens more than ``limit`` arrays or objects
    inside one another; brackets inside strings do not count. Malformed text is scanned
    the same way (its parser refuses it afterwards)."""
    if body.count(b"[") + body.count(b"{") <= limit:  # every real body: no scan at all
        return False
    depth = 0
    for byte in _STRING.sub(b"", body).translate(None, _NOT_A_BRACKET):
        if byte in _OPENING:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
