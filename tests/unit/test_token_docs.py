"""SECURITY.md's token format for secret scanners: its regular expression and checksum
code, run as printed, accept every real token and no look-alike."""

import random
import re
from pathlib import Path

from usetix.core import token_format

SECURITY = (Path(__file__).resolve().parents[2] / "SECURITY.md").read_text()


def documented_checker():
    code = re.search(r"## Token format, for secret scanners.*?```python\n(.*?)```", SECURITY, re.S).group(1)
    namespace = {}
    exec(code, namespace)  # our own document's example, run as a reader would
    return namespace["is_usetix_token"], namespace["TOKEN"]


def test_the_documented_regular_expression_is_the_codes():
    printed = re.search(r"Regular expression: `([^`]+)`", SECURITY).group(1)
    _, compiled = documented_checker()
    assert compiled.pattern == printed


def test_the_documented_check_accepts_real_tokens_and_nothing_else():
    is_token, pattern = documented_checker()
    rng = random.Random(16)
    for _ in range(500):
        raw = token_format.generate()
        assert is_token(raw), raw
        assert pattern.search(f"export USETIX_TOKEN={raw}\n").group(0) == raw
        position = rng.randrange(4, len(raw))
        changed = raw[:position] + rng.choice(token_format.ALPHABET.replace(raw[position], "")) + raw[position + 1:]
        assert not is_token(changed), changed  # CRC-32 catches every single-character change
        try:
            token_format.parse(changed)
        except token_format.MalformedToken:
            pass
        else:
            raise AssertionError(f"the server accepts {changed} but the document refuses it")
    assert not is_token("utx_" + "a" * 36)
    assert pattern.search("xutx_" + token_format.generate()[4:]) is None  # no match inside a longer word
