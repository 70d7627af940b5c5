"""Tombstones: what the API keeps of a deleted event or attendee, so that a client that syncs
learns of the deletion (``include_deleted=true``), and how long it keeps them.

A tombstone is ``{"id", "deleted": true, "deleted_at"}`` in a list, sorted with the live
rows (usetix/database/list_queries.py). Tombstones are kept ``TOMBSTONE_RETENTION_DAYS``
(``usetix purge-tombstones`` deletes older ones); a sync that asks for deletions from
before that answers ``410 full_sync_required`` instead of missing some.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from .models import Attendee, Event, Tombstone

tombstones_table = Tombstone.__table__
# What a tombstone knows of each list's columns: the id, and what the list sorts by.
KNOWN_COLUMNS = {
    "events": {"id": tombstones_table.c.object_id, "starts_at": tombstones_table.c.starts_at,
               "event_id": tombstones_table.c.event_id},
    "attendees": {"id": tombstones_table.c.object_id, "event_id": tombstones_table.c.event_id},
}
OBJECT_TYPES = {Event: "event", Attendee: "attendee"}
# Rows deleted per statement by purge(): each batch is its own short transaction.
PURGE_BATCH_SIZE = 5000


def purge(engine: sa.Engine, deleted_before: datetime) -> int:
    """Delete the tombstones of deletions before ``deleted_before``, in batches; the count."""
    batch = (sa.select(tombstones_table.c.id).where(tombstones_table.c.deleted_at < deleted_before)
             .limit(PURGE_BATCH_SIZE).scalar_subquery())
    purged = 0
    while True:
        with engine.begin() as connection:
            deleted = connection.execute(sa.delete(tombstones_table).where(tombstones_table.c.id.in_(batch))).rowcount
        purged += deleted
        if deleted < PURGE_BATCH_SIZE:
            return purged
