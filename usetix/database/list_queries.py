"""The statements of the API's lists: every page one indexed query, at any depth.

A list has two orders: its own (events by start, attendees by id) and the order of change
(``updated_at``, then id) that a sync walks. A page is asked for in one of four ways:

- ``FIRST``: the first page, with the list's total riding along as a scalar subquery;
- ``NUMBERED``: ``?page=N``, the same with an OFFSET (the slow way to a deep page);
- ``AFTER`` / ``BEFORE``: the rows after (or before, nearest first) a position, the sort key
  of a row, compared as a row value, so the index seeks to it: a cursor page costs the
  same at any depth, and rows deleted or added before the position shift nothing.

With ``include_deleted`` the live rows and the tombstones (usetix/database/tombstones.py)
are one UNION ALL in the same order, each side with its own indexed conditions.
Timestamps are selected as the stored naive UTC (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .models import UTCDateTime
from .prepared import PreparedSelect
from .tombstones import KNOWN_COLUMNS, OBJECT_TYPES, tombstones_table

FIRST, NUMBERED, AFTER, BEFORE = "first", "numbered", "after", "before"
LIST_ORDER, SYNC_ORDER = "list", "sync"
TIME, NUMBER = "time", "number"


def _naive(column: Any) -> Any:
    return sa.type_coerce(column, column.type.impl_instance) if isinstance(column.type, UTCDateTime) else column


class Page:
    """One way of asking for a page: its statement, and (FIRST, NUMBERED) how to count."""

    def __init__(self, rows: PreparedSelect | sa.Select, count: sa.Select | None, total_in_row: bool):
        self.rows = rows
        self.count = count
        self.total_in_row = total_in_row  # the total is the last column of every row


class ListStatements:
    """The statements of one account-owned list, built on first use and kept."""

    def __init__(self, model: Any, columns: Iterable, list_order: Iterable, *criteria: Any,
                 tombstone_criteria: Iterable | None = None, newest_first: bool = False):
        """``criteria`` narrow the live rows; their tombstones are narrowed by
        ``tombstone_criteria`` when given (criteria not about an event_id: a token's event
        restriction), else by the event_id when there are criteria (an attendee list's event).
        ``newest_first``: the list's own order runs down its columns (a history, which has no
        tombstones); the order of change always runs up."""
        table = model.__table__
        self.newest_first = newest_first
        self.table = table
        columns = [column.property.columns[0] for column in columns]
        self.names = [column.key for column in columns]
        self.selected = [_naive(column).label(column.key) for column in columns]
        list_order = [column.property.columns[0] for column in list_order]
        # A list of rows that leave no tombstones and have no updated_at (the webhooks' delivery
        # log) has the list order only: the view refuses updated_since and include_deleted.
        known = KNOWN_COLUMNS.get(table.name, {})
        self.orders = {LIST_ORDER: (list_order, [known.get(column.key) for column in list_order])}
        if "updated_at" in table.c:
            self.orders[SYNC_ORDER] = ([table.c.updated_at, table.c.id],
                                       [tombstones_table.c.deleted_at, tombstones_table.c.object_id])
        self.key_types = {order: tuple(TIME if isinstance(column.type, UTCDateTime) else NUMBER for column in live)
                          for order, (live, _) in self.orders.items()}
        # Where each order's key sits in a live row of the list (its columns are the list's fields).
        self.key_indexes = {order: tuple(self.names.index(column.key) for column in live)
                            for order, (live, _) in self.orders.items()}
        self.where = (table.c.account_id == sa.bindparam("account_id"), *criteria)
        # The list's own criteria (an attendee list's event, a token's restriction) hold for its tombstones too.
        if tombstone_criteria is None:
            tombstone_criteria = (tombstones_table.c.event_id == sa.bindparam("event_id"),) if criteria else ()
        self.tombstone_where = (tombstones_table.c.account_id == sa.bindparam("account_id"),
                                tombstones_table.c.object_type == OBJECT_TYPES.get(model), *tombstone_criteria)
        self._pages: dict[tuple, Page] = {}

    def page(self, order: str, include_deleted: bool, since: bool, way: str) -> Page:
        key = (order, include_deleted, since, way)
        page = self._pages.get(key)
        if page is None:
            page = self._pages[key] = (self._with_tombstones if include_deleted else self._live)(order, since, way)
        return page

    def _key_condition(self, columns: list, order: str, way: str) -> Any:
        binds = [sa.bindparam(f"key{index}", type_=sa.DateTime() if kind == TIME else sa.Integer())
                 for index, kind in enumerate(self.key_types[order])]
        if len(columns) == 1:
            left, right = columns[0], binds[0]
        else:
            left, right = sa.tuple_(*columns), sa.tuple_(*binds)
        return left > right if (way == AFTER) != self._down(order) else left < right

    def _down(self, order: str) -> bool:
        return self.newest_first and order == LIST_ORDER

    def _conditions(self, columns: list, order: str, since_column: Any, since: bool, way: str) -> list:
        conditions = []
        if since:
            conditions.append(since_column >= sa.bindparam("updated_since"))
        if order == SYNC_ORDER:  # a sync walk lists the changes up to its start, so it ends
            conditions.append(since_column <= sa.bindparam("until", type_=sa.DateTime()))
        if way in (AFTER, BEFORE):
            conditions.append(self._key_condition(columns, order, way))
        return conditions

    @staticmethod
    def _limited(statement: sa.Select, order_by: list, way: str, down: bool = False) -> sa.Select:
        if (way == BEFORE) != down:
            order_by = [column.desc() for column in order_by]
        # An OFFSET always, 0 but for NUMBERED: SQLite's LIMIT comes with one anyway, as a
        # literal that PreparedSelect would not bind.
        return (statement.order_by(*order_by).limit(sa.bindparam("limit", type_=sa.Integer))
                .offset(sa.bindparam("offset", type_=sa.Integer)))

    def _live(self, order: str, since: bool, way: str) -> Page:
        live_order, _ = self.orders[order]
        conditions = (*self.where, *self._conditions(live_order, order, self.table.c.get("updated_at"), since, way))
        selected = list(self.selected)
        count = None
        if way in (FIRST, NUMBERED):
            count = sa.select(sa.func.count()).select_from(self.table).where(*conditions)
            selected.append(count.scalar_subquery())
        statement = self._limited(sa.select(*selected).where(*conditions), live_order, way, self._down(order))
        return Page(PreparedSelect(statement), count, total_in_row=count is not None)

    def _with_tombstones(self, order: str, since: bool, way: str) -> Page:
        live_order, tombstone_order = self.orders[order]
        known = KNOWN_COLUMNS[self.table.name]
        # NULLs cast to the other side's types: PostgreSQL takes a bare NULL in a subquery as text.
        live = sa.select(sa.literal(False).label("deleted"), sa.cast(sa.null(), sa.DateTime()).label("deleted_at"),
                         *self.selected, *(_naive(c).label(f"k{i}") for i, c in enumerate(live_order)))
        dead = sa.select(sa.literal(True).label("deleted"), _naive(tombstones_table.c.deleted_at).label("deleted_at"),
                         *((known[c.name] if c.name in known else sa.cast(sa.null(), c.type)).label(c.name)
                           for c in self.selected),
                         *(_naive(c).label(f"k{i}") for i, c in enumerate(tombstone_order)))
        live = live.where(*self.where, *self._conditions(live_order, order, self.table.c.updated_at, since, way))
        dead = dead.where(*self.tombstone_where,
                          *self._conditions(tombstone_order, order, tombstones_table.c.deleted_at, since, way))
        everything = sa.union_all(live, dead).subquery()
        count = sa.select(sa.func.count()).select_from(everything) if way in (FIRST, NUMBERED) else None
        union = everything
        if way != NUMBERED:
            # Each side ordered and limited on its own, so each reads its index from the
            # position on and stops: no sort of all that follows, at any depth.
            union = sa.union_all(sa.select(self._limited(live, live_order, way).subquery()),
                                 sa.select(self._limited(dead, tombstone_order, way).subquery())).subquery()
        keys = [union.c[f"k{i}"] for i in range(len(live_order))]
        return Page(self._limited(sa.select(union), keys, way), count, total_in_row=False)

    def key_of(self, row: Any, order: str, include_deleted: bool) -> tuple:
        """The sort key of a row this list's statement returned."""
        if include_deleted:
            mapping = row._mapping
            return tuple(mapping[f"k{i}"] for i in range(len(self.key_types[order])))
        return tuple(row[index] for index in self.key_indexes[order])


def sync_bounds(connection: sa.Connection, settle: timedelta) -> tuple[datetime, datetime]:
    """A sync walk's horizon, the time before which every change it may list has committed,
    and its end, now (both naive UTC). The walk lists the changes up to its end; the next
    starts at its horizon.

    A write takes its timestamp before it commits, so a change can commit after a later
    one that a sync has already listed. On PostgreSQL the horizon trails the oldest open
    transaction of the database (``pg_stat_activity``: the API's writes take their
    timestamps after their transaction began, with the token's lookup); on SQLite, where
    writers take turns, it trails now by ``settle`` alone, which covers the wait for the
    write lock. ``settle`` is also the margin for the clocks of the hosts that take the
    timestamps. A change timestamped after the walk's end (a host whose clock is ahead)
    comes in a later walk.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    open_for = timedelta(0)
    if connection.dialect.name == "postgresql":
        # How long the oldest has been open, by the server's clock: the age, not the time,
        # so the app's clock and the server's need not agree.
        open_for = connection.scalar(sa.text(
            "SELECT clock_timestamp() - min(xact_start) FROM pg_stat_activity WHERE datname = current_database()"))
        open_for = max(open_for or timedelta(0), timedelta(0))
    return now - open_for - settle, now
