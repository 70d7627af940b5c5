"""Checking an attendee in, and undoing it.

One statement decides: ``UPDATE … WHERE checked_in_at IS NULL``, so of many scanners at
once exactly one finds it empty; the others are 409 with the time it happened. On
PostgreSQL that UPDATE and its audit record are one statement (``AuditedUpdate``), run in
autocommit without an Idempotency-Key: the token's lookup and that statement, two round
trips (docs/performance.md, "PostgreSQL: round trips"). A token without ``attendees:read``
(the check-in preset) gets the attendee without its email.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, g

from ...api_contract import bodies as schemas
from ...core import audit_actions as actions
from ...core.permissions import requires
from ...database.connection import request_connection
from ...database.models import utcnow
from ...web.responses import error_response, not_found
from .attendees import (
    ATTENDEE_FIELDS,
    ATTENDEE_SELECTED,
    ATTENDEE_WHERE,
    attendee_ids,
    attendee_json,
    attendee_row,
    attendees_table,
)
from .audit import AuditedUpdate
from .authentication import token_ids
from .blueprint import bp
from .conditional_requests import json_with_etag, row_etag
from .transaction import write_view

CHECK_IN = AuditedUpdate(
    sa.update(attendees_table).where(*ATTENDEE_WHERE, attendees_table.c.checked_in_at.is_(None))
    .values(checked_in=True, checked_in_at=sa.bindparam("when"), updated_at=sa.bindparam("now"),
            version=attendees_table.c.version + 1)
    .returning(*ATTENDEE_SELECTED),
    actions.ATTENDEE_CHECKED_IN, "attendee", "name", webhook="attendee.checked_in", webhook_fields=ATTENDEE_FIELDS,
)
UNDO_CHECK_IN = AuditedUpdate(
    sa.update(attendees_table).where(*ATTENDEE_WHERE, attendees_table.c.checked_in_at.is_not(None))
    .values(checked_in=False, checked_in_at=None, updated_at=sa.bindparam("now"),
            version=attendees_table.c.version + 1)
    .returning(*ATTENDEE_SELECTED),
    actions.ATTENDEE_CHECK_IN_UNDONE, "attendee", "name", webhook="attendee.check_in_undone",
    webhook_fields=ATTENDEE_FIELDS,
)


@bp.post("/events/<row_id:event_id>/attendees/<row_id:attendee_id>/check_in")
@requires("check_in:write")
@write_view(schemas.CheckIn, optional=True, one_statement=True)
def check_in(event_id: int, attendee_id: int, body: schemas.CheckIn) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    now = utcnow()
    row = CHECK_IN.run(connection, {**attendee_ids(account_id, event_id, attendee_id),
                                    "when": body.checked_in_at or now, "now": now}, now)
    if row is None:
        current = attendee_row(connection, account_id, event_id, attendee_id)
        if current is None:
            return not_found()
        when = current.checked_in_at or now  # None only if undone in between: it was checked in a moment ago
        return error_response(409, "already_checked_in",
                              f"Already checked in at {when.strftime('%Y-%m-%dT%H:%M:%SZ')}.", checked_in_at=when)
    return json_with_etag(door_view(attendee_json(row)), row_etag(row), 201)


def door_view(attendee: dict) -> dict:
    """The attendee as this token may see it: without ``email`` and ``ticket_code`` for a
    token that may not read attendees (the door needs a name and a ticket type, not contact
    data, nor a code it could print a ticket with)."""
    if "attendees:read" not in g.principal.token.scopes:
        del attendee["email"]
        del attendee["ticket_code"]
    return attendee


@bp.delete("/events/<row_id:event_id>/attendees/<row_id:attendee_id>/check_in")
@requires("check_in:write")
@write_view(one_statement=True)
def undo_check_in(event_id: int, attendee_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    now = utcnow()
    row = UNDO_CHECK_IN.run(connection, {**attendee_ids(account_id, event_id, attendee_id), "now": now}, now)
    if row is None:
        if attendee_row(connection, account_id, event_id, attendee_id) is None:
            return not_found()
        return error_response(409, "not_checked_in", "This attendee is not checked in.")
    return Response(status=204)
