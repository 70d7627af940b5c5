"""The dashboard audit log's cursor: it round-trips, and one changed, cut or made for another
list is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from usetix.blueprints.dashboard.audit_log_cursor import NEWER, OLDER, BadCursor, Position, decode, encode, scope

KEY = "a secret key"
HERE = scope(7, {"action": "event.updated"})
AT = Position(OLDER, datetime(2026, 12, 7, 15, 44, 11, 123456, tzinfo=UTC), 12345)


@pytest.mark.parametrize("position", [AT, Position(NEWER, datetime(1999, 1, 1, tzinfo=UTC), 1)])
def test_a_cursor_round_trips(position):
    assert decode(KEY, HERE, encode(KEY, HERE, position)) == position


def test_scope_names_the_account_and_the_filters_in_a_fixed_order():
    assert scope(7, {"token": 3, "action": "x"}) == scope(7, {"action": "x", "token": 3}) != scope(8, {"token": 3,
                                                                                                      "action": "x"})


def _edits(cursor: str) -> list[str]:
    """The cursor with each character changed to another, and cut short."""
    out = [cursor[:-1], cursor[1:], cursor + "A", "", "o1.1"]
    for i, ch in enumerate(cursor):
        out.append(cursor[:i] + ("1" if ch != "1" else "2") + cursor[i + 1:])
    return out


def test_an_edited_or_cut_cursor_is_refused():
    cursor = encode(KEY, HERE, AT)
    for edited in _edits(cursor):
        with pytest.raises(BadCursor):
            decode(KEY, HERE, edited)


@pytest.mark.parametrize("other_key, other_scope", [
    ("another key", HERE),
    (KEY, scope(8, {"action": "event.updated"})),  # another account's
    (KEY, scope(7, {})),  # the same account without the filter
    (KEY, scope(7, {"action": "event.created"})),
])
def test_a_cursor_of_another_list_or_key_is_refused(other_key, other_scope):
    with pytest.raises(BadCursor):
        decode(other_key, other_scope, encode(KEY, HERE, AT))


@pytest.mark.parametrize("raw", ["o" + "9" * 18 + ".1.AAAAAAAAAAAAAAAAAAAAAA", "x1.1.AAAAAAAAAAAAAAAAAAAAAA",
                                 "o1.1." + "A" * 5000, "\u0661.1.AAAAAAAAAAAAAAAAAAAAAA"])
def test_garbage_is_refused(raw):
    with pytest.raises(BadCursor):
        decode(KEY, HERE, raw)


@pytest.mark.parametrize("payload", [["x", 1, 1], ["o", "1", 1], ["o", 1, True], ["o", 10**30, 1], {"o": 1}])
def test_a_signed_cursor_that_names_no_position_is_refused(payload):
    from itsdangerous import URLSafeSerializer

    from usetix.blueprints.dashboard.audit_log_cursor import _SALT

    with pytest.raises(BadCursor):
        decode(KEY, HERE, URLSafeSerializer(KEY, salt=_SALT + HERE).dumps(payload))
