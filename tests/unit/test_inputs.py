"""A page number of thousands of digits is never converted to an int."""

from __future__ import annotations

import pytest

from usetix.core.list_query import MAX_PAGE, BadParameter, page_number, parse_list_query

# --- Page numbers of thousands of digits ------------------------------------------------------

HUGE = "9" * 5000


def test_list_query_never_converts_thousands_of_digits():
    with pytest.raises(BadParameter, match="at most"):
        parse_list_query({"page": HUGE})
    assert parse_list_query({"page": "0" * 5000 + "3"}).page == 3
    with pytest.raises(ValueError, match="not a page number"):
        page_number(HUGE)
    assert page_number("0" * 5000 + "2") == 2
    assert page_number(str(MAX_PAGE)) == MAX_PAGE
