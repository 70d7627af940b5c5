"""The door: a scanner redeems the code it read off a ticket (online), or sends the scans it
queued offline as a batch; an admin reissues a ticket; the door display polls the live
counts; the office reads the history of every scan.

A redeem and a batch run the same steps (:func:`scan`), a redeem being a batch of one:

1. the nonces seen before (a batch's nonces, a redeem's Idempotency-Key): one statement;
2. the door's event and what each code names (an attendee's current code, or a code a
   reissue replaced): one statement for every code of the batch;
3. each scan's result, decided in the order of ``scanned_at`` (a batch that holds two scans
   of one ticket admits the earlier);
4. the scans recorded, one INSERT for the batch that claims their nonces (a twin batch sent
   at once finds them claimed and replays them); a redeem without a nonce on PostgreSQL
   that admits records its scan in the admission's statement (ADMIT_RECORDED);
5. the admissions written as the conditional UPDATE of a check-in (``checked_in_at IS NULL``
   online: of many scanners at once exactly one admits; an offline scan also takes the
   check-in over from a later one: the earliest ``scanned_at`` is the check-in), with their
   audit records and webhook messages: a redeem's one as one audited UPDATE, a batch's all
   as one UPDATE, one audit INSERT and one outbox INSERT, whatever its size (tickets
   locked in id order); a scan that lost its race is refused after all;
6. the scans whose check-in an earlier offline scan took over become ``already_checked_in``.

A code the token may not see (another account's, or of an event outside its restriction)
is ``unknown_code``, exactly as a code that exists nowhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from flask import Response, g, request
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql

from ...api_contract import bodies as schemas
from ...core import audit_actions as actions
from ...core import ticket_codes
from ...core.list_query import BadParameter
from ...core.permissions import event_ids, requires
from ...database.connection import request_connection
from ...database.id_lists import in_id_list, in_pair_list
from ...database.models import ApiToken, Event, ReissuedTicketCode, Scan, UTCDateTime, utcnow
from ...database.tickets import check_in_counts, reissue
from ...database.writer_queue import take_turn
from ...web.responses import error_response, json_response, not_found
from ...webhooks.outbox import emit_webhook_event
from .attendees import (
    ATTENDEE_FIELDS,
    ATTENDEE_SELECTED,
    ATTENDEE_WHERE,
    attendee_ids,
    attendee_json,
    attendee_row,
    attendees_table,
)
from .audit import AuditedBulkUpdate, AuditedUpdate, audit, check_token
from .authentication import token_ids
from .blueprint import bp
from .check_in import door_view
from .conditional_requests import json_with_etag, lost_race, not_modified, row_etag
from .pagination import AccountList
from .refused import Refused
from .transaction import AnswerLater, write_view

events_table = Event.__table__
scans_table = Scan.__table__
reissued_table = ReissuedTicketCode.__table__
tokens_table = ApiToken.__table__

ADMITTED = "admitted"
ALREADY_CHECKED_IN = "already_checked_in"
TICKET_REISSUED = "ticket_reissued"
EVENT_CANCELLED = "event_cancelled"
WRONG_EVENT = "wrong_event"
UNKNOWN_CODE = "unknown_code"
NONCE_REUSED = "nonce_reused"
INVALID = "invalid"
MESSAGES = {
    ALREADY_CHECKED_IN: "This ticket was already checked in.",
    TICKET_REISSUED: "This ticket was replaced by a new one: ask for the new ticket.",
    EVENT_CANCELLED: "This event is cancelled.",
    WRONG_EVENT: "This ticket is for another event: send the person to its door.",
    UNKNOWN_CODE: "No ticket has this code.",
    NONCE_REUSED: "This nonce (Idempotency-Key) was sent before with another code or at another event; "
                  "use a new one for a new scan.",
}

# -- the lookups -----------------------------------------------------------------------------

_EVENT_LABELS = [events_table.c.id.label("found_event_id"), events_table.c.status.label("event_status"),
                 events_table.c.title.label("event_title")]
_account = sa.bindparam("account_id")


def _attendee_labels(attendees: Any) -> list:
    return [attendees.c[name].label(name) for name in (*ATTENDEE_FIELDS, "version")]


def _keyed(table: sa.Table, key: str, values: str, dialect: str, one: bool) -> tuple[Any, Any, Any]:
    """The account's rows of ``table`` whose ``key`` (unique in the account) is one of the
    list bound as ``values`` (``one``: the one value bound as ``values``): (what to select
    from, its columns, the conditions).

    On PostgreSQL each value of a list is looked up alone in the (account_id, key) index: the
    list as one array, each of its values a LIMIT 1 subquery. Planned as ``key IN (...)``, a
    fresh table (no statistics) or a generic plan read all of the account's rows and filtered
    them; and one statement serves every batch size. One value is an equality: PostgreSQL
    keeps the generic plan of its prepared statement, where it plans the array's anew at
    every execution (0.4 ms: a generic plan's unnest is costed at more rows than one)."""
    if one:
        return table, table, [table.c.account_id == _account, table.c[key] == sa.bindparam(values)]
    if dialect != "postgresql":
        return table, table, [table.c.account_id == _account, table.c[key].in_(sa.bindparam(values, expanding=True))]
    wanted = (sa.func.unnest(sa.bindparam(values, type_=postgresql.ARRAY(sa.String)))
              .table_valued("value").render_derived(name=f"wanted_{table.name}"))
    found = (sa.select(table).where(table.c.account_id == _account, table.c[key] == wanted.c.value)
             .limit(1).lateral(f"found_{table.name}"))
    return sa.join(wanted, found, sa.true()), found, []


def _lookup(dialect: str, one: bool) -> sa.CompoundSelect:
    """The door's event, each code's attendee (by its code, or by a code a reissue replaced), in
    one statement: the first branch's columns type the rest."""
    by_code, attendees, code_found = _keyed(attendees_table, "ticket_code", "codes", dialect, one)
    by_reissued, reissued, reissued_found = _keyed(reissued_table, "code", "codes", dialect, one)
    # The reissue's attendee by its id. Its account checked, but on PostgreSQL not by an
    # equality: the planner would derive attendees.account_id = :account_id from it and may
    # start from the account's attendees (all of them) by the prefix of an index.
    same_account = (attendees_table.c.account_id.is_not_distinct_from(reissued.c.account_id)
                    if dialect == "postgresql" else attendees_table.c.account_id == reissued.c.account_id)
    return sa.union_all(
        sa.select(sa.literal("current").label("kind"), attendees.c.ticket_code.label("code"),
                  *_attendee_labels(attendees), *_EVENT_LABELS)
        .select_from(by_code).join(events_table, events_table.c.id == attendees.c.event_id)
        .where(*code_found),
        sa.select(sa.literal("reissued"), reissued.c.code, *_attendee_labels(attendees_table), *_EVENT_LABELS)
        .select_from(by_reissued)
        .join(attendees_table, sa.and_(attendees_table.c.id == reissued.c.attendee_id, same_account))
        .join(events_table, events_table.c.id == attendees_table.c.event_id)
        .where(*reissued_found),
        sa.select(sa.literal("door"), sa.cast(sa.null(), sa.String),
                  *(sa.cast(sa.null(), column.type).label(column.name)
                    for column in _attendee_labels(attendees_table)), *_EVENT_LABELS)
        .where(events_table.c.id == sa.bindparam("event_id"), events_table.c.account_id == _account),
    )


def _seen_nonces(dialect: str, one: bool) -> sa.Select:
    """The scans of nonces seen before, with their attendee as it is now (and its event)."""
    by_nonce, scans, nonce_found = _keyed(scans_table, "nonce", "nonces", dialect, one)
    return (
        sa.select(scans.c.nonce, scans.c.code_digest, scans.c.event_id.label("door_id"),
                  scans.c.result, scans.c.checked_in_at.label("scan_checked_in_at"),
                  scans.c.attendee_id, *_attendee_labels(attendees_table), *_EVENT_LABELS)
        .select_from(by_nonce)
        .outerjoin(attendees_table, attendees_table.c.id == scans.c.attendee_id)
        .outerjoin(events_table, events_table.c.id == attendees_table.c.event_id)
        .where(*nonce_found)
    )


# By dialect and whether they look up one value (bound alone) or a list: :func:`_by_keys`.
_VARIANTS = [(dialect, one) for dialect in ("postgresql", "sqlite") for one in (False, True)]
LOOKUP = {variant: _lookup(*variant) for variant in _VARIANTS}
SEEN_NONCES = {variant: _seen_nonces(*variant) for variant in _VARIANTS}


def _by_keys(connection: sa.Connection, statements: dict, values: list[str]) -> tuple[Any, Any]:
    """Which of ``statements`` (LOOKUP or SEEN_NONCES) looks up ``values``, and the value to bind."""
    one = len(values) == 1
    return statements[connection.dialect.name, one], values[0] if one else values

_check_in_values = {"checked_in": True, "checked_in_at": sa.bindparam("when"), "updated_at": sa.bindparam("now"),
                    "version": attendees_table.c.version + 1}
_by_code = (attendees_table.c.id == sa.bindparam("by_attendee_id"),
            attendees_table.c.account_id == sa.bindparam("by_account_id"),
            attendees_table.c.ticket_code == sa.bindparam("by_code"))
# An online admission: only a ticket not checked in yet.
_admit_online = (sa.update(attendees_table).where(*_by_code, attendees_table.c.checked_in_at.is_(None))
                 .values(**_check_in_values).returning(*ATTENDEE_SELECTED))
ADMIT = AuditedUpdate(_admit_online, actions.ATTENDEE_CHECKED_IN, "attendee", "name", webhook="attendee.checked_in",
                      webhook_fields=ATTENDEE_FIELDS)
_SCAN_OF_ADMISSION = ["account_id", "event_id", "token_id", "source", "result", "code_tail", "code_digest",
                      "scanned_at", "received_at", "updated_at", "attendee_id", "checked_in_at"]


def _scan_of_admission(changed: Any) -> sa.Insert:
    return scans_table.insert().from_select(_SCAN_OF_ADMISSION, sa.select(
        sa.bindparam("scan_account_id", type_=sa.Integer), sa.bindparam("scan_event_id", type_=sa.Integer),
        sa.bindparam("scan_token_id", type_=sa.Integer), sa.literal("online", sa.String),
        sa.literal(ADMITTED, sa.String), sa.bindparam("scan_code_tail", type_=sa.String),
        sa.bindparam("scan_code_digest", type_=sa.String), sa.bindparam("scan_at", type_=UTCDateTime),
        sa.bindparam("scan_received_at", type_=UTCDateTime), sa.bindparam("scan_received_at", type_=UTCDateTime),
        changed.c.id, changed.c.checked_in_at,
    )).returning(scans_table.c.id)


# A redeem without a nonce on PostgreSQL: the admission and its scan in one statement (the
# scan only if the ticket was admitted); the connection is in autocommit (write_view's
# one_statement), so the redeem is the token's lookup, the door's, and this statement.
ADMIT_RECORDED = AuditedUpdate(_admit_online, actions.ATTENDEE_CHECKED_IN, "attendee", "name",
                               webhook="attendee.checked_in", webhook_fields=ATTENDEE_FIELDS,
                               also_insert=_scan_of_admission)
# A batch's offline admissions, one statement for all: each recorded scan's ticket (by the
# attendee and the code it was found by) at the scan's time, if not checked in yet or checked
# in later than the scan (it takes the check-in over). The tickets are locked first in id
# order (on PostgreSQL; one lock order for concurrent batches).
# The tickets to lock are found by id alone: the lookup found them in the account, and by
# the account SQLite would read all of its attendees (a prefix of a unique index).
_locked = (sa.select(attendees_table.c.id)
           .where(in_id_list(attendees_table.c.id, sa.bindparam("attendee_ids", type_=sa.Text)))
           .order_by(attendees_table.c.id).with_for_update().cte("locked"))
# The batch's admitted scans, read first (materialized: each then finds its attendee by id).
_admitted = (sa.select(scans_table.c.attendee_id, scans_table.c.scanned_at)
             .where(in_id_list(scans_table.c.id, sa.bindparam("scan_ids", type_=sa.Text)))
             .cte("admitted").prefix_with("MATERIALIZED"))
ADMIT_EARLIER = AuditedBulkUpdate(
    sa.update(attendees_table)
    .where(attendees_table.c.id == _admitted.c.attendee_id,
           # Not an equality: PostgreSQL would read the account's attendees (all of them) by
           # the prefix of an index, not each scan's attendee by its id.
           attendees_table.c.account_id.is_not_distinct_from(sa.bindparam("by_account_id")),
           attendees_table.c.id.in_(sa.select(_locked.c.id)),
           in_pair_list(attendees_table.c.id, attendees_table.c.ticket_code,
                        sa.bindparam("attendee_codes", type_=sa.Text)),
           sa.or_(attendees_table.c.checked_in_at.is_(None),
                  attendees_table.c.checked_in_at > _admitted.c.scanned_at))
    .values(checked_in=True, checked_in_at=_admitted.c.scanned_at, updated_at=sa.bindparam("now"),
            version=attendees_table.c.version + 1)
    .returning(*ATTENDEE_SELECTED),
    attendees_table, actions.ATTENDEE_CHECKED_IN, "attendee", "name", webhook="attendee.checked_in",
    webhook_fields=ATTENDEE_FIELDS,
)
_holder = attendees_table.alias("holder")
_holder_checked_in_at = (sa.select(_holder.c.checked_in_at).where(_holder.c.id == scans_table.c.attendee_id)
                         .scalar_subquery())
# The admitted scans whose check-in an earlier scan took over: refused after all, by that
# check-in. By the attendees alone (the account's, just admitted): by the account SQLite
# would read every scan of the account.
SUPERSEDED = (
    sa.update(scans_table)
    .where(in_id_list(scans_table.c.attendee_id, sa.bindparam("attendee_ids", type_=sa.Text)),
           scans_table.c.result == ADMITTED, scans_table.c.checked_in_at > _holder_checked_in_at)
    .values(result=ALREADY_CHECKED_IN, checked_in_at=_holder_checked_in_at, updated_at=sa.bindparam("now"))
)
SCAN_REFUSED_AFTER_ALL = (sa.update(scans_table).where(scans_table.c.id == sa.bindparam("scan_id"))
                          .values(result=sa.bindparam("new_result"), checked_in_at=sa.bindparam("new_checked_in_at")))


# A recorded scan's columns: the same for every scan of a batch (bound once), and its own.
_SCAN_CONSTANTS = {"account_id": "account_id", "event_id": "event_id", "token_id": "token_id", "source": "source",
                   "received_at": "now", "updated_at": "now"}
_SCAN_VALUES = ("attendee_id", "result", "code_tail", "code_digest", "nonce", "scanned_at", "checked_in_at")


def _insert_scans(dialect_name: str) -> sa.TextualSelect:
    """INSERT of a batch's scans, their own values bound as one JSON array, that skips a nonce
    already recorded (a twin's). One statement compiled once for every batch size: a
    multi-row VALUES (13 parameters a row) is rendered anew for each batch, and on PostgreSQL
    its text parsed anew by psycopg (2.6 ms for 100 rows), on SQLite each value passed through
    SQLAlchemy's per-row processing. Rows are inserted in the array's order (the nonces' lock
    order); timestamps come as each database stores them (:func:`_stored_times`)."""
    if dialect_name == "postgresql":
        dialect = postgresql.dialect()

        def typed(name: str) -> str:
            return f"{name} {scans_table.c[name].type.compile(dialect)}"

        constants = [f"CAST(:{param} AS {scans_table.c[name].type.compile(dialect)})"
                     for name, param in _SCAN_CONSTANTS.items()]
        values = list(_SCAN_VALUES)
        rows = (f"ROWS FROM (json_to_recordset(CAST(:scan_rows AS JSON)) AS ({', '.join(map(typed, _SCAN_VALUES))})) "
                f"WITH ORDINALITY AS batch ({', '.join(_SCAN_VALUES)}, position) ORDER BY position")
    else:
        constants = [f":{param}" for param in _SCAN_CONSTANTS.values()]
        values = [f"json_extract(value, '$.{name}')" for name in _SCAN_VALUES]
        rows = "json_each(:scan_rows) WHERE true"  # WHERE: SQLite's parser, before ON CONFLICT
    return sa.text(
        f"INSERT INTO scans ({', '.join([*_SCAN_CONSTANTS, *_SCAN_VALUES])}) "
        f"SELECT {', '.join(constants + values)} FROM {rows} "
        "ON CONFLICT (account_id, nonce) DO NOTHING RETURNING id, nonce"
    ).bindparams(sa.bindparam("now", type_=UTCDateTime)).columns(scans_table.c.id, scans_table.c.nonce)


INSERT_SCANS = {dialect: _insert_scans(dialect) for dialect in ("postgresql", "sqlite")}


def _stored_times(dialect: sa.Dialect) -> Any:
    """A timestamp as ``dialect`` stores it: SQLAlchemy's conversion for the dialect's own type (on
    SQLite its text, in the one format that compares as times; the generic type's gives a datetime)."""
    return scans_table.c.scanned_at.type.dialect_impl(dialect).bind_processor(dialect)


def code_digest(code: str) -> str:
    """What a scan keeps to tell whether a nonce sent again carries the same code (never the code)."""
    return hashlib.sha256(code.encode()).hexdigest()


# -- one scan's way through --------------------------------------------------------------------

@dataclass
class Scanned:
    """One scan of a redeem or batch, and what became of it."""

    index: int
    nonce: str | None
    code: str  # normalized
    scanned_at: datetime
    result: str | None = None
    attendee: Any = None  # a row with the attendee's fields, when known
    checked_in_at: datetime | None = None
    event: dict | None = None  # wrong_event: the ticket's event
    replayed: bool = False
    errors: list | None = None
    scan_id: int | None = None
    offline: bool = False
    copy_of: Scanned | None = None  # its nonce's first scan in the same batch

    def answer(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nonce": self.nonce, "result": self.result}
        if self.errors is not None:
            out["errors"] = self.errors
            return out
        out["attendee"] = None if self.attendee is None else door_view(attendee_json(self.attendee))
        out["checked_in_at"] = self.checked_in_at
        if self.event is not None:
            out["event"] = self.event
        if self.replayed:
            out["replayed"] = True
        return out


@dataclass
class Door:
    """What the lookup found: the door's event, and each code's attendee."""

    event: Any
    current: dict[str, Any] = field(default_factory=dict)
    reissued: dict[str, Any] = field(default_factory=dict)


def _visible(event_id: int) -> bool:
    allowed = event_ids(g.principal.token.event_ids)
    return allowed is None or event_id in allowed


def _look_up(connection: sa.Connection, account_id: int, event_id: int, codes: list[str]) -> Door | None:
    door = Door(None)
    lookup, bound = _by_keys(connection, LOOKUP, codes)
    for row in connection.execute(lookup, {"account_id": account_id, "event_id": event_id, "codes": bound}).all():
        if row.kind == "door":
            door.event = row
        elif _visible(row.found_event_id):  # outside the token's events: as if it did not exist
            (door.current if row.kind == "current" else door.reissued)[row.code] = row
    return door if door.event is not None else None


def _decide(door: Door, each: Scanned, checked_in: dict[int, datetime | None]) -> None:
    """The scan's result from what the lookup found (and the scans before it in this batch)."""
    row = door.current.get(each.code)
    if row is None:
        replaced = door.reissued.get(each.code)
        if replaced is not None:
            each.result, each.attendee = TICKET_REISSUED, replaced
        else:
            each.result = UNKNOWN_CODE
        return
    each.attendee = row
    if row.event_id != door.event.found_event_id:
        each.result = WRONG_EVENT
        each.event = {"id": row.found_event_id, "title": row.event_title}
        return
    if door.event.event_status == "cancelled":
        each.result = EVENT_CANCELLED
        return
    first = checked_in.get(row.id, row.checked_in_at)
    if first is None or (each.offline and first > each.scanned_at):
        each.result, each.checked_in_at = ADMITTED, each.scanned_at
        checked_in[row.id] = each.scanned_at
    else:
        each.result, each.checked_in_at = ALREADY_CHECKED_IN, first


def _replay(each: Scanned, seen: Any, event_id: int) -> None:
    if seen.code_digest != code_digest(each.code) or seen.door_id != event_id:
        each.result = NONCE_REUSED
        return
    each.replayed = True
    each.result, each.checked_in_at = seen.result, seen.scan_checked_in_at
    if seen.attendee_id is None or seen.id is None:
        return
    if not _visible(seen.found_event_id):
        # Recorded for a token that sees more (the nonce is the account's): this one gets
        # what it would have got itself, a code it may not see.
        if seen.result == WRONG_EVENT:
            each.result, each.checked_in_at = UNKNOWN_CODE, None
        return
    each.attendee = seen
    if seen.result == WRONG_EVENT:
        each.event = {"id": seen.found_event_id, "title": seen.event_title}


def scan(connection: sa.Connection, event_id: int, scans: list[Scanned], source: str) -> list[Scanned] | None:
    """Decide and record ``scans`` at the door of ``event_id`` (see the module docstring);
    None when the event is not one the token may see."""
    account_id, token_id = token_ids()
    pending = [each for each in scans if each.result is None]
    nonces = [each.nonce for each in pending if each.nonce is not None]
    seen = {}
    if nonces:
        statement, bound = _by_keys(connection, SEEN_NONCES, nonces)
        seen = {row.nonce: row for row in connection.execute(statement, {"account_id": account_id, "nonces": bound})}
    door = _look_up(connection, account_id, event_id, sorted({each.code for each in pending}))
    if door is None:
        return None
    fresh: list[Scanned] = []
    first_of_nonce: dict[str, Scanned] = {}
    for each in pending:
        if each.nonce in seen:
            _replay(each, seen[each.nonce], event_id)
        elif each.nonce in first_of_nonce:  # twice in one batch: the second is the first sent again
            first = first_of_nonce[each.nonce]
            if first.code == each.code:
                each.replayed, each.copy_of = True, first  # its result once the first's is known
            else:
                each.result = NONCE_REUSED
        else:
            if each.nonce is not None:
                first_of_nonce[each.nonce] = each
            fresh.append(each)
    checked_in: dict[int, datetime | None] = {}
    for each in sorted(fresh, key=lambda scanned: (scanned.scanned_at, scanned.index)):
        _decide(door, each, checked_in)
    one_statement = (connection.dialect.name == "postgresql" and len(fresh) == 1 and fresh[0].result == ADMITTED
                     and fresh[0].nonce is None and not fresh[0].offline)
    rows = None if one_statement else _scan_rows(connection.dialect, fresh)  # nothing in them waits on the turn
    take_turn(connection)  # the reads are done (write_view's reads_first)
    # After the wait for the writer's turn: a sync's horizon covers the wait for SQLite's
    # lock only, between a write's timestamp and its commit (list_queries.sync_bounds).
    now = utcnow()
    if rows is None:
        _admit_and_record(connection, account_id, token_id, event_id, fresh[0], now)
    else:
        recorded = _record(connection, account_id, token_id, event_id, rows, source, now)
        _admit(connection, account_id, recorded, now)
    for each in pending:
        first = each.copy_of
        if first is not None:
            each.result, each.attendee, each.checked_in_at, each.event = (first.result, first.attendee,
                                                                          first.checked_in_at, first.event)
    return scans


def _scan_rows(dialect: sa.Dialect, fresh: list[Scanned]) -> tuple[list[Scanned], list[dict]]:
    """The fresh scans in their lock order (by nonce: one order for twins sent at once), and
    their own values for INSERT_SCANS."""
    ordered = sorted(fresh, key=lambda each: each.nonce or "")
    stored = _stored_times(dialect)
    return ordered, [{"attendee_id": None if each.attendee is None else each.attendee.id, "result": each.result,
                      "code_tail": ticket_codes.tail(each.code), "code_digest": code_digest(each.code),
                      "nonce": each.nonce, "scanned_at": stored(each.scanned_at),
                      "checked_in_at": stored(each.checked_in_at)} for each in ordered]


def _record(connection: sa.Connection, account_id: int, token_id: int, event_id: int,
            rows: tuple[list[Scanned], list[dict]], source: str, now: datetime) -> list[Scanned]:
    """Insert the fresh scans (:func:`_scan_rows`) in one statement; the ones whose nonce a twin
    claimed meanwhile replay the twin's result. Returns the scans recorded here."""
    ordered, values = rows
    if not ordered:
        return []
    inserted = connection.execute(INSERT_SCANS[connection.dialect.name], {
        "account_id": account_id, "event_id": event_id, "token_id": token_id, "source": source, "now": now,
        "scan_rows": orjson.dumps(values).decode()}).all()
    by_nonce = {row.nonce: row.id for row in inserted}
    recorded, lost = [], []
    for each in ordered:
        scan_id = by_nonce.get(each.nonce) if each.nonce is not None else inserted[0].id
        if scan_id is None:
            lost.append(each)
        else:
            each.scan_id = scan_id
            recorded.append(each)
    if lost:
        statement, bound = _by_keys(connection, SEEN_NONCES, [each.nonce for each in lost])
        seen = {row.nonce: row for row in connection.execute(statement, {"account_id": account_id, "nonces": bound})}
        for each in lost:
            each.attendee, each.event, each.checked_in_at = None, None, None
            _replay(each, seen[each.nonce], event_id)
    return recorded


def _admit(connection: sa.Connection, account_id: int, recorded: list[Scanned], now: datetime) -> None:
    """Write the admissions of the ``recorded`` scans: a redeem's one, or a batch's all in one
    statement (see ADMIT_EARLIER); a scan that lost its race is refused after all, by what it
    met, and so are the later scans of its ticket in the batch, refused by it."""
    admitted = [each for each in recorded if each.result == ADMITTED]
    if not admitted:
        if recorded:  # refused scans only: no admission's audit record checks the token
            check_token(connection, now)
        return
    offline = admitted[0].offline  # a batch's scans all are, a redeem's is not
    if offline:
        changed = {row.id: row for row in ADMIT_EARLIER.run(connection, {
            "by_account_id": account_id, "scan_ids": json.dumps([each.scan_id for each in admitted]),
            "attendee_ids": json.dumps(sorted(each.attendee.id for each in admitted)),
            "attendee_codes": json.dumps([(each.attendee.id, each.code) for each in admitted]), "now": now}, now)}
    else:
        [each] = admitted
        row = ADMIT.run(connection, {"by_attendee_id": each.attendee.id, "by_account_id": account_id,
                                     "by_code": each.code, "when": each.scanned_at, "now": now}, now)
        changed = {} if row is None else {row.id: row}
    lost = []
    for each in admitted:
        row = changed.get(each.attendee.id)
        if row is None:
            lost.append(each)
        else:
            each.attendee = row
    if lost:
        lost_by_attendee = {each.attendee.id: each for each in lost}
        _refused_after_all(connection, lost, now)
        for each in recorded:  # refused by a lost admission's time: refused by what it met instead
            first = lost_by_attendee.get(each.attendee.id) if each.result == ALREADY_CHECKED_IN else None
            if first is not None and first is not each:
                each.result, each.checked_in_at, each.attendee = first.result, first.checked_in_at, first.attendee
                lost.append(each)
        connection.execute(SCAN_REFUSED_AFTER_ALL, [
            {"scan_id": each.scan_id, "new_result": each.result, "new_checked_in_at": each.checked_in_at}
            for each in lost])
    if offline and changed:
        connection.execute(SUPERSEDED, {"attendee_ids": json.dumps(sorted(changed)), "now": now})


def _refused_after_all(connection: sa.Connection, lost: list[Scanned], now: datetime) -> None:
    """The result of scans that lost their race, from what their tickets are now."""
    current = {row.id: row for row in connection.execute(
        sa.select(*ATTENDEE_SELECTED).where(attendees_table.c.id.in_([each.attendee.id for each in lost])))}
    for each in lost:
        row = current.get(each.attendee.id)
        if row is None:
            each.result, each.checked_in_at = UNKNOWN_CODE, None
        elif row.ticket_code != each.code:
            each.result, each.checked_in_at = TICKET_REISSUED, None
        else:  # checked in by another scan meanwhile (or undone since: it was a moment ago)
            each.result, each.checked_in_at = ALREADY_CHECKED_IN, row.checked_in_at or now
        each.attendee = row


def _admit_and_record(connection: sa.Connection, account_id: int, token_id: int, event_id: int, each: Scanned,
                      now: datetime) -> None:
    """A redeem's admission and its scan in one statement (ADMIT_RECORDED); if it lost its
    race, its scan recorded refused (nothing was written before)."""
    row = ADMIT_RECORDED.run(connection, {
        "by_attendee_id": each.attendee.id, "by_account_id": account_id, "by_code": each.code,
        "when": each.scanned_at, "now": now, "scan_account_id": account_id, "scan_event_id": event_id,
        "scan_token_id": token_id, "scan_code_tail": ticket_codes.tail(each.code),
        "scan_code_digest": code_digest(each.code), "scan_at": each.scanned_at, "scan_received_at": now}, now)
    if row is not None:
        each.attendee, each.scan_id = row, row.also_id
        return
    _refused_after_all(connection, [each], now)
    _record(connection, account_id, token_id, event_id, _scan_rows(connection.dialect, [each]), "online", now)


# -- redeem ------------------------------------------------------------------------------------

def _redeem_answer(each: Scanned) -> Response:
    if each.result == ADMITTED:
        data: dict[str, Any] = {"result": ADMITTED, "attendee": door_view(attendee_json(each.attendee)),
                                "checked_in_at": each.checked_in_at}
        if each.replayed:
            data["replayed"] = True
        return json_response({"data": data}, 201)
    answer = each.answer()
    known = {name: answer[name] for name in ("attendee", "event", "replayed") if answer.get(name) is not None}
    message = MESSAGES[each.result]
    # Each refusal written out, status and code, as every answer of the API is.
    if each.result == UNKNOWN_CODE:
        return error_response(404, "unknown_code", message, **known)
    if each.result == NONCE_REUSED:
        return error_response(422, "nonce_reused", message)
    if each.result == ALREADY_CHECKED_IN:
        return error_response(409, "already_checked_in", message, checked_in_at=each.checked_in_at, **known)
    if each.result == TICKET_REISSUED:
        return error_response(409, "ticket_reissued", message, **known)
    if each.result == EVENT_CANCELLED:
        return error_response(409, "event_cancelled", message, **known)
    return error_response(409, "wrong_event", message, **known)


@bp.post("/events/<row_id:event_id>/check_ins")
@requires("check_in:write")
@write_view(schemas.Redeem, one_statement=True, reads_first=True)  # one_statement: see ADMIT_RECORDED
def redeem(event_id: int, body: schemas.Redeem) -> Response:
    each = Scanned(0, request.headers.get("Idempotency-Key"), ticket_codes.normalized(body.code),
                   body.scanned_at or utcnow())
    if scan(request_connection(), event_id, [each], "online") is None:
        return not_found()
    return _redeem_answer(each)


# -- the offline batch -------------------------------------------------------------------------

def _scan_or_errors(item: Any) -> schemas.BatchScan | list[dict[str, str]]:
    """A scan the batch's body did not take as a BatchScan, validated on its own, as JSON, the
    way a body is read (strict: a timestamp is a string, nothing is coerced): its errors."""
    try:
        return schemas.BatchScan.model_validate_json(json.dumps(item))  # any int: orjson stops at 64 bits
    except ValidationError as exc:
        return schemas.field_errors(exc)


@bp.post("/events/<row_id:event_id>/check_ins/batch")
@requires("check_in:write")
@write_view(schemas.BatchEnvelope, reads_first=True)
def batch(event_id: int, body: schemas.BatchEnvelope) -> Response | AnswerLater:
    scans = []
    for index, item in enumerate(body.scans):
        checked = item if isinstance(item, schemas.BatchScan) else _scan_or_errors(item)
        if isinstance(checked, schemas.BatchScan):
            scans.append(Scanned(index, checked.nonce, ticket_codes.normalized(checked.code), checked.scanned_at,
                                 offline=True))
        else:
            nonce = item.get("nonce") if isinstance(item, dict) and isinstance(item.get("nonce"), str) else None
            scans.append(Scanned(index, nonce, "", utcnow(), result=INVALID, errors=checked))
    if scan(request_connection(), event_id, scans, "batch") is None:
        return not_found()
    return lambda: json_response({"data": [each.answer() for each in scans]})


# -- reissue -----------------------------------------------------------------------------------

@bp.post("/events/<row_id:event_id>/attendees/<row_id:attendee_id>/reissue_ticket")
@requires("attendees:write")
@write_view()
def reissue_ticket(event_id: int, attendee_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    now = utcnow()
    current = attendee_row(connection, account_id, event_id, attendee_id)
    if current is None:
        return not_found()
    row = reissue(connection, sa.and_(*ATTENDEE_WHERE), attendee_id, account_id, current.ticket_code, now,
                  ATTENDEE_SELECTED, attendee_ids(account_id, event_id, attendee_id))
    if row is None:
        raise Refused(lost_race())
    audit(connection, actions.ATTENDEE_TICKET_REISSUED, "attendee", attendee_id, row.name)
    emit_webhook_event(connection, account_id, "attendee.updated", attendee_json(row))
    return json_with_etag(attendee_json(row), row_etag(row))


# -- what the door and the office see ---------------------------------------------------------

@bp.get("/events/<row_id:event_id>/check_in_status")
@requires("events:read")
def check_in_status(event_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    exists = connection.scalar(sa.select(events_table.c.id).where(events_table.c.id == event_id,
                                                                  events_table.c.account_id == account_id))
    if exists is None:
        return not_found()
    counts, tag = check_in_counts(connection, account_id, event_id)
    return not_modified(tag) or json_with_etag(counts, tag)


def _present_scans(rows: list[dict]) -> list[dict]:
    """The history's rows with their attendee's name and their token's description (one
    statement each for the page)."""
    connection = request_connection()
    attendee_names = {}
    wanted = sorted({row["attendee_id"] for row in rows if row["attendee_id"] is not None})
    if wanted:
        attendee_names = {row.id: row for row in connection.execute(
            sa.select(attendees_table.c.id, attendees_table.c.event_id, attendees_table.c.name,
                      attendees_table.c.ticket_type)
            .where(attendees_table.c.id.in_(wanted), attendees_table.c.account_id == g.principal.account_id))
            if _visible(row.event_id)}  # a wrong_event scan's attendee of an event outside the token's: not named
    tokens = {}
    if rows:
        tokens = {row.id: row.description for row in connection.execute(
            sa.select(tokens_table.c.id, tokens_table.c.description)
            .where(tokens_table.c.id.in_(sorted({row["token_id"] for row in rows})),
                   tokens_table.c.account_id == g.principal.account_id))}
    out = []
    for row in rows:
        attendee = attendee_names.get(row["attendee_id"])
        out.append({
            "id": row["id"], "event_id": row["event_id"], "result": row["result"], "source": row["source"],
            "code_last4": row["code_tail"], "scanned_at": row["scanned_at"], "received_at": row["received_at"],
            "updated_at": row["updated_at"], "checked_in_at": row["checked_in_at"],
            "attendee": None if attendee is None else {"id": attendee.id, "name": attendee.name,
                                                       "ticket_type": attendee.ticket_type},
            "token": {"id": row["token_id"], "description": tokens[row["token_id"]]}
            if row["token_id"] in tokens else None,
        })
    return out


_SCAN_COLUMNS = [Scan.id, Scan.event_id, Scan.result, Scan.source, Scan.code_tail, Scan.scanned_at, Scan.received_at,
                 Scan.updated_at, Scan.checked_in_at, Scan.attendee_id, Scan.token_id]


def _scan_list(name: str, *criteria: Any, carried: tuple[str, ...] = ()) -> AccountList:
    return AccountList(name, Scan, _SCAN_COLUMNS, (Scan.id,), scans_table.c.event_id == sa.bindparam("event_id"),
                       *criteria, scope="event_id", newest_first=True, present=_present_scans, carried=carried)


# One list per filter (a cursor is good only for its own list), whose links carry the filter.
SCANS = {None: _scan_list("scans")} | {
    result: _scan_list(f"scans.{result}", scans_table.c.result == sa.bindparam("result"), carried=("result",))
    for result in schemas.SCAN_RESULTS}


@bp.get("/events/<row_id:event_id>/scans")
@requires("attendees:read")  # the history names attendees
def scans(event_id: int) -> Response:
    account_id, _ = token_ids()
    args = request.args
    if args.get("include_deleted", "false") != "false":
        raise BadParameter("include_deleted", "Scans are never deleted: include_deleted takes only false here.")
    result = args.get("result")
    if result is not None and result not in schemas.SCAN_RESULTS:
        raise BadParameter("result", f"result must be one of {', '.join(schemas.SCAN_RESULTS)}.")
    connection = request_connection()
    exists = connection.scalar(sa.select(events_table.c.id).where(events_table.c.id == event_id,
                                                                  events_table.c.account_id == account_id))
    if exists is None:
        return not_found()
    if result is None:
        return SCANS[None].response(account_id, event_id=event_id)
    return SCANS[result].response(account_id, event_id=event_id, result=result)
