"""What the door's screens share, the API and the dashboard alike: reissuing a ticket's code,
an event's check-in counts (and the tag that changes with them), its last refused scans."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..core import ticket_codes
from .models import Attendee, ReissuedTicketCode, Scan

attendees_table = Attendee.__table__
scans_table = Scan.__table__
reissued_table = ReissuedTicketCode.__table__


def reissue(connection: sa.Connection, attendee: sa.ColumnElement[bool], attendee_id: int, account_id: int,
            old_code: str, now: datetime, returning: list, params: dict | None = None) -> Any:
    """Give the attendee (``attendee``: its WHERE) a new code if its code is still ``old_code``,
    and keep the old one, to be refused as ``ticket_reissued``; the changed row (``returning``'s
    columns), or None when another reissue came first. The caller audits and commits."""
    row = connection.execute(
        sa.update(attendees_table).where(attendee, attendees_table.c.ticket_code == old_code)
        .values(ticket_code=ticket_codes.new_code(), updated_at=now, version=attendees_table.c.version + 1)
        .returning(*returning), params or {}).first()
    if row is not None:
        connection.execute(sa.insert(reissued_table).values(account_id=account_id, attendee_id=attendee_id,
                                                            code=old_code, reissued_at=now))
    return row


# Counts by ticket type, and what tells a change of them: the newest change of the event's
# attendees (a check-in or its undoing bumps updated_at) and their highest id (a new one).
_COUNTS = (
    sa.select(attendees_table.c.ticket_type, sa.func.count().label("total"),
              sa.func.count(attendees_table.c.checked_in_at).label("checked_in"),
              sa.func.max(attendees_table.c.updated_at).label("changed"),
              sa.func.max(attendees_table.c.id).label("newest"))
    .where(attendees_table.c.event_id == sa.bindparam("event_id"),
           attendees_table.c.account_id == sa.bindparam("account_id"))
    .group_by(attendees_table.c.ticket_type).order_by(attendees_table.c.ticket_type)
)


def check_in_counts(connection: sa.Connection, account_id: int, event_id: int) -> tuple[dict, str]:
    """``{"checked_in", "total", "by_ticket_type"}`` of the event, and a tag that changes
    whenever they may have (a deletion changes a total)."""
    rows = connection.execute(_COUNTS, {"event_id": event_id, "account_id": account_id}).all()
    by_type = {row.ticket_type: {"checked_in": row.checked_in, "total": row.total} for row in rows}
    counts = {"checked_in": sum(row.checked_in for row in rows), "total": sum(row.total for row in rows),
              "by_ticket_type": by_type}
    state = repr([(row.ticket_type, row.total, row.checked_in, str(row.changed), row.newest) for row in rows])
    return counts, hashlib.blake2b(state.encode(), digest_size=12).hexdigest()


def refused_scans(connection: sa.Connection, account_id: int, event_id: int, limit: int) -> list:
    """The event's last refused scans, newest first, with the attendee's name when known."""
    return connection.execute(
        sa.select(scans_table.c.id, scans_table.c.result, scans_table.c.code_tail, scans_table.c.scanned_at,
                  scans_table.c.source, attendees_table.c.name.label("attendee_name"))
        .select_from(scans_table)
        .outerjoin(attendees_table, sa.and_(attendees_table.c.id == scans_table.c.attendee_id,
                                            attendees_table.c.account_id == scans_table.c.account_id))
        .where(scans_table.c.event_id == event_id, scans_table.c.account_id == account_id,
               scans_table.c.result != "admitted")
        .order_by(scans_table.c.id.desc()).limit(limit)
    ).all()
