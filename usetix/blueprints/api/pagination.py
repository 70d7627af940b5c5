"""The API's paginated lists: one statement per page, the RFC 8288 Link header, and the
400 for a bad list parameter."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from flask import Response, request

from ...core.list_query import BadParameter, ListQuery, parse_list_query
from ...database.connection import request_connection
from ...database.models import UTCDateTime
from ...database.prepared import PreparedSelect
from ...database.tombstones import TombstoneList
from ...web.responses import error_response, json_response
from .blueprint import bp


@bp.errorhandler(BadParameter)
def bad_parameter(exc: BadParameter) -> Response:
    return error_response(400, "invalid_parameter", exc.message, parameter=exc.parameter)


def _page_links(query: ListQuery, total: int) -> str | None:
    """RFC 8288 Link header with rel="prev" / rel="next" for this list.

    The targets are relative references (the path and query; RFC 8288 §3.1 resolves them
    against the request's URL): a link never names a host, so no Host header a client
    sends can end up in one. Only the list's own parameters are carried over: anything
    else in the query string is the client's and has no say in our links.
    """
    def link(page: int, rel: str) -> str:
        params = {"per_page": query.per_page, "page": page}
        for name in ("updated_since", "include_deleted"):
            if name in request.args:
                params[name] = request.args[name]
        return f'<{quote(request.root_path + request.path)}?{urlencode(params)}>; rel="{rel}"'

    links = []
    if query.page > 1:
        links.append(link(query.page - 1, "prev"))
    if query.offset + query.per_page < total:
        links.append(link(query.page + 1, "next"))
    return ", ".join(links) or None


class AccountList:
    """One list endpoint over an account-owned table, its statements built once.

    A page is one query, the total riding along as a scalar subquery; only a page past
    the end, with no row to carry the total, costs a separate COUNT. Timestamps are read
    as the stored naive UTC and encoded as UTC. Why it is built so: docs/performance.md.
    """

    def __init__(self, model: Any, columns: Iterable, order_by: Iterable, *criteria: Any,
                 tombstone_criteria: tuple | None = None):
        # for ?include_deleted=true; tombstone_criteria: what holds for the tombstones, when
        # the criteria are not about an event_id (a token's event restriction)
        self.tombstones = TombstoneList(model, columns, order_by, *criteria, tombstone_criteria=tombstone_criteria)
        table = model.__table__
        columns = [column.property.columns[0] for column in columns]
        self.names = [column.key for column in columns]
        selected = [sa.type_coerce(c, c.type.impl_instance).label(c.key) if isinstance(c.type, UTCDateTime) else c
                    for c in columns]
        order_by = [column.property.columns[0] for column in order_by]
        where = (table.c.account_id == sa.bindparam("account_id"), *criteria)
        self.statements = {}
        for since in (False, True):
            conditions = (*where, table.c.updated_at >= sa.bindparam("updated_since")) if since else where
            count = sa.select(sa.func.count()).select_from(table).where(*conditions)
            page = (sa.select(*selected, count.scalar_subquery()).where(*conditions).order_by(*order_by)
                    .limit(sa.bindparam("limit", type_=sa.Integer)).offset(sa.bindparam("offset", type_=sa.Integer)))
            self.statements[since] = (PreparedSelect(page), count)

    def response(self, account_id: int, **params: Any) -> Response:
        """One page as ``{"data": [...], "meta": {...}}``, with a Link header to its neighbours."""
        query = parse_list_query(request._get_current_object().args)
        page, count = self.statements[query.updated_since is not None]
        params["account_id"] = account_id
        if query.updated_since is not None:
            params["updated_since"] = query.updated_since
        connection = request_connection()
        if query.include_deleted:
            rows, total = self.tombstones.page(connection, query, params)
            links = _page_links(query, total)
            body = {"data": rows, "meta": {"page": query.page, "per_page": query.per_page, "total": total}}
            return json_response(body, headers={"Link": links} if links else None)
        rows = page.rows(connection, {**params, "limit": query.per_page, "offset": query.offset})
        if rows:
            total = rows[0][-1]
        elif query.page == 1:
            total = 0
        else:
            total = connection.scalar(count, params)
        names = self.names
        body = {
            "data": [dict(zip(names, row)) for row in rows],  # zip drops the trailing total
            "meta": {"page": query.page, "per_page": query.per_page, "total": total},
        }
        links = _page_links(query, total)
        return json_response(body, headers={"Link": links} if links else None)

