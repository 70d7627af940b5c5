"""The API's lists: cursor pages, numbered pages, sync walks, the RFC 8288 Link header, and
the 400 for a bad list parameter.

- The first page (no ``cursor``, no ``page``) carries ``meta.total``; its ``rel="next"``
  is a cursor (usetix/blueprints/api/cursors.py). Following ``rel="next"`` visits each row
  that exists for the whole walk once, whatever is created, changed or deleted meanwhile:
  a cursor page is the rows after a position, not after a count of rows.
- ``?page=N`` answers as it always did (an OFFSET, with ``meta.total`` and page links).
- ``?updated_since=`` walks in the order of change; the last page of such a walk carries
  ``meta.sync_cursor``, which lists what changed since, at any later time. Its position
  never passes the walk's horizon (usetix/database/list_queries.py, ``sync_bounds``): a
  change whose transaction was still open comes in the next sync, perhaps twice, never not
  at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from flask import Response, current_app, request

from ...core.list_query import BadParameter, ListQuery, parse_list_query
from ...database.connection import request_connection
from ...database.list_queries import (
    AFTER,
    BEFORE,
    FIRST,
    LIST_ORDER,
    NUMBERED,
    SYNC_ORDER,
    TIME,
    ListStatements,
    Page,
    sync_bounds,
)
from ...database.prepared import PreparedSelect
from ...web.responses import error_response, json_response
from . import cursors
from .blueprint import bp
from .cursors import ListCursor


@bp.errorhandler(BadParameter)
def bad_parameter(exc: BadParameter) -> Response:
    return error_response(400, "invalid_parameter", exc.message, parameter=exc.parameter)


class FullSyncRequired(Exception):
    """A sync asked for deletions from before the oldest tombstone kept."""


@bp.errorhandler(FullSyncRequired)
def full_sync_required(exc: FullSyncRequired) -> Response:
    return error_response(410, "full_sync_required",
                          "Deletions from that long ago are no longer kept: sync again from the start "
                          "(the list without updated_since or cursor), then from its sync_cursor.")


def _path() -> str:
    return quote(request.root_path + request.path)


def _link(query_string: str, rel: str) -> str:
    """One RFC 8288 link. Its target is a relative reference (the path and query; RFC 8288
    §3.1 resolves it against the request's URL): a link never names a host, so no Host
    header a client sends can end up in one."""
    return f'<{_path()}?{query_string}>; rel="{rel}"'


def _numbered_links(query: ListQuery, total: int, carried: tuple[str, ...] = ()) -> str | None:
    """Page links of a numbered page. Only the list's own parameters are carried over:
    anything else in the query string is the client's and has no say in our links."""
    def link(page: int, rel: str) -> str:
        params = {"per_page": query.per_page, "page": page}
        for name in ("updated_since", "include_deleted", *carried):
            if name in request.args:
                params[name] = request.args[name]
        return _link(urlencode(params), rel)

    links = []
    if query.page > 1:
        links.append(link(query.page - 1, "prev"))
    if query.offset + query.per_page < total:
        links.append(link(query.page + 1, "next"))
    return ", ".join(links) or None


def _cursor_link(cursor: ListCursor, rel: str, carried: tuple[str, ...] = ()) -> str:
    kept = {name: request.args[name] for name in carried if name in request.args}
    return _link(urlencode({**kept, "cursor": cursors.encode(cursor)}), rel)


class AccountList:
    """One list endpoint over an account-owned table (its statements: ListStatements).

    ``scope`` names the URL value that narrows the list (an attendee list's ``event_id``):
    a cursor is good only for the list it was made for. ``carried`` names the view's own
    query parameters that choose the list (the delivery log's ``status``, the scans'
    ``result``): its links, numbered or by cursor, keep them.
    """

    def __init__(self, name: str, model: Any, columns: Iterable, order_by: Iterable, *criteria: Any,
                 scope: str | None = None, tombstone_criteria: tuple | None = None, newest_first: bool = False,
                 present: Callable[[list[dict]], list[dict]] | None = None, carried: tuple[str, ...] = ()):
        """``present`` turns a page's rows (dicts of the columns) into what the list answers
        (a history's rows with the names of what they point to)."""
        self.name = name
        self.scope = scope
        self.present = present
        self.carried = carried
        self.statements = ListStatements(model, columns, order_by, *criteria, tombstone_criteria=tombstone_criteria,
                                         newest_first=newest_first)

    def response(self, account_id: int, **params: Any) -> Response:
        """One page as ``{"data": [...], "meta": {...}}``, with a Link header to its neighbours."""
        query = parse_list_query(request._get_current_object().args)
        params["account_id"] = account_id
        if query.cursor is not None:
            return self._cursor_page(query, params)
        order = SYNC_ORDER if query.updated_since is not None else LIST_ORDER
        bounds = None
        if query.updated_since is not None:
            params["updated_since"] = query.updated_since
            if query.numbered:  # not a walk: every change there is
                params["until"] = datetime.max
            else:
                bounds = _sync_bounds()
                params["until"] = bounds[1]
        statements = self.statements
        page = statements.page(order, query.include_deleted, query.updated_since is not None,
                               NUMBERED if query.numbered else FIRST)
        rows, total = self._rows_and_total(page, params, query)
        data = self._data(rows, query.include_deleted)
        meta: dict[str, Any] = {"page": query.page, "per_page": query.per_page, "total": total}
        if query.numbered:
            links = _numbered_links(query, total, self.carried)
        else:
            links = None
            if total > query.per_page and rows:
                cursor = self._cursor(params, order, query.include_deleted, query.per_page, bounds)
                links = _cursor_link(cursor(statements.key_of(rows[-1], order, query.include_deleted), AFTER, 2),
                                     "next", self.carried)
            elif order == SYNC_ORDER:
                cursor = self._cursor(params, order, query.include_deleted, query.per_page, bounds)
                meta["sync_cursor"] = _sync_cursor(cursor)
        return json_response({"data": data, "meta": meta}, headers={"Link": links} if links else None)

    def _cursor_page(self, query: ListQuery, params: dict[str, Any]) -> Response:
        scope = params.get(self.scope) if self.scope else None
        at = cursors.decode(query.cursor, list_name=self.name, account=params["account_id"], scope=scope)
        statements = self.statements
        if at.order not in statements.key_types or not _key_fits(at.key, statements.key_types[at.order]):
            raise cursors.invalid_cursor()
        per_page = query.per_page or at.per_page
        bounds = None
        if at.order == SYNC_ORDER:
            if at.horizon is None:  # a sync_cursor: a walk starts here
                if at.include_deleted:
                    _check_kept(at.key[0].replace(tzinfo=UTC))
                bounds = _sync_bounds()
            else:
                bounds = (at.horizon, at.until)
            params["until"] = bounds[1]
        page = statements.page(at.order, at.include_deleted, False, at.direction)
        keys = {f"key{index}": value for index, value in enumerate(at.key)}
        rows = self._fetch(page, {**params, **keys, "limit": per_page + 1, "offset": 0})
        more = len(rows) > per_page  # beyond this page, in the direction asked
        rows = rows[:per_page]
        if at.direction == BEFORE:
            rows.reverse()
        ordinal = at.page if at.direction == AFTER or more else 1
        cursor = self._cursor(params, at.order, at.include_deleted, per_page, bounds)
        first = statements.key_of(rows[0], at.order, at.include_deleted) if rows else None
        last = statements.key_of(rows[-1], at.order, at.include_deleted) if rows else None
        links = []
        if rows and (ordinal > 1 if at.direction == AFTER else more):
            links.append(_cursor_link(cursor(first, BEFORE, max(ordinal - 1, 1)), "prev", self.carried))
        meta: dict[str, Any] = {"page": ordinal, "per_page": per_page}
        if at.direction == BEFORE or more:
            if rows:
                links.append(_cursor_link(cursor(last, AFTER, ordinal + 1), "next", self.carried))
        elif at.order == SYNC_ORDER:
            meta["sync_cursor"] = _sync_cursor(cursor)
        body = {"data": self._data(rows, at.include_deleted), "meta": meta}
        return json_response(body, headers={"Link": ", ".join(links)} if links else None)

    def _cursor(self, params: dict[str, Any], order: str, include_deleted: bool, per_page: int,
                bounds: tuple[datetime, datetime] | None) -> Any:
        """A maker of this list's cursors: ``cursor(key, direction, page)``."""
        scope = params.get(self.scope) if self.scope else None
        horizon, until = bounds or (None, None)

        def make(key: tuple, direction: str, page: int) -> ListCursor:
            return ListCursor(list=self.name, account=params["account_id"], scope=scope, order=order, key=key,
                              direction=direction, per_page=per_page, page=page, include_deleted=include_deleted,
                              horizon=horizon, until=until)
        return make

    def _rows_and_total(self, page: Page, params: dict[str, Any], query: ListQuery) -> tuple[list, int]:
        rows = self._fetch(page, {**params, "limit": query.per_page, "offset": query.offset})
        if page.total_in_row:
            if rows:
                return rows, rows[0][-1]
            if query.page == 1:
                return rows, 0
        # A page past the end has no row to carry the total; a list with tombstones counts apart.
        return rows, request_connection().scalar(page.count, params)

    @staticmethod
    def _fetch(page: Page, params: dict[str, Any]) -> list:
        connection = request_connection()
        if isinstance(page.rows, PreparedSelect):
            return page.rows.rows(connection, params)
        return connection.execute(page.rows, params).all()

    def _data(self, rows: list, include_deleted: bool) -> list[dict]:
        names = self.statements.names
        if include_deleted:
            return [{"id": row.id, "deleted": True, "deleted_at": row.deleted_at} if row.deleted
                    else {name: row._mapping[name] for name in names} for row in rows]
        data = [dict(zip(names, row)) for row in rows]  # zip drops a trailing total
        return data if self.present is None else self.present(data)


def _sync_cursor(cursor: Any) -> str:
    """The end of a sync walk: a cursor to what changes after the walk's horizon.

    Not after its last row: a change whose transaction was open when the walk began may
    commit later with an earlier timestamp, but never one before the horizon. Nor can a
    change before the horizon be missing from the walk: it had committed when the walk
    began. So the next walk starts at the horizon, whatever the last row was; a change
    between the horizon and the last row comes twice. The next walk takes a horizon of its own.
    """
    at_horizon = cursor(None, AFTER, 1)
    return cursors.encode(replace(at_horizon, key=(at_horizon.horizon, 0), horizon=None, until=None))


def _key_fits(key: tuple, kinds: tuple) -> bool:
    return len(key) == len(kinds) and all(
        isinstance(value, datetime) if kind == TIME else isinstance(value, int) for value, kind in zip(key, kinds))


def _sync_bounds() -> tuple[datetime, datetime]:
    settle = timedelta(seconds=float(current_app.config["SYNC_SETTLE_SECONDS"]))
    return sync_bounds(request_connection(), settle)


def _check_kept(since: datetime) -> None:
    """Refuse a sync cursor older than the tombstones kept (Google Calendar's rule): the
    walk would silently lack a deletion. A cursor is as old as the sync that made it."""
    kept = timedelta(days=float(current_app.config["TOMBSTONE_RETENTION_DAYS"]))
    if since < datetime.now(UTC) - kept:
        raise FullSyncRequired()

