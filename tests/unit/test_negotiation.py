"""The Accept rule that splits JSON (API) requests from HTML ones: no Flask."""

import pytest

from usetix.core.negotiation import prefers_json

from ..helpers import PINNED_CASES


@pytest.mark.parametrize("accept, is_json", PINNED_CASES + [
    ("", False),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
    ("application/json, */*", True),
    ("application/json;q=0.5, */*", False),
    ("application/json;q=0.5, */*;q=0.1", True),
    ("application/json;q=0", False),
    ("APPLICATION/JSON", True),
    ("text/html;q=0.2, application/json;q=0.3", True),
    ("text/*, application/json;q=0.8", False),
    ("application/json;q=abc", False),
    ("application/*", False),
])
def test_accept_rule(accept, is_json):
    assert prefers_json(accept) is is_json
