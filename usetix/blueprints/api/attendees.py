"""An event's attendees: the list, one attendee (with its ETag), create, update (merge
patch), delete. An attendee is reached through its event: another account's id, or an
attendee of another event through this event's path, is the same 404 as a missing one."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, g, url_for
from sqlalchemy.exc import IntegrityError

from ...api_contract import bodies as schemas
from ...core import audit_actions as actions
from ...core.permissions import requires
from ...core.ticket_codes import new_code
from ...database.connection import request_connection
from ...database.models import Attendee, Event, Tombstone, account_select, utcnow
from ...web.responses import error_response, not_found
from ...webhooks.outbox import emit_webhook_event
from .audit import audit
from .authentication import token_ids
from .blueprint import bp
from .conditional_requests import PATCH_ATTEMPTS, check_if_match, json_with_etag, lost_race, row_etag, single_object
from .pagination import AccountList
from .refused import Refused
from .request_body import changed_fields
from .transaction import write_view

attendees_table = Attendee.__table__

# An attendee's fields in the API's answers: the contract's (usetix/api_contract/bodies.py), in its order.
ATTENDEE_FIELDS = tuple(schemas.Attendee.model_fields)
ATTENDEE_SELECTED = [attendees_table.c[name] for name in ATTENDEE_FIELDS] + [attendees_table.c.version]

ATTENDEES = AccountList("attendees", Attendee, [getattr(Attendee, name) for name in ATTENDEE_FIELDS], (Attendee.id,),
                        attendees_table.c.event_id == sa.bindparam("event_id"), scope="event_id")
# Built once, with bound parameters (docs/performance.md).
ATTENDEE_WHERE = (attendees_table.c.id == sa.bindparam("by_attendee_id"),
                  attendees_table.c.event_id == sa.bindparam("by_event_id"),
                  attendees_table.c.account_id == sa.bindparam("by_account_id"))
ATTENDEE_BY_ID = sa.select(*ATTENDEE_SELECTED).where(*ATTENDEE_WHERE)


def attendee_json(row: Any) -> dict:
    mapping = row._mapping
    return {name: mapping[name] for name in ATTENDEE_FIELDS}


def attendee_ids(account_id: int, event_id: int, attendee_id: int) -> dict[str, int]:
    """The bound values of ATTENDEE_WHERE."""
    return {"by_attendee_id": attendee_id, "by_event_id": event_id, "by_account_id": account_id}


def attendee_row(connection: sa.Connection, account_id: int, event_id: int, attendee_id: int) -> Any:
    return connection.execute(ATTENDEE_BY_ID, attendee_ids(account_id, event_id, attendee_id)).first()


@bp.get("/events/<row_id:event_id>/attendees")
@requires("attendees:read")
def attendees(event_id: int) -> Response:
    account_id = g.principal.account_id
    owned = request_connection().scalar(account_select(Event, account_id, Event.id).where(Event.id == event_id))
    if owned is None:
        return not_found()
    return ATTENDEES.response(account_id, event_id=event_id)


@bp.post("/events/<row_id:event_id>/attendees")
@requires("attendees:write")
@write_view(schemas.AttendeeCreate)
def create_attendee(event_id: int, body: schemas.AttendeeCreate) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    events = Event.__table__
    status = connection.scalar(
        sa.select(events.c.status).where(events.c.id == event_id, events.c.account_id == account_id))
    if status is None:
        return not_found()
    if status == "cancelled":
        return error_response(409, "event_cancelled", "This event is cancelled: it takes no new attendees.")
    now = utcnow()
    try:
        row = connection.execute(
            sa.insert(attendees_table).values(account_id=account_id, event_id=event_id, checked_in=False,
                                              created_at=now, updated_at=now, version=1, ticket_code=new_code(),
                                              **body.model_dump())
            .returning(*ATTENDEE_SELECTED)
        ).one()
    except IntegrityError:  # the event was deleted since we looked
        raise Refused(not_found()) from None
    audit(connection, actions.ATTENDEE_CREATED, "attendee", row.id, row.name)
    emit_webhook_event(connection, account_id, "attendee.created", attendee_json(row))
    location = url_for("api.attendee", event_id=event_id, attendee_id=row.id)
    return json_with_etag(attendee_json(row), row_etag(row), 201, {"Location": location})


@bp.get("/events/<row_id:event_id>/attendees/<row_id:attendee_id>")
@requires("attendees:read")
def attendee(event_id: int, attendee_id: int) -> Response:
    account_id, _ = token_ids()
    return single_object(attendee_row(request_connection(), account_id, event_id, attendee_id), attendee_json)


@bp.patch("/events/<row_id:event_id>/attendees/<row_id:attendee_id>")
@requires("attendees:write")
@write_view(schemas.AttendeePatch, merge_patch=True)
def update_attendee(event_id: int, attendee_id: int, body: schemas.AttendeePatch) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    patch = body.model_dump(exclude_unset=True)
    for _ in range(PATCH_ATTEMPTS):
        row = attendee_row(connection, account_id, event_id, attendee_id)
        if row is None:
            return not_found()
        check_if_match(row_etag(row))
        changes = changed_fields(row, patch)
        if not changes:
            return json_with_etag(attendee_json(row), row_etag(row))
        updated = connection.execute(
            sa.update(attendees_table)
            .where(*ATTENDEE_WHERE, attendees_table.c.version == row.version)
            .values(**changes, updated_at=utcnow(), version=attendees_table.c.version + 1)
            .returning(*ATTENDEE_SELECTED),
            attendee_ids(account_id, event_id, attendee_id),
        ).first()
        if updated is not None:
            audit(connection, actions.ATTENDEE_UPDATED, "attendee", updated.id, updated.name)
            emit_webhook_event(connection, account_id, "attendee.updated", attendee_json(updated))
            return json_with_etag(attendee_json(updated), row_etag(updated))
        connection.rollback()
    return lost_race()


@bp.delete("/events/<row_id:event_id>/attendees/<row_id:attendee_id>")
@requires("attendees:write")
@write_view()
def delete_attendee(event_id: int, attendee_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    row = attendee_row(connection, account_id, event_id, attendee_id)
    if row is None:
        return not_found()
    check_if_match(row_etag(row))
    deleted = connection.execute(
        sa.delete(attendees_table).where(*ATTENDEE_WHERE, attendees_table.c.version == row.version),
        attendee_ids(account_id, event_id, attendee_id),
    ).rowcount
    if not deleted:
        raise Refused(lost_race())
    connection.execute(sa.insert(Tombstone.__table__).values(
        account_id=account_id, object_type="attendee", object_id=attendee_id, event_id=event_id,
        deleted_at=utcnow()))
    audit(connection, actions.ATTENDEE_DELETED, "attendee", attendee_id, row.name)
    emit_webhook_event(connection, account_id, "attendee.deleted", {"id": attendee_id, "deleted": True})
    return Response(status=204)
