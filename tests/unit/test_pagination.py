"""API list query parameters: no Flask."""

from datetime import UTC, datetime

import pytest

from usetix.core.list_query import BadParameter, parse_list_query


def test_defaults():
    query = parse_list_query({})
    assert (query.page, query.per_page, query.updated_since, query.offset) == (1, 25, None, 0)


def test_values_and_offset():
    query = parse_list_query({"page": "3", "per_page": "10"})
    assert (query.page, query.per_page, query.offset) == (3, 10, 20)


@pytest.mark.parametrize("args, parameter", [
    ({"page": "0"}, "page"),
    ({"page": "-1"}, "page"),
    ({"page": "abc"}, "page"),
    ({"page": "1.5"}, "page"),
    ({"page": "٣"}, "page"),  # a non-ASCII digit is not a page number
    ({"per_page": "abc"}, "per_page"),
    ({"per_page": "0"}, "per_page"),
    ({"per_page": "101"}, "per_page"),
    ({"updated_since": "yesterday"}, "updated_since"),
    ({"updated_since": "2026-13-01T00:00:00Z"}, "updated_since"),
])
def test_bad_values_name_the_parameter(args, parameter):
    with pytest.raises(BadParameter) as info:
        parse_list_query(args)
    assert info.value.parameter == parameter


def test_updated_since_with_offset_and_naive_is_utc():
    with_z = parse_list_query({"updated_since": "2026-05-01T18:30:00Z"}).updated_since
    with_offset = parse_list_query({"updated_since": "2026-05-01T20:30:00+02:00"}).updated_since
    naive = parse_list_query({"updated_since": "2026-05-01T18:30:00"}).updated_since
    expected = datetime(2026, 5, 1, 18, 30, tzinfo=UTC)
    assert with_z == with_offset == naive == expected
