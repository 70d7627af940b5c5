"""Events: the list, one event (with its ETag), create, update (merge patch), delete.

Each write is one conditional statement where a race could bite: a PATCH is
``UPDATE … WHERE version = <the version read>``, so two concurrent requests cannot both
win. Another account's id is the same 404 as a missing one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, g, url_for
from sqlalchemy.exc import IntegrityError

from ...api_contract import bodies as schemas
from ...core import audit_actions as actions
from ...core.permissions import requires
from ...database.connection import request_connection
from ...database.id_lists import in_id_list
from ...database.models import Attendee, Event, Tombstone, utcnow
from ...web.responses import error_response, not_found
from ...webhooks.outbox import emit_webhook_event
from .audit import audit
from .authentication import token_ids
from .blueprint import bp
from .conditional_requests import PATCH_ATTEMPTS, check_if_match, json_with_etag, lost_race, row_etag, single_object
from .pagination import AccountList
from .refused import Refused
from .request_body import changed_fields, revalidate
from .transaction import write_view

events_table = Event.__table__

# An event's fields in the API's answers: the contract's (usetix/api_contract/bodies.py), in its order.
EVENT_FIELDS = tuple(schemas.Event.model_fields)
EVENT_SELECTED = [events_table.c[name] for name in EVENT_FIELDS] + [events_table.c.version]

EVENTS = AccountList("events", Event, [getattr(Event, name) for name in EVENT_FIELDS], (Event.starts_at, Event.id))
# The list of a token restricted to some events: its stored restriction bound as it is, on
# every page and way of asking (cursors, sync walks, tombstones). The same list name as
# EVENTS: a cursor made by another token of the account pages on through this list's
# statements, so it never shows an event outside the restriction.
RESTRICTED_EVENTS = AccountList(
    "events", Event, [getattr(Event, name) for name in EVENT_FIELDS], (Event.starts_at, Event.id),
    in_id_list(events_table.c.id, sa.bindparam("event_ids", type_=sa.Text)),
    tombstone_criteria=(in_id_list(Tombstone.__table__.c.object_id, sa.bindparam("event_ids", type_=sa.Text)),))
# Built once, with bound parameters (docs/performance.md).
EVENT_BY_ID = sa.select(*EVENT_SELECTED).where(
    events_table.c.id == sa.bindparam("by_event_id"), events_table.c.account_id == sa.bindparam("by_account_id"))


def event_json(row: Any) -> dict:
    return {name: row._mapping[name] for name in EVENT_FIELDS}


def _event_row(connection: sa.Connection, account_id: int, event_id: int) -> Any:
    return connection.execute(EVENT_BY_ID, {"by_event_id": event_id, "by_account_id": account_id}).first()


@bp.get("/events")
@requires("events:read")
def events() -> Response:
    principal = g.principal
    restriction = principal.token.event_ids
    if restriction is None:
        return EVENTS.response(principal.account_id)
    return RESTRICTED_EVENTS.response(principal.account_id, event_ids=restriction)


@bp.post("/events")
@requires("events:write", unrestricted=True)
@write_view(schemas.EventCreate)
def create_event(body: schemas.EventCreate) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    now = utcnow()
    row = connection.execute(
        sa.insert(events_table).values(account_id=account_id, created_at=now, updated_at=now, version=1,
                                       **body.model_dump()).returning(*EVENT_SELECTED)
    ).one()
    audit(connection, actions.EVENT_CREATED, "event", row.id, row.title)
    emit_webhook_event(connection, account_id, "event.created", event_json(row))
    # Relative, like the Link header's targets: no Host header a client sends ends up in it.
    return json_with_etag(event_json(row), row_etag(row), 201, {"Location": url_for("api.event", event_id=row.id)})


@bp.get("/events/<row_id:event_id>")
@requires("events:read")
def event(event_id: int) -> Response:
    account_id, _ = token_ids()
    return single_object(_event_row(request_connection(), account_id, event_id), event_json)


@bp.patch("/events/<row_id:event_id>")
@requires("events:write")
@write_view(schemas.EventPatch, merge_patch=True)
def update_event(event_id: int, body: schemas.EventPatch) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    patch = body.model_dump(exclude_unset=True)
    for _ in range(PATCH_ATTEMPTS):
        row = _event_row(connection, account_id, event_id)
        if row is None:
            return not_found()
        check_if_match(row_etag(row))
        changes = changed_fields(row, patch)
        if not changes:
            return json_with_etag(event_json(row), row_etag(row))
        revalidate(schemas.EventCreate, {**{name: row._mapping[name] for name in schemas.EventCreate.model_fields},
                                         **changes})
        updated = connection.execute(
            sa.update(events_table)
            .where(events_table.c.id == event_id, events_table.c.account_id == account_id,
                   events_table.c.version == row.version)
            .values(**changes, updated_at=utcnow(), version=events_table.c.version + 1)
            .returning(*EVENT_SELECTED)
        ).first()
        if updated is not None:
            action = actions.EVENT_CANCELLED if changes.get("status") == "cancelled" else actions.EVENT_UPDATED
            audit(connection, action, "event", updated.id, updated.title)
            emit_webhook_event(connection, account_id, "event.updated", event_json(updated))
            return json_with_etag(event_json(updated), row_etag(updated))
        connection.rollback()  # another write won the race: judge the patch against its result
    return lost_race()


@bp.delete("/events/<row_id:event_id>")
@requires("events:write")
@write_view()
def delete_event(event_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    row = _event_row(connection, account_id, event_id)
    if row is None:
        return not_found()
    check_if_match(row_etag(row))
    attendees = Attendee.__table__
    if connection.scalar(sa.select(attendees.c.id).where(attendees.c.event_id == event_id).limit(1)) is not None:
        return _has_attendees()
    try:
        deleted = connection.execute(
            sa.delete(events_table)
            .where(events_table.c.id == event_id, events_table.c.account_id == account_id,
                   events_table.c.version == row.version)
        ).rowcount
    except IntegrityError:  # an attendee was added since we looked (the foreign key holds)
        raise Refused(_has_attendees()) from None
    if not deleted:
        raise Refused(lost_race())
    connection.execute(sa.insert(Tombstone.__table__).values(
        account_id=account_id, object_type="event", object_id=event_id, starts_at=row.starts_at,
        deleted_at=utcnow()))
    audit(connection, actions.EVENT_DELETED, "event", event_id, row.title)
    emit_webhook_event(connection, account_id, "event.deleted", {"id": event_id, "deleted": True})
    return Response(status=204)


def _has_attendees() -> Response:
    return error_response(409, "event_has_attendees",
                          "This event has attendees, so it cannot be deleted: cancel it instead "
                          '(PATCH with {"status": "cancelled"}).')
