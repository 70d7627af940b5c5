"""Lists that show deletions: live rows and tombstones in one page, for clients that sync.

A client that syncs with ``updated_since`` cannot see a row that is gone; the API keeps a
tombstone for every event and attendee it deletes, and ``include_deleted=true`` merges them
into the list, in the list's own order, as ``{"id", "deleted": true, "deleted_at"}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from .models import Attendee, Event, Tombstone, UTCDateTime

_tombs = Tombstone.__table__
# What a tombstone knows of each list's columns: the id, and what the list sorts by.
_KNOWN = {
    "events": {"id": _tombs.c.object_id, "starts_at": _tombs.c.starts_at, "event_id": _tombs.c.event_id},
    "attendees": {"id": _tombs.c.object_id, "event_id": _tombs.c.event_id},
}
_TYPES = {Event: "event", Attendee: "attendee"}


class TombstoneList:
    """The statements of one account-owned list with its tombstones (not the hot path)."""

    def __init__(self, model: Any, columns: Iterable, order_by: Iterable, *criteria: Any,
                 tombstone_criteria: tuple | None = None):
        table = model.__table__
        self.names = [column.key for column in columns]
        known = _KNOWN[table.name]
        live_columns = [sa.literal(False).label("deleted"),
                        sa.type_coerce(sa.null(), UTCDateTime()).label("deleted_at")]
        tomb_columns = [sa.literal(True).label("deleted"), _tombs.c.deleted_at]
        for name in self.names:
            live_columns.append(table.c[name].label(name))
            tomb_columns.append(known[name].label(name) if name in known else sa.null().label(name))
        # The list's own criteria (an attendee list's event) hold for its tombstones too.
        tomb_criteria = [sa.literal_column("1") == 1]
        if criteria:
            tomb_criteria = [_tombs.c.event_id == sa.bindparam("event_id")]
        if tombstone_criteria is not None:  # the caller's own, for criteria not about an event_id
            tomb_criteria = list(tombstone_criteria)
        self.live = sa.select(*live_columns).where(table.c.account_id == sa.bindparam("account_id"), *criteria)
        self.dead = sa.select(*tomb_columns).where(_tombs.c.account_id == sa.bindparam("account_id"),
                                                   _tombs.c.object_type == _TYPES[model], *tomb_criteria)
        self.table = table
        self.order_by = [column.key for column in order_by]

    def page(self, connection: sa.Connection, query: Any, params: dict[str, Any]) -> tuple[list[dict], int]:
        live, dead = self.live, self.dead
        if query.updated_since is not None:
            live = live.where(self.table.c.updated_at >= sa.bindparam("updated_since"))
            dead = dead.where(_tombs.c.deleted_at >= sa.bindparam("updated_since"))
        union = sa.union_all(live, dead).subquery()
        rows = connection.execute(
            sa.select(union).order_by(*(union.c[name] for name in self.order_by))
            .limit(query.per_page).offset(query.offset), params
        ).all()
        total = connection.scalar(sa.select(sa.func.count()).select_from(union), params)
        data = [
            {"id": row.id, "deleted": True, "deleted_at": row.deleted_at} if row.deleted
            else {name: row._mapping[name] for name in self.names}
            for row in rows
        ]
        return data, total
