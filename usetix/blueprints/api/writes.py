"""The API's writes (events, attendees, check-in) and its single-object reads with ETags.

Each write is one conditional statement where a race could bite: a check-in is
``UPDATE … WHERE checked_in_at IS NULL``, a PATCH ``UPDATE … WHERE version = <the version
read>``, so two concurrent requests cannot both win. Another account's id, or an attendee
of another event through this event's path, is the same 404 as a missing one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, url_for
from sqlalchemy.exc import IntegrityError

from ...api_contract import bodies as schemas
from ...database.connection import request_connection
from ...database.models import Attendee, Event, Tombstone, utcnow
from ...web.responses import error_response, not_found
from . import bp
from .writing import (
    Refused,
    audit,
    check_if_match,
    etag,
    json_with_etag,
    lost_race,
    not_modified,
    revalidate,
    token_ids,
    write_view,
)

events = Event.__table__
attendees = Attendee.__table__
tombstones = Tombstone.__table__

EVENT_FIELDS = ("id", "title", "starts_at", "ends_at", "venue", "status", "created_at", "updated_at")
ATTENDEE_FIELDS = ("id", "event_id", "name", "email", "ticket_type", "checked_in", "checked_in_at",
                   "created_at", "updated_at")
EVENT_SELECTED = [events.c[name] for name in EVENT_FIELDS] + [events.c.version]
ATTENDEE_SELECTED = [attendees.c[name] for name in ATTENDEE_FIELDS] + [attendees.c.version]
# A PATCH that loses a race without If-Match reads the row again and retries this often.
PATCH_ATTEMPTS = 3


def _event_json(row: Any) -> dict:
    return {name: row._mapping[name] for name in EVENT_FIELDS}


def _attendee_json(row: Any) -> dict:
    return {name: row._mapping[name] for name in ATTENDEE_FIELDS}


def _tag(row: Any) -> str:
    return etag(row.id, row.version, row.created_at)


# The statements every request of a kind sends are built once, with bound parameters:
# building one per request, and SQLAlchemy's cache key of it, cost more than running it.
EVENT_BY_ID = sa.select(*EVENT_SELECTED).where(
    events.c.id == sa.bindparam("by_event_id"), events.c.account_id == sa.bindparam("by_account_id"))
ATTENDEE_WHERE = (attendees.c.id == sa.bindparam("by_attendee_id"), attendees.c.event_id == sa.bindparam("by_event_id"),
                  attendees.c.account_id == sa.bindparam("by_account_id"))
ATTENDEE_BY_ID = sa.select(*ATTENDEE_SELECTED).where(*ATTENDEE_WHERE)
# One statement decides: of many scanners at once, exactly one finds checked_in_at empty.
CHECK_IN = (
    sa.update(attendees).where(*ATTENDEE_WHERE, attendees.c.checked_in_at.is_(None))
    .values(checked_in=True, checked_in_at=sa.bindparam("when"), updated_at=sa.bindparam("now"),
            version=attendees.c.version + 1)
    .returning(*ATTENDEE_SELECTED)
)
UNDO_CHECK_IN = (
    sa.update(attendees).where(*ATTENDEE_WHERE, attendees.c.checked_in_at.is_not(None))
    .values(checked_in=False, checked_in_at=None, updated_at=sa.bindparam("now"), version=attendees.c.version + 1)
    .returning(attendees.c.id, attendees.c.name)
)


def _event_row(connection: sa.Connection, account_id: int, event_id: int) -> Any:
    return connection.execute(EVENT_BY_ID, {"by_event_id": event_id, "by_account_id": account_id}).first()


def _attendee_ids(account_id: int, event_id: int, attendee_id: int) -> dict[str, int]:
    """The bound values of ATTENDEE_WHERE."""
    return {"by_attendee_id": attendee_id, "by_event_id": event_id, "by_account_id": account_id}


def _attendee_row(connection: sa.Connection, account_id: int, event_id: int, attendee_id: int) -> Any:
    return connection.execute(ATTENDEE_BY_ID, _attendee_ids(account_id, event_id, attendee_id)).first()


def _single_object(row: Any, to_json: Any) -> Response:
    """A single-object GET's answer: 404, 304 when If-None-Match names its ETag, or the object."""
    if row is None:
        return not_found()
    tag = _tag(row)
    return not_modified(tag) or json_with_etag(to_json(row), tag)


def _changed(row: Any, patch: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in patch.items() if row._mapping[name] != value}


# -- events ----------------------------------------------------------------------------

@bp.post("/events")
@write_view(schemas.EventCreate)
def create_event(body: schemas.EventCreate) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    now = utcnow()
    row = connection.execute(
        sa.insert(events).values(account_id=account_id, created_at=now, updated_at=now, version=1,
                                 **body.model_dump()).returning(*EVENT_SELECTED)
    ).one()
    audit(connection, "event.created", "event", row.id, row.title)
    # Relative, like the Link header's targets: no Host header a client sends ends up in it.
    return json_with_etag(_event_json(row), _tag(row), 201, {"Location": url_for("api.event", event_id=row.id)})


@bp.get("/events/<int:event_id>")
def event(event_id: int) -> Response:
    account_id, _ = token_ids()
    return _single_object(_event_row(request_connection(), account_id, event_id), _event_json)


@bp.patch("/events/<int:event_id>")
@write_view(schemas.EventPatch, merge_patch=True)
def update_event(event_id: int, body: schemas.EventPatch) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    patch = body.model_dump(exclude_unset=True)
    for _ in range(PATCH_ATTEMPTS):
        row = _event_row(connection, account_id, event_id)
        if row is None:
            return not_found()
        check_if_match(_tag(row))
        changes = _changed(row, patch)
        if not changes:
            return json_with_etag(_event_json(row), _tag(row))
        revalidate(schemas.EventCreate, {**{name: row._mapping[name] for name in schemas.EventCreate.model_fields},
                                         **changes})
        updated = connection.execute(
            sa.update(events)
            .where(events.c.id == event_id, events.c.account_id == account_id, events.c.version == row.version)
            .values(**changes, updated_at=utcnow(), version=events.c.version + 1)
            .returning(*EVENT_SELECTED)
        ).first()
        if updated is not None:
            action = "event.cancelled" if changes.get("status") == "cancelled" else "event.updated"
            audit(connection, action, "event", updated.id, updated.title)
            return json_with_etag(_event_json(updated), _tag(updated))
        connection.rollback()  # another write won the race: judge the patch against its result
    return lost_race()


@bp.delete("/events/<int:event_id>")
@write_view()
def delete_event(event_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    row = _event_row(connection, account_id, event_id)
    if row is None:
        return not_found()
    check_if_match(_tag(row))
    if connection.scalar(sa.select(attendees.c.id).where(attendees.c.event_id == event_id).limit(1)) is not None:
        return _has_attendees()
    try:
        deleted = connection.execute(
            sa.delete(events)
            .where(events.c.id == event_id, events.c.account_id == account_id, events.c.version == row.version)
        ).rowcount
    except IntegrityError:  # an attendee was added since we looked (the foreign key holds)
        raise Refused(_has_attendees()) from None
    if not deleted:
        raise Refused(lost_race())
    connection.execute(sa.insert(tombstones).values(account_id=account_id, object_type="event", object_id=event_id,
                                                    starts_at=row.starts_at, deleted_at=utcnow()))
    audit(connection, "event.deleted", "event", event_id, row.title)
    return Response(status=204)


def _has_attendees() -> Response:
    return error_response(409, "event_has_attendees",
                          "This event has attendees, so it cannot be deleted: cancel it instead "
                          '(PATCH with {"status": "cancelled"}).')


# -- attendees -------------------------------------------------------------------------

@bp.post("/events/<int:event_id>/attendees")
@write_view(schemas.AttendeeCreate)
def create_attendee(event_id: int, body: schemas.AttendeeCreate) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    status = connection.scalar(
        sa.select(events.c.status).where(events.c.id == event_id, events.c.account_id == account_id))
    if status is None:
        return not_found()
    if status == "cancelled":
        return error_response(409, "event_cancelled", "This event is cancelled: it takes no new attendees.")
    now = utcnow()
    try:
        row = connection.execute(
            sa.insert(attendees).values(account_id=account_id, event_id=event_id, checked_in=False,
                                        created_at=now, updated_at=now, version=1, **body.model_dump())
            .returning(*ATTENDEE_SELECTED)
        ).one()
    except IntegrityError:  # the event was deleted since we looked
        raise Refused(not_found()) from None
    audit(connection, "attendee.created", "attendee", row.id, row.name)
    location = url_for("api.attendee", event_id=event_id, attendee_id=row.id)
    return json_with_etag(_attendee_json(row), _tag(row), 201, {"Location": location})


@bp.get("/events/<int:event_id>/attendees/<int:attendee_id>")
def attendee(event_id: int, attendee_id: int) -> Response:
    account_id, _ = token_ids()
    return _single_object(_attendee_row(request_connection(), account_id, event_id, attendee_id), _attendee_json)


@bp.patch("/events/<int:event_id>/attendees/<int:attendee_id>")
@write_view(schemas.AttendeePatch, merge_patch=True)
def update_attendee(event_id: int, attendee_id: int, body: schemas.AttendeePatch) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    patch = body.model_dump(exclude_unset=True)
    for _ in range(PATCH_ATTEMPTS):
        row = _attendee_row(connection, account_id, event_id, attendee_id)
        if row is None:
            return not_found()
        check_if_match(_tag(row))
        changes = _changed(row, patch)
        if not changes:
            return json_with_etag(_attendee_json(row), _tag(row))
        updated = connection.execute(
            sa.update(attendees)
            .where(*ATTENDEE_WHERE, attendees.c.version == row.version)
            .values(**changes, updated_at=utcnow(), version=attendees.c.version + 1)
            .returning(*ATTENDEE_SELECTED),
            _attendee_ids(account_id, event_id, attendee_id),
        ).first()
        if updated is not None:
            audit(connection, "attendee.updated", "attendee", updated.id, updated.name)
            return json_with_etag(_attendee_json(updated), _tag(updated))
        connection.rollback()
    return lost_race()


@bp.delete("/events/<int:event_id>/attendees/<int:attendee_id>")
@write_view()
def delete_attendee(event_id: int, attendee_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    row = _attendee_row(connection, account_id, event_id, attendee_id)
    if row is None:
        return not_found()
    check_if_match(_tag(row))
    deleted = connection.execute(
        sa.delete(attendees).where(*ATTENDEE_WHERE, attendees.c.version == row.version),
        _attendee_ids(account_id, event_id, attendee_id),
    ).rowcount
    if not deleted:
        raise Refused(lost_race())
    connection.execute(sa.insert(tombstones).values(account_id=account_id, object_type="attendee",
                                                    object_id=attendee_id, event_id=event_id, deleted_at=utcnow()))
    audit(connection, "attendee.deleted", "attendee", attendee_id, row.name)
    return Response(status=204)


# -- check-in --------------------------------------------------------------------------

@bp.post("/events/<int:event_id>/attendees/<int:attendee_id>/check_in")
@write_view(schemas.CheckIn, optional=True)
def check_in(event_id: int, attendee_id: int, body: schemas.CheckIn) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    now = utcnow()
    row = connection.execute(CHECK_IN, {**_attendee_ids(account_id, event_id, attendee_id),
                                        "when": body.checked_in_at or now, "now": now}).first()
    if row is None:
        current = _attendee_row(connection, account_id, event_id, attendee_id)
        if current is None:
            return not_found()
        when = current.checked_in_at or now  # None only if undone in between: it was checked in a moment ago
        return error_response(409, "already_checked_in",
                              f"Already checked in at {when.strftime('%Y-%m-%dT%H:%M:%SZ')}.", checked_in_at=when)
    audit(connection, "attendee.checked_in", "attendee", row.id, row.name)
    return json_with_etag(_attendee_json(row), _tag(row), 201)


@bp.delete("/events/<int:event_id>/attendees/<int:attendee_id>/check_in")
@write_view()
def undo_check_in(event_id: int, attendee_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    row = connection.execute(UNDO_CHECK_IN, {**_attendee_ids(account_id, event_id, attendee_id),
                                             "now": utcnow()}).first()
    if row is None:
        if _attendee_row(connection, account_id, event_id, attendee_id) is None:
            return not_found()
        return error_response(409, "not_checked_in", "This attendee is not checked in.")
    audit(connection, "attendee.check_in_undone", "attendee", row.id, row.name)
    return Response(status=204)
