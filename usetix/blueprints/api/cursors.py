"""The opaque ``cursor`` of the API's lists: a position in one list, signed with the app's key.

A cursor holds everything its page needs (the list and whose it is, the position, the page
size, the filters, the page's ordinal, and for a sync walk the horizon it must not pass), so
nothing is stored per cursor. It is signed with itsdangerous (Flask's own signing library)
under the app's ``SECRET_KEY``: a changed or truncated cursor fails the signature, and one
made for another account, list or event fails the check of what it names. Both are the
same ``400 invalid_parameter``.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer

from ...core.list_query import MAX_CURSOR_LENGTH, BadParameter

_SALT = "usetix.api.list-cursor"

AFTER = "after"  # rows after the position: a rel="next" page
BEFORE = "before"  # rows before it, nearest first: a rel="prev" page


@dataclass(frozen=True)
class ListCursor:
    list: str  # "events", "attendees"
    account: int
    scope: int | None  # the event of an attendee list
    order: str  # "list" (the list's own order) or "sync" (order of change)
    key: tuple  # the position: the sort key of the row it follows or precedes
    direction: str  # AFTER or BEFORE
    per_page: int
    page: int  # the ordinal of the page it leads to
    include_deleted: bool
    # A sync walk: where the next starts, and the end of the changes it lists
    # (usetix/database/list_queries.py, sync_bounds). None on a sync_cursor: its walk takes its own.
    horizon: datetime | None = None
    until: datetime | None = None


def _serializer() -> URLSafeSerializer:
    app = current_app._get_current_object()
    serializer = app.extensions.get("usetix_list_cursors")
    if serializer is None:
        serializer = app.extensions["usetix_list_cursors"] = URLSafeSerializer(app.secret_key, salt=_SALT)
    return serializer


def _encode_value(value: Any) -> Any:
    return {"t": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.fromisoformat(value["t"])
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a cursor key is a number or a time")
    return value


def encode(cursor: ListCursor) -> str:
    return _signed(_serializer(), cursor)


@functools.lru_cache(maxsize=1024)
def _signed(serializer: URLSafeSerializer, cursor: ListCursor) -> str:
    # Deterministic (no timestamp in the signature): a list unchanged between requests hands
    # out the same cursor, so the first page's rel="next" is signed once, not per request.
    fields = asdict(cursor)
    fields["key"] = [_encode_value(value) for value in cursor.key]
    for name in ("horizon", "until"):
        fields[name] = _encode_value(fields[name])
    return serializer.dumps(fields)


def decode(raw: str, *, list_name: str, account: int, scope: int | None) -> ListCursor:
    """The cursor in ``raw`` if it is ours, intact, and made for this list of this account;
    else BadParameter (the same answer for each: a client learns nothing from which)."""
    cursor = _decoded(raw)
    if (cursor.list, cursor.account, cursor.scope) != (list_name, account, scope):
        raise invalid_cursor()
    return cursor


def _decoded(raw: str) -> ListCursor:
    """The cursor in ``raw`` if it is ours and intact, whatever list it names."""
    if len(raw) > MAX_CURSOR_LENGTH:
        raise invalid_cursor()
    try:
        fields = _serializer().loads(raw)
        key = tuple(_decode_value(value) for value in fields.pop("key"))
        bounds = {name: fields.pop(name) for name in ("horizon", "until")}
        bounds = {name: None if value is None else _decode_value(value) for name, value in bounds.items()}
        cursor = ListCursor(key=key, **bounds, **fields)
    except (BadData, TypeError, ValueError, KeyError, AttributeError):
        raise invalid_cursor() from None
    # Only the one spelling we make: base64 lets a last character vary in bits it ignores.
    if encode(cursor) != raw:
        raise invalid_cursor()
    return cursor


def invalid_cursor() -> BadParameter:
    return BadParameter("cursor", "cursor is not a cursor of this list: follow the Link header's links, "
                                  "or start again from the list's first page.")
