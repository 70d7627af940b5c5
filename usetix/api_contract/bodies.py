"""The JSON API's bodies as pydantic models: what a write may send, what the API answers.

The same models validate request bodies and generate the OpenAPI document
(usetix/api_contract/openapi.py), so the document cannot promise what the code does not check.
Pure: no Flask, no database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ..core.printable_text import PRINTABLE_PATTERN, REFUSAL, refused_character
from ..core.ticket_codes import MAX_INPUT_LENGTH as MAX_CODE_LENGTH
from ..core.webhooks import EVENT_TYPES

EVENT_STATUSES = ("draft", "published", "cancelled")
EventStatus = Literal["draft", "published", "cancelled"]


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise PydanticCustomError("datetime_out_of_range", "Timestamp is out of range once in UTC.") from None


def _printable(value: str) -> str:
    # The dashboard's forms apply the same rule (usetix/core/printable_text.py).
    found = refused_character(value)
    if found is not None:
        raise PydanticCustomError("refused_character", "Text cannot hold {character}: {rule}.",
                                  {"character": f"U+{ord(found):04X}", "rule": REFUSAL})
    return value


def _text(max_length: int) -> Any:
    # The pattern only states the rule in the OpenAPI document; _printable enforces it.
    return Annotated[str, Field(min_length=1, max_length=max_length, json_schema_extra={"pattern": PRINTABLE_PATTERN}),
                     AfterValidator(_printable)]


# A timestamp with an explicit offset ("Z" or "+02:00"); a naive one is refused.
Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
# How the API writes timestamps: UTC, whole seconds, "Z".
TimestampOut = Annotated[datetime, WithJsonSchema({
    "type": "string", "format": "date-time", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
})]
Title = _text(200)
Venue = _text(200)
Name = _text(200)
TicketType = _text(50)
Email = Annotated[EmailStr, Field(max_length=254)]


class _Body(BaseModel):
    # Unknown fields are errors, and nothing is coerced: "5" is not a number, 1 not a string.
    model_config = ConfigDict(extra="forbid", strict=True)


class EventCreate(_Body):
    """``POST /admin/events``."""

    title: Title
    starts_at: Timestamp
    ends_at: Timestamp
    venue: Venue
    status: EventStatus = "draft"

    @field_validator("ends_at")
    @classmethod
    def _ends_after_start(cls, ends_at: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")  # absent when starts_at itself was refused
        if starts_at is not None and ends_at < starts_at:
            raise PydanticCustomError("ends_before_starts", "ends_at must not be before starts_at.")
        return ends_at


class EventPatch(_Body):
    """``PATCH /admin/events/<id>`` (a merge patch: the fields given change, and none may be null)."""

    title: Title = None
    starts_at: Timestamp = None
    ends_at: Timestamp = None
    venue: Venue = None
    status: EventStatus = None


class AttendeeCreate(_Body):
    """``POST /admin/events/<id>/attendees``."""

    name: Name
    email: Email
    ticket_type: TicketType


class AttendeePatch(_Body):
    """``PATCH /admin/events/<id>/attendees/<aid>``."""

    name: Name = None
    email: Email = None
    ticket_type: TicketType = None


# How far ahead of the server's clock a scanner's may run (README, "Writing through the API").
CHECK_IN_CLOCK_SKEW = timedelta(minutes=5)


def _not_in_the_future(value: datetime) -> datetime:
    if value > datetime.now(UTC) + CHECK_IN_CLOCK_SKEW:
        raise PydanticCustomError("in_the_future", f"checked_in_at must not be in the future (a clock "
                                                   f"{CHECK_IN_CLOCK_SKEW.seconds // 60} minutes ahead is allowed).")
    return value


class CheckIn(_Body):
    """``POST …/check_in``: an empty body checks in now; a scan made offline sends its time,
    which may not be later than now (give or take the clock skew)."""

    checked_in_at: Annotated[Timestamp, AfterValidator(_not_in_the_future)] = None


def _scanned_not_in_the_future(value: datetime) -> datetime:
    if value > datetime.now(UTC) + CHECK_IN_CLOCK_SKEW:
        raise PydanticCustomError("in_the_future", f"scanned_at must not be in the future (a clock "
                                                   f"{CHECK_IN_CLOCK_SKEW.seconds // 60} minutes ahead is allowed).")
    return value


# The door's bodies. A scan's results: "admitted", or the reason it was refused.
SCAN_RESULTS = ("admitted", "already_checked_in", "ticket_reissued", "event_cancelled", "wrong_event", "unknown_code")
ScanResultName = Literal["admitted", "already_checked_in", "ticket_reissued", "event_cancelled", "wrong_event",
                         "unknown_code"]
# What an offline batch may answer for one scan beside those.
BatchResultName = Literal["admitted", "already_checked_in", "ticket_reissued", "event_cancelled", "wrong_event",
                          "unknown_code", "nonce_reused", "invalid"]
MAX_BATCH_SCANS = 500
TicketCode = Annotated[str, Field(min_length=1, max_length=MAX_CODE_LENGTH,
                                  description="The code read off the ticket (upper or lower case, hyphens allowed).")]
ScannedAt = Annotated[Timestamp, AfterValidator(_scanned_not_in_the_future)]
# A nonce is written like an Idempotency-Key: it is one, for a redeem.
Nonce = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[!-~]+$",
                             description="The scan's own id, made by the scanner (a UUID): sending it again "
                                         "replays its first result.")]


class Redeem(_Body):
    """``POST /admin/events/<id>/check_ins``: the code a scanner read, and when (now if left out)."""

    code: TicketCode
    scanned_at: ScannedAt = None


class BatchScan(_Body):
    """One scan of an offline batch."""

    nonce: Nonce
    code: TicketCode
    scanned_at: ScannedAt


class BatchEnvelope(_Body):
    """``POST /admin/events/<id>/check_ins/batch``: the scans a scanner queued offline, each a
    ``BatchScan``. The list is checked as a whole; a scan that is not a valid ``BatchScan`` is
    kept as it came, to be that scan's ``invalid`` result (one bad scan never fails the batch)."""

    scans: list[BatchScan | Any] = Field(min_length=1, max_length=MAX_BATCH_SCANS)
WebhookEventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
WebhookUrl = Annotated[str, Field(min_length=1, max_length=2048, description=(
    "An `https` URL without credentials, whose name resolves to public addresses only (checked when saved and "
    "at every delivery)."))]
WebhookEvents = Annotated[list[WebhookEventType], Field(min_length=1, max_length=len(EVENT_TYPES))]
# May be empty (the default): the printable rule's pattern, for zero characters or more.
WebhookDescription = Annotated[str, Field(max_length=200, json_schema_extra={
    "pattern": PRINTABLE_PATTERN.removesuffix("+$") + "*$"}),
                               AfterValidator(_printable)]


class WebhookEndpointCreate(_Body):
    """``POST /admin/webhooks``."""

    url: WebhookUrl
    events: WebhookEvents
    description: WebhookDescription = ""


class WebhookEndpointPatch(_Body):
    """``PATCH /admin/webhooks/<id>`` (a merge patch: the fields given change)."""

    url: WebhookUrl = None
    events: WebhookEvents = None
    description: WebhookDescription = None
    enabled: bool = None


class WebhookRecover(_Body):
    """``POST /admin/webhooks/<id>/recover``: re-queue every failed message since this time."""

    since: Timestamp


class _Out(BaseModel):
    # What the API answers stays open (no additionalProperties: false): a later release may
    # add a field, and a client generated from this document must still read the answer.
    model_config = ConfigDict(extra="allow")


class Event(_Out):
    id: int
    title: str
    starts_at: TimestampOut
    ends_at: TimestampOut
    venue: str
    status: EventStatus
    created_at: TimestampOut
    updated_at: TimestampOut


class Attendee(_Out):
    id: int
    event_id: int
    name: str
    email: str
    ticket_type: str
    checked_in: bool
    checked_in_at: TimestampOut | None
    created_at: TimestampOut
    updated_at: TimestampOut
    ticket_code: str = Field(description="What the door scans (README, \"At the door\"); reissue_ticket replaces it.")


class CheckedInAttendee(Attendee):
    """An attendee as a check-in answers it: without ``email`` and ``ticket_code`` for a
    token that may not read attendees (the check-in preset)."""

    email: str | None = Field(default=None, description="Left out for a token without `attendees:read`.")
    ticket_code: str | None = Field(default=None, description="Left out for a token without `attendees:read`.")


class FieldError(_Out):
    field: str = Field(description='The field, dotted for nested ones; "body" for the body as a whole.')
    code: str = Field(description="pydantic's error type, e.g. missing, extra_forbidden, string_too_long.")
    message: str


class EventRef(_Out):
    """The event a ticket belongs to, for ``wrong_event``: send the person to its door."""

    id: int
    title: str


class Admission(_Out):
    """A redeem's answer."""

    result: Literal["admitted"]
    attendee: CheckedInAttendee
    checked_in_at: TimestampOut
    replayed: bool | None = Field(default=None, description="true when this answers a nonce (Idempotency-Key) "
                                                            "seen before: its first result, nothing written.")


class BatchResult(_Out):
    """One scan's outcome, in the input's order."""

    nonce: str | None = Field(description="The scan's nonce (null for an invalid scan without one).")
    result: BatchResultName
    attendee: CheckedInAttendee | None = None
    checked_in_at: TimestampOut | None = Field(default=None, description="admitted: the check-in it made; "
                                               "already_checked_in: the first check-in.")
    event: EventRef | None = Field(default=None, description="wrong_event: the ticket's event.")
    replayed: bool | None = Field(default=None, description="true: a nonce seen before, its first result again.")
    errors: list[FieldError] | None = Field(default=None, description="invalid: what is wrong with the scan.")


class TicketTypeCount(_Out):
    checked_in: int
    total: int


class CheckInStatus(_Out):
    checked_in: int
    total: int
    by_ticket_type: dict[str, TicketTypeCount]


class ScanToken(_Out):
    id: int
    description: str


class ScanAttendee(_Out):
    id: int
    name: str
    ticket_type: str


class ScanRecord(_Out):
    """One scan of the door's history."""

    id: int
    event_id: int
    result: ScanResultName
    source: Literal["online", "batch"]
    code_last4: str = Field(description="The code's last 4 characters (the history never keeps a whole code).")
    scanned_at: TimestampOut
    received_at: TimestampOut
    updated_at: TimestampOut = Field(description="Changed when a later-arriving, earlier scan took the check-in "
                                                 "over (result becomes already_checked_in).")
    checked_in_at: TimestampOut | None
    attendee: ScanAttendee | None
    token: ScanToken | None


class Tombstone(_Out):
    """A deleted event or attendee, in a list asked with ``include_deleted=true``."""

    id: int
    deleted: Literal[True]
    deleted_at: TimestampOut


class TokenPermissions(_Out):
    """What the token may do with each resource, fixed when it was made."""

    events: Literal["none", "read", "write"]
    attendees: Literal["none", "read", "write"]
    check_in: Literal["none", "write"]
    webhooks: Literal["none", "read", "write"]


class TokenInfo(_Out):
    id: int
    description: str
    tier: Literal["read", "write"]
    created_at: TimestampOut
    expires_at: TimestampOut | None = Field(
        description="When the token stops working (UTC); null for a token that never expires.")
    permissions: TokenPermissions
    events: list[int] | None = Field(
        description="The ids of the events the token is limited to; null: every event of the account, future "
                    "ones too.")


class LeakReport(BaseModel):
    """The leak kill-switch's body (documented; the view checks it itself, to answer 400/422
    in its own words)."""

    credentials: list[str] = Field(min_length=1, max_length=1000, description="Raw token values, at most 1,000.")


class LeakReportAccepted(_Out):
    message: str


class Account(_Out):
    id: int
    name: str
    token: TokenInfo


class WebhookEndpoint(_Out):
    id: int
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: Literal["failing", "gone"] | None = Field(
        description="Why the app disabled it: `failing` (three days of failed attempts) or `gone` (a 410); null "
                    "when enabled, or disabled by an admin.")
    failing_since: TimestampOut | None = Field(description="The first failed attempt since the last success.")
    created_at: TimestampOut
    updated_at: TimestampOut


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str = Field(description="`whsec_` and base64: shown this once; verify deliveries with it.")


class WebhookSecret(_Out):
    secret: str = Field(description="The new secret, shown this once; the previous one signs too for 24 hours.")
    previous_secret_expires_at: TimestampOut


class WebhookQueued(_Out):
    message_id: str = Field(description="The message's `webhook-id`.")


class WebhookRecovered(_Out):
    requeued: int = Field(ge=0)


class WebhookDelivery(_Out):
    """One attempt of one message."""

    id: int
    message_id: str = Field(description="The message's `webhook-id` (the same on every attempt).")
    event_type: str
    attempted_at: TimestampOut
    succeeded: bool
    status_code: int | None
    error: str | None
    latency_ms: int
    response_body: str | None = Field(description="The first 2 KB of the answer.")


class ListMeta(_Out):
    page: int = Field(ge=1, description="The page's ordinal in its walk (a cursor page's may be approximate).")
    per_page: int = Field(ge=1, le=100)
    total: int | None = Field(default=None, ge=0, description="On a first page and a numbered page (`page`) only: "
                              "a cursor page leaves it out, so that it costs the same at any depth.")
    sync_cursor: str | None = Field(default=None, description="On the last page of a sync walk (`updated_since`, "
                                    "or a `sync_cursor` followed): ask the list with `cursor=` this value, at any "
                                    "later time, for what changed since.")


Item = TypeVar("Item")


class Envelope(_Out, Generic[Item]):
    """An answer with one object: ``{"data": {...}}``."""

    data: Item


class Page(_Out, Generic[Item]):
    """One page of a list: ``{"data": [...], "meta": {...}}``; the ``Link`` header has its neighbours."""

    data: list[Item]
    meta: ListMeta


# The envelopes by name, so each is one shared component of the document (and one class of
# a generated client), however many operations answer it.
class EventEnvelope(Envelope[Event]):
    """One event: ``{"data": {...}}``."""


class AttendeeEnvelope(Envelope[Attendee]):
    """One attendee: ``{"data": {...}}``."""


class CheckedInEnvelope(Envelope[CheckedInAttendee]):
    """The attendee just checked in: ``{"data": {...}}``."""


class AccountEnvelope(Envelope[Account]):
    """The token's account and the token: ``{"data": {...}}``."""


class AdmissionEnvelope(Envelope[Admission]):
    """A redeem's admission: ``{"data": {...}}``."""


class BatchResults(_Out):
    """An offline batch's results: ``{"data": [...]}``, one per scan, in the input's order."""

    data: list[BatchResult]


class CheckInStatusEnvelope(Envelope[CheckInStatus]):
    """An event's live counts: ``{"data": {...}}``."""


class ScanPage(Page[ScanRecord]):
    """A page of an event's scans, newest first (with ``updated_since``: in the order of change)."""


class EventPage(Page[Event | Tombstone]):
    """A page of events; with ``include_deleted=true``, tombstones among them."""


class AttendeePage(Page[Attendee | Tombstone]):
    """A page of an event's attendees; with ``include_deleted=true``, tombstones among them."""


class WebhookEndpointEnvelope(Envelope[WebhookEndpoint]):
    """One webhook endpoint: ``{"data": {...}}``."""


class WebhookEndpointCreatedEnvelope(Envelope[WebhookEndpointWithSecret]):
    """The endpoint just made, with its secret (shown this once): ``{"data": {...}}``."""


class WebhookSecretEnvelope(Envelope[WebhookSecret]):
    """The new secret: ``{"data": {...}}``."""


class WebhookQueuedEnvelope(Envelope[WebhookQueued]):
    """The message queued: ``{"data": {...}}``."""


class WebhookRecoveredEnvelope(Envelope[WebhookRecovered]):
    """How many messages were queued again: ``{"data": {...}}``."""


class WebhookEndpointList(_Out):
    """Every endpoint of the account: ``{"data": [...]}``."""

    data: list[WebhookEndpoint]


class WebhookDeliveryPage(Page[WebhookDelivery]):
    """One page of an endpoint's delivery log."""


class Error(_Out):
    """Every error answer. Each response of the document lists the ``error`` codes it can
    carry; the model keeps ``error`` a plain string, so a code added later still reads."""

    error: str = Field(description="What went wrong, as a code: see each response for the codes it carries.")
    message: str = Field(description="The same in a sentence, for a person.")
    parameter: str | None = Field(None, description="invalid_parameter: the query parameter.")
    errors: list[FieldError] | None = Field(None, description="invalid_body: every bad field.")
    checked_in_at: TimestampOut | None = Field(None, description="already_checked_in: when.")
    attendee: CheckedInAttendee | None = Field(None, description="A refused scan's attendee, when the code is known.")
    event: EventRef | None = Field(None, description="wrong_event: the ticket's event.")
    replayed: bool | None = Field(None, description="A nonce (Idempotency-Key) seen before: its first result again.")


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Every problem of a body, one entry per field, in the ``invalid_body`` answer's shape."""
    return [
        {
            "field": ".".join(str(part) for part in error["loc"]) or "body",
            "code": error["type"],
            "message": error["msg"],
        }
        for error in exc.errors(include_url=False)
    ]
