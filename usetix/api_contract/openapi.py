"""The OpenAPI 3.1 document of the JSON API, built from the pydantic models that validate.

``build_document()`` is served at /admin/openapi.json; tests/app/test_schema.py fails when
its operations and the app's routes disagree, tests/app/test_openapi.py checks what a reader
and a generated client need from it. Pure: no Flask.

What the document promises, and why:

- Request bodies are closed (``additionalProperties: false``: an unknown field is a 422);
  answers are open, so a client generated today still reads what a later release adds.
- Each error response lists, as an enum on ``error``, the codes that operation can answer
  with that status (``OPERATION_ERRORS``); the shared ``Error`` schema keeps ``error`` a
  plain string, so a generated client does not break on a code added later.
- Every answer to an authenticated request carries the rate-limit headers and, for a token
  that expires, ``Usetix-Token-Expiration``; every 401 carries the ``WWW-Authenticate``
  challenge.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from ..core.json_nesting import MAX_JSON_DEPTH
from ..core.list_query import DEFAULT_PER_PAGE, MAX_CURSOR_LENGTH, MAX_PAGE, MAX_PER_PAGE
from ..core.permissions import PRESETS, RESOURCE_LEVELS
from . import bodies as s

REF = "#/components/schemas/{model}"
INPUT_MODELS = (s.EventCreate, s.EventPatch, s.AttendeeCreate, s.AttendeePatch, s.CheckIn, s.Redeem, s.BatchScan,
                s.BatchEnvelope, s.LeakReport, s.WebhookEndpointCreate, s.WebhookEndpointPatch, s.WebhookRecover)
OUTPUT_MODELS = (s.EventEnvelope, s.AttendeeEnvelope, s.CheckedInEnvelope, s.AccountEnvelope,
                 s.EventPage, s.AttendeePage, s.Error, s.AdmissionEnvelope, s.BatchResults, s.CheckInStatusEnvelope,
                 s.ScanPage, s.LeakReportAccepted, s.WebhookEndpointList, s.WebhookEndpointEnvelope,
                 s.WebhookEndpointCreatedEnvelope, s.WebhookSecretEnvelope, s.WebhookQueuedEnvelope,
                 s.WebhookRecoveredEnvelope, s.WebhookDeliveryPage)
ACCEPT_RULE = (
    "**Send `Accept: application/json` on every request.** The API shares its URLs with the dashboard: "
    "a request without it (or whose `Accept` ranks `text/html` higher, or names only `*/*`) is answered "
    "like the website: a `302` redirect to `/login` (which most HTTP libraries follow, to a `200` HTML "
    "page) or an HTML error page, and the token is not even read. A generated client must add the header "
    "to every request (for instance as a default header of its HTTP client)."
)

DESCRIPTION = (
    f"{ACCEPT_RULE}\n\n"
    "Read and write your Usetix account's data with an account-scoped bearer token: send "
    "`Authorization: Bearer <token>`. A *Read* token may use GET and HEAD; a *Read + Write* token every "
    "method. A missing, unknown, revoked or expired token is `401` with a `WWW-Authenticate: Bearer` "
    "challenge (RFC 6750).\n\n"
    "**Permissions.** Each operation needs one permission, listed as its security requirement's scope "
    "(`events:read`, `attendees:write`, `check_in:write`, ...); a token without it is `403 insufficient_scope`, "
    "whose `required` (and the challenge's `scope`) names it. A token limited to some events sees only those: "
    "another event is `404`, as a missing one, and it cannot create events. The security scheme below lists "
    "the presets.\n\n"
    "**Answers.** A single object is `{\"data\": {...}}`, a list `{\"data\": [...], \"meta\": {...}}`. "
    "Answers may gain fields in later releases: ignore the ones you do not know. Every error is "
    "`{\"error\": code, \"message\": sentence}`; each response below lists its codes.\n\n"
    "**Paging.** A list's first page carries `meta.total`; the `Link` header (RFC 8288) names the `next` and "
    "`prev` pages as relative references, to resolve against the URL you asked. Their targets carry an "
    "opaque, signed `cursor` (the position, `per_page` and the filters): following `rel=\"next\"` from the "
    "first page visits every row that exists for the whole walk exactly once, however rows are created, "
    "changed or deleted meanwhile, and a page costs the same at any depth. A cursor page leaves "
    "`meta.total` out. A changed, truncated or foreign cursor is `400 invalid_parameter` with `parameter: "
    "\"cursor\"`. `page=N` still works, with `meta.total`: the slow way to a deep page.\n\n"
    "**Retries.** POST, PATCH and DELETE take an `Idempotency-Key` header (1 to 255 visible ASCII "
    "characters, e.g. a UUID), kept 24 hours per token: a retry with the same key and the same request "
    "gets the first answer again, with `Idempotent-Replayed: true`, and changes nothing twice. The same "
    "key with another request is `422 idempotency_key_reused`; while the first is still running, `409` "
    "with `Retry-After`. `409`, `429` and `5xx` answers are not kept. A `503` (`unavailable`, with "
    "`Retry-After`) changed nothing and may be retried; a `500` `outcome_unknown` (the database connection was "
    "lost during the commit) may or may not have changed something: retry it only with the same "
    "`Idempotency-Key`, or look first.\n\n"
    "**Concurrent edits.** A single event or attendee carries a strong `ETag` (opaque: compare it, do not "
    "parse it); send it back in `If-Match` with PATCH or DELETE, and a stale one is `412` (nothing "
    "changes). `If-None-Match` on a GET gives `304` when nothing changed.\n\n"
    "**Sync.** A list asked with `updated_since` walks in the order of change (`updated_at`, then id); with "
    "`include_deleted=true` it also holds what was deleted, as `{\"id\", \"deleted\": true, \"deleted_at\"}`, "
    "in the same order. Its last page carries `meta.sync_cursor`: ask the list with `cursor=<sync_cursor>` "
    "at any later time for what changed since, ending with a new `sync_cursor`. Apply every page in order "
    "(upsert rows by id, drop tombstones) and your copy equals ours; a change may come twice, never not at "
    "all. Deletions are kept 90 days: an older `sync_cursor` is `410 full_sync_required` (sync again from "
    "the start).\n\n"
    "**At the door.** A scanner redeems the code it read off a ticket (`redeemTicket`): `201` admitted, or the "
    "reason it was refused (`409 already_checked_in`, `ticket_reissued`, `event_cancelled`, `wrong_event`; "
    "`404 unknown_code`). An offline scanner sends its queue as a batch (`redeemBatch`) with a nonce per scan: "
    "sending it again replays each scan's first result. Every scan is in the event's history (`listScans`).\n\n"
        "**Limits.** Every authenticated answer carries `RateLimit-Limit`, `RateLimit-Remaining` and "
    "`RateLimit-Reset` (unless the server counts no limits); past the limit, `429` with `Retry-After`.\n\n"
    "**Expiry.** Every authenticated answer of a token that expires carries "
    "`Usetix-Token-Expiration: <ISO 8601 UTC>`, so a script can warn its owner in time.\n\n"
    "**Pairing scanners.** A door scanner gets its token without anyone typing one, through three OAuth "
    "2.0 endpoints outside this document (form-encoded, no bearer token, OAuth's answers, which any OAuth "
    "client library reads): `POST /oauth/device_authorization` (RFC 8628 §3.1: `client_id=usetix-scanner`, "
    "optional `device_name`; answers `device_code`, `user_code`, `verification_uri`, `expires_in` 600, "
    "`interval` 5), `POST /oauth/token` (§3.4: polled with "
    "`grant_type=urn:ietf:params:oauth:grant-type:device_code` until an admin approves the user code in the "
    "dashboard; `400` `authorization_pending`, `slow_down`, `access_denied`, `expired_token`, `invalid_grant`; "
    "then, once, a Check-in only token limited to the approved events) and `POST /oauth/revoke` (RFC 7009: "
    "the scanner signs out). Each is described in full in `docs/device-pairing.md` of the Usetix repository "
    "(README, \"Pair a scanner\", shows them with curl)."
)

def _preset_lines() -> str:
    lines = []
    for preset in PRESETS.values():
        if preset.permissions is None:
            lines.append(f"- *{preset.label}*: each permission chosen.")
        else:
            chosen = ", ".join(f"`{resource}` {level}" for resource, level in preset.permissions.as_dict().items())
            lines.append(f"- *{preset.label}*: {chosen} ({preset.meaning})")
    return "\n".join(lines)


PERMISSION_LEVELS = "; ".join(f"`{resource}`: {', '.join(levels)}" for resource, levels in RESOURCE_LEVELS.items())

BEARER_DESCRIPTION = (
    "An API token (`utx_...`) made by an admin in Settings → API Tokens, sent as "
    "`Authorization: Bearer <token>`. Two tiers: *Read* (GET and HEAD only; any other method is `401` "
    "with `insufficient_scope`) and *Read + Write* (every method). The token carries its account: no "
    "account id goes in a URL.\n\n"
    f"Each token also has a permission per resource ({PERMISSION_LEVELS}; `write` includes `read`), fixed when "
    "it is made: an operation's scope (its security requirement) names the permission it needs, and a token "
    "without it is `403 insufficient_scope`, with `required` and the challenge's `scope` naming it. "
    "`GET /admin/account` needs none and shows the token's. The presets of the dashboard's form:\n\n"
    f"{_preset_lines()}\n\n"
    "A token may be limited to some of the account's events (`events` in `GET /admin/account`; null: every "
    "event, future ones too): any other event is the `404` of a missing one, lists hold only its events, "
    f"and creating an event is `403 restricted_token`.\n\n{ACCEPT_RULE}"
)

TAGS = [
    {"name": "Account", "description": "The account the token belongs to, and the token itself."},
    {"name": "Events", "description": "The account's events: list, read, create, change, delete."},
    {"name": "Attendees", "description": "An event's attendees: list, read, add, change, delete."},
    {"name": "Check-in", "description": "Checking an attendee in at the door, and undoing it."},
    {"name": "Door", "description": "Scanning tickets at the door: redeem a code, send an offline batch, the live "
                                    "counts, the history of scans; reissuing a ticket."},
    {"name": "Leak reports", "description": "Revoking leaked tokens: for anyone who finds one, no token needed."},
    {"name": "Webhooks", "description": "Endpoints that receive the account's events as signed Standard Webhooks "
                                        "(standardwebhooks.com), their secrets and delivery logs."},
]

# -- errors ------------------------------------------------------------------------------

# Every error code the API answers, with what it means. The codes themselves are set where
# each answer is made (usetix/auth/refusals.py, usetix/blueprints/api/, usetix/web/responses.py);
# tests/app/test_openapi.py fails when the code answers one that is not listed here.
ERROR_CODES = {
    "invalid_parameter": "a query parameter is not valid; `parameter` names it",
    "full_sync_required": "the `sync_cursor` is older than the deletions kept: sync again from the start",
    "invalid_json": f"the body is not valid JSON, or is nested deeper than {MAX_JSON_DEPTH} levels",
    "invalid_idempotency_key": "`Idempotency-Key` is not 1 to 255 visible ASCII characters",
    "invalid_request": "the body is not a JSON object",
    "missing_token": "no `Authorization: Bearer` header (none, or another scheme)",
    "malformed_token": "a broken `Authorization` header, or a value that is not a well-formed token",
    "invalid_token": "no such token",
    "revoked_token": "the token was revoked",
    "expired_token": "the token has expired; the message says when",
    "insufficient_scope": "a Read token, with a method other than GET or HEAD (`401`); a token without the "
                          "permission this operation needs (`403`: `required` names it)",
    "restricted_token": "a token limited to some events cannot create events",
    "not_found": "no such object in this account (the same answer whether it exists in another account or nowhere)",
    "method_not_allowed": "the path does not take this method; `Allow` lists those it takes",
    "edit_conflict": "the object changed while the request ran (without `If-Match`): retry it",
    "idempotency_key_in_use": "a request with this `Idempotency-Key` is still running: retry after `Retry-After`",
    "event_has_attendees": "an event with attendees cannot be deleted: cancel it instead",
    "event_cancelled": "the event is cancelled: it takes no new attendees, and its door admits no one",
    "unknown_code": "no ticket this token may see has this code (another account's, or one of an event outside "
                    "the token's events, looks the same)",
    "ticket_reissued": "the ticket was replaced by a reissue: ask for the new one; `attendee` names whose it was",
    "wrong_event": "the ticket is for another event of the account: `event` names it, send the person to its door",
    "nonce_reused": "this nonce (the redeem's `Idempotency-Key`) was used before with another code or at another "
                    "event",
    "already_checked_in": "the attendee is already checked in; `checked_in_at` says when",
    "not_checked_in": "the attendee is not checked in",
    "precondition_failed": "`If-Match` names no current version of the object; nothing changed",
    "request_entity_too_large": "the body is larger than the server accepts",
    "unsupported_media_type": "the body is not labelled JSON (`Content-Type: application/json`)",
    "invalid_body": "the body breaks the schema; `errors` names every bad field",
    "idempotency_key_reused": "this `Idempotency-Key` was used with another request (method, path or body)",
    "rate_limited": "too many requests; retry after `Retry-After` seconds",
    "unavailable": "the service is briefly unable to take the request (the database is busy or cannot be reached); "
                   "nothing was changed: retry after `Retry-After` seconds",
    "outcome_unknown": "the connection to the database was lost while the write was committed: it may or may not "
                       "have been kept. Look before retrying, or retry with the same `Idempotency-Key`",
    "bad_request": "the `Host` header, or the client address a trusted proxy forwarded, is not valid",
}

AUTH_READ = ("missing_token", "malformed_token", "invalid_token", "revoked_token", "expired_token")
AUTH_WRITE = (*AUTH_READ, "insufficient_scope")
_COMMON_READ = {401: AUTH_READ, 405: ("method_not_allowed",), 429: ("rate_limited",), 503: ("unavailable",)}
_COMMON_WRITE = {401: AUTH_WRITE, 405: ("method_not_allowed",), 413: ("request_entity_too_large",),
                 429: ("rate_limited",), 500: ("outcome_unknown",), 503: ("unavailable",)}
_BODY = {400: ("invalid_json", "invalid_idempotency_key"), 415: ("unsupported_media_type",),
         422: ("invalid_body", "idempotency_key_reused")}
_NO_BODY = {400: ("invalid_idempotency_key",), 422: ("idempotency_key_reused",)}
_IN_USE = "idempotency_key_in_use"
_SCOPE = {403: ("insufficient_scope",)}

# The error answers of each operation: status -> the codes it can carry.
OPERATION_ERRORS: dict[str, dict[int, tuple[str, ...]]] = {
    "getAccount": _COMMON_READ,
    "listEvents": {**_SCOPE, 400: ("invalid_parameter",), 410: ("full_sync_required",), **_COMMON_READ},
    "createEvent": {**_COMMON_WRITE, **_BODY, 403: ("insufficient_scope", "restricted_token"),
                    409: (_IN_USE,)},
    "getEvent": {**_SCOPE, 404: ("not_found",), **_COMMON_READ},
    "updateEvent": {**_SCOPE, **_COMMON_WRITE, **_BODY, 404: ("not_found",), 409: ("edit_conflict", _IN_USE),
                    412: ("precondition_failed",)},
    "deleteEvent": {**_SCOPE, **_COMMON_WRITE, **_NO_BODY, 404: ("not_found",),
                    409: ("event_has_attendees", "edit_conflict", _IN_USE), 412: ("precondition_failed",)},
    "listAttendees": {**_SCOPE, 400: ("invalid_parameter",), 404: ("not_found",), 410: ("full_sync_required",),
                      **_COMMON_READ},
    "createAttendee": {**_SCOPE, **_COMMON_WRITE, **_BODY, 404: ("not_found",), 409: ("event_cancelled", _IN_USE)},
    "getAttendee": {**_SCOPE, 404: ("not_found",), **_COMMON_READ},
    "updateAttendee": {**_SCOPE, **_COMMON_WRITE, **_BODY, 404: ("not_found",), 409: ("edit_conflict", _IN_USE),
                       412: ("precondition_failed",)},
    "deleteAttendee": {**_SCOPE, **_COMMON_WRITE, **_NO_BODY, 404: ("not_found",), 409: ("edit_conflict", _IN_USE),
                       412: ("precondition_failed",)},
    "checkIn": {**_SCOPE, **_COMMON_WRITE, **_BODY, 404: ("not_found",), 409: ("already_checked_in", _IN_USE)},
    "redeemTicket": {**_SCOPE, **_COMMON_WRITE, **_BODY, 404: ("not_found", "unknown_code"),
                     409: ("already_checked_in", "ticket_reissued", "event_cancelled", "wrong_event", _IN_USE),
                     422: ("invalid_body", "idempotency_key_reused", "nonce_reused")},
    "redeemBatch": {**_SCOPE, **_COMMON_WRITE, **_BODY, 404: ("not_found",), 409: (_IN_USE,)},
    "reissueTicket": {**_SCOPE, **_COMMON_WRITE, **_NO_BODY, 404: ("not_found",), 409: ("edit_conflict", _IN_USE)},
    "getCheckInStatus": {**_SCOPE, 404: ("not_found",), **_COMMON_READ},
    "listScans": {**_SCOPE, 400: ("invalid_parameter",), 404: ("not_found",), **_COMMON_READ},
    "undoCheckIn": {**_SCOPE, **_COMMON_WRITE, **_NO_BODY, 404: ("not_found",), 409: ("not_checked_in", _IN_USE)},
    "reportLeakedCredentials": {400: ("invalid_request", "invalid_json"), 413: ("request_entity_too_large",),
                                422: ("invalid_parameter",), 429: ("rate_limited",), 503: ("unavailable",)},
    "listWebhooks": {**_SCOPE, **_COMMON_READ},
    "createWebhook": {**_SCOPE, **_COMMON_WRITE, **_BODY, 409: (_IN_USE,)},
    "getWebhook": {**_SCOPE, 404: ("not_found",), **_COMMON_READ},
    "updateWebhook": {**_SCOPE, **_COMMON_WRITE, **_BODY, 404: ("not_found",), 409: (_IN_USE,)},
    "deleteWebhook": {**_SCOPE, **_COMMON_WRITE, **_NO_BODY, 404: ("not_found",), 409: (_IN_USE,)},
    "rotateWebhookSecret": {**_SCOPE, **_COMMON_WRITE, **_NO_BODY, 404: ("not_found",), 409: (_IN_USE,)},
    "testWebhook": {**_SCOPE, **_COMMON_WRITE, **_NO_BODY, 404: ("not_found",), 409: (_IN_USE,)},
    "listWebhookDeliveries": {**_SCOPE, 400: ("invalid_parameter",), 404: ("not_found",), **_COMMON_READ},
    "replayWebhookMessage": {**_SCOPE, **_COMMON_WRITE, **_NO_BODY, 404: ("not_found",), 409: (_IN_USE,)},
    "recoverWebhook": {**_SCOPE, **_COMMON_WRITE, **_BODY, 404: ("not_found",), 409: (_IN_USE,)},
}
# The permission each authenticated operation needs, as its bearer requirement's scope
# (None: any token); tests/app/test_permissions.py holds the views' declarations to it.
OPERATION_SCOPES: dict[str, str | None] = {
    "getAccount": None,
    "listEvents": "events:read", "createEvent": "events:write", "getEvent": "events:read",
    "updateEvent": "events:write", "deleteEvent": "events:write",
    "listAttendees": "attendees:read", "createAttendee": "attendees:write", "getAttendee": "attendees:read",
    "updateAttendee": "attendees:write", "deleteAttendee": "attendees:write",
    "checkIn": "check_in:write", "undoCheckIn": "check_in:write",
    "redeemTicket": "check_in:write", "redeemBatch": "check_in:write", "reissueTicket": "attendees:write",
    "getCheckInStatus": "events:read", "listScans": "attendees:read",
    "listWebhooks": "webhooks:read", "createWebhook": "webhooks:write", "getWebhook": "webhooks:read",
    "updateWebhook": "webhooks:write", "deleteWebhook": "webhooks:write", "rotateWebhookSecret": "webhooks:write",
    "testWebhook": "webhooks:write", "listWebhookDeliveries": "webhooks:read",
    "replayWebhookMessage": "webhooks:write", "recoverWebhook": "webhooks:write",
}
# Refused before the app reads the request (usetix/web/trusted_hosts.py, client_address.py): any operation.
for _errors in OPERATION_ERRORS.values():
    _errors[400] = (*_errors.get(400, ()), "bad_request")
# What a status means, before its codes.
STATUS_SUMMARIES = {
    400: "Bad request.", 401: "No usable token.", 403: "Not permitted to this token.",
    404: "Not found.", 405: "Method not allowed.", 409: "Conflict.", 410: "Gone.", 412: "Precondition failed.",
    413: "Body too large.", 415: "Unsupported media type.", 422: "Unprocessable body.", 429: "Too many requests.",
    500: "Outcome unknown.", 503: "Unavailable for a moment.",
}
# Examples of messages, for the document's examples (the code's own words where it has fixed ones).
EXAMPLE_MESSAGES = {
    "full_sync_required": "Deletions from that long ago are no longer kept: sync again from the start (the list "
                          "without updated_since or cursor), then from its sync_cursor.",
    "invalid_parameter": "page must be a whole number from 1.",
    "invalid_json": "The body is not valid JSON: Invalid JSON: EOF while parsing an object at line 1 column 1.",
    "invalid_request": 'Send a JSON object: {"credentials": ["utx_...", ...]}, at most 1000 values.',
    "missing_token": "Missing token: send Authorization: Bearer <token>.",
    "insufficient_scope": "This token does not have the events:write permission this operation needs; "
                          "ask an admin for a token that has it.",
    "not_found": "No such resource in this account.",
    "method_not_allowed": "The method is not allowed for the requested URL.",
    "request_entity_too_large": "The request body is larger than the 1048576 bytes this server accepts.",
    "precondition_failed": "If-Match does not name the current version (its ETag); nothing changed. "
                           "GET it again and retry.",
    "unsupported_media_type": "Send the body as JSON, with Content-Type: application/json.",
    "rate_limited": "This token has made too many requests; retry later.",
    "unavailable": "Leak reports are paused for a moment; retry shortly.",
}

# -- headers -----------------------------------------------------------------------------

_DIGITS = {"type": "string", "pattern": "^[0-9]+$"}
HEADERS = {
    "RateLimit-Limit": {"description": "Requests allowed in the current window.", "schema": _DIGITS,
                        "example": "600"},
    "RateLimit-Remaining": {"description": "Requests left in the current window.", "schema": _DIGITS,
                            "example": "599"},
    "RateLimit-Reset": {"description": "Seconds until the window resets.", "schema": _DIGITS, "example": "42"},
    "Usetix-Token-Expiration": {
        "description": "When the token stops working (UTC); sent only for a token that expires.",
        "schema": {"type": "string", "format": "date-time"}, "example": "2027-01-01T00:00:00Z"},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": _DIGITS, "example": "30"},
    "WWW-Authenticate": {
        "description": "The RFC 6750 challenge: `error=\"invalid_request\"` for a broken header, "
                       "`\"invalid_token\"` for a token that is not valid, `\"insufficient_scope\"` for a Read "
                       "token's write; none when no bearer token was sent.",
        "required": True, "schema": {"type": "string"},
        "example": 'Bearer realm="Usetix", error="invalid_token"'},
    "ETag": {"description": "Strong entity tag of this version of the object; opaque (compare, do not parse).",
             "schema": {"type": "string"}, "example": '"3.6618e26a674e3"'},
    "Location": {"description": "The new object's URL: a relative reference (`/admin/events/42`), to resolve "
                               "against the request's URL.",
                 "schema": {"type": "string", "format": "uri-reference"}, "example": "/admin/events/42"},
    "Link": {"description": "RFC 8288 links with `rel=\"prev\"` / `rel=\"next\"`; their targets are relative "
                           "references (path and query), to resolve against the request's URL: with a "
                           "`cursor` after a first or cursor page, with `page` after a numbered one.",
             "schema": {"type": "string"}, "example": '</admin/events?cursor=eyJsaXN0Ij...>; rel="next"'},
    "Idempotent-Replayed": {"description": "`true` on an answer replayed for an `Idempotency-Key`.",
                            "schema": {"type": "string", "enum": ["true"]}, "example": "true"},
    "Allow": {"description": "The methods the path takes.", "schema": {"type": "string"},
              "example": "GET, HEAD, OPTIONS, PATCH, DELETE"},
}
# On every answer to an authenticated request: the ones the bearer hook adds.
AUTHENTICATED = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Usetix-Token-Expiration")
# Headers an error status carries besides those.
ERROR_HEADERS = {401: ("WWW-Authenticate",), 405: ("Allow",), 409: ("Retry-After",), 429: ("Retry-After",),
                 503: ("Retry-After",)}


def _headers(*names: str) -> dict:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


# -- building blocks ---------------------------------------------------------------------

def _ref(model: type) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict, example: Any) -> dict:
    return {"application/json": {"schema": schema, "example": example}}


def _error_answer(status: int, codes: tuple[str, ...], authenticated: bool) -> dict:
    lines = "\n".join(f"- `{code}`: {ERROR_CODES[code]}" for code in codes)
    # The shared Error schema, with this answer's codes: readers and validators see the enum,
    # and generators that read the $ref keep one Error class.
    schema = {"allOf": [{"$ref": REF.format(model="Error")}],
              "properties": {"error": {"type": "string", "enum": list(codes)}}}
    meaning = ERROR_CODES[codes[0]]
    example = {"error": codes[0], "message": EXAMPLE_MESSAGES.get(codes[0], meaning[:1].upper() + meaning[1:] + ".")}
    names = ERROR_HEADERS.get(status, ())
    # A 401 and a 413 are answered before the token is known; any other answer of an
    # authenticated operation comes after (a 429 carries the limit's headers itself).
    if authenticated and status not in (401, 413):
        names = (*AUTHENTICATED, *names)
    elif status == 429:
        names = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", *names)
    if status == 403:
        example["required"] = "events:write"
    answer = {"description": f"{STATUS_SUMMARIES[status]} `error` is one of:\n\n{lines}",
              "content": _json(schema, example)}
    if names:
        answer["headers"] = _headers(*names)
    if status == 403:  # the challenge names the scope; restricted_token has none
        answer["headers"]["WWW-Authenticate"] = {
            "description": "With `insufficient_scope`: the RFC 6750 challenge naming the permission needed, e.g. "
                           "`Bearer realm=\"Usetix\", error=\"insufficient_scope\", scope=\"events:write\"`.",
            "schema": {"type": "string"}}
    return answer


EVENT = {"id": 42, "title": "Launch party", "starts_at": "2026-09-01T16:00:00Z", "ends_at": "2026-09-01T21:00:00Z",
         "venue": "Rooftop", "status": "published", "created_at": "2026-05-04T09:12:30Z",
         "updated_at": "2026-05-06T14:02:11Z"}
ATTENDEE = {"id": 7, "event_id": 42, "name": "Ada Lovelace", "email": "ada@example.com", "ticket_type": "VIP",
            "checked_in": False, "checked_in_at": None, "created_at": "2026-05-04T09:15:00Z",
            "updated_at": "2026-05-04T09:15:00Z", "ticket_code": "7KQ2MX9D4TRB6WZHJ0NCE5PA"}
CHECKED_IN = {**ATTENDEE, "checked_in": True, "checked_in_at": "2026-09-01T16:42:10Z",
              "updated_at": "2026-09-01T16:42:10Z"}
AT_THE_DOOR = {name: value for name, value in CHECKED_IN.items() if name not in ("email", "ticket_code")}
ADMISSION = {"result": "admitted", "attendee": AT_THE_DOOR, "checked_in_at": "2026-09-01T16:42:10Z"}
BATCH_RESULTS = [{"nonce": "5f0c9c4e-1b7a-4d7e-9a51-6c1d2e3f4a5b", **ADMISSION},
                 {"nonce": "9b1e7d2a-0c3f-4e5d-8a6b-7c8d9e0f1a2b", "result": "already_checked_in",
                  "attendee": AT_THE_DOOR, "checked_in_at": "2026-09-01T16:42:10Z"},
                 {"nonce": "2c4e6a8b-1d3f-4a5b-9c7d-0e2f4a6b8c0d", "result": "unknown_code", "attendee": None,
                  "checked_in_at": None}]
CHECK_IN_STATUS = {"checked_in": 120, "total": 300, "by_ticket_type": {"General": {"checked_in": 100, "total": 250},
                                                                       "VIP": {"checked_in": 20, "total": 50}}}
SCAN = {"id": 901, "event_id": 42, "result": "already_checked_in", "source": "online", "code_last4": "5PA0",
        "scanned_at": "2026-09-01T16:50:02Z", "received_at": "2026-09-01T16:50:02Z",
        "updated_at": "2026-09-01T16:50:02Z", "checked_in_at": "2026-09-01T16:42:10Z",
        "attendee": {"id": 7, "name": "Ada Lovelace", "ticket_type": "VIP"},
        "token": {"id": 5, "description": "Door A scanner"}}
TOMBSTONE = {"id": 41, "deleted": True, "deleted_at": "2026-05-05T10:00:00Z"}
ACCOUNT = {"id": 1, "name": "Acme Events", "token": {"id": 3, "description": "Mailchimp sync", "tier": "read",
                                                      "created_at": "2026-05-01T08:00:00Z",
                                                      "expires_at": "2026-05-31T08:00:00Z",
                                                      "permissions": {"events": "read", "attendees": "read",
                                                                      "check_in": "none", "webhooks": "none"},
                                                      "events": None}}
META = {"page": 1, "per_page": DEFAULT_PER_PAGE, "total": 2}
REQUEST_EXAMPLES = {
    "EventCreate": {"title": "Launch party", "starts_at": "2026-09-01T18:00:00+02:00",
                    "ends_at": "2026-09-01T23:00:00+02:00", "venue": "Rooftop"},
    "EventPatch": {"venue": "Annex"},
    "AttendeeCreate": {"name": "Ada Lovelace", "email": "ada@example.com", "ticket_type": "VIP"},
    "AttendeePatch": {"ticket_type": "General"},
    "CheckIn": {"checked_in_at": "2026-09-01T18:42:10+02:00"},
    "Redeem": {"code": "7KQ2MX9D4TRB6WZHJ0NCE5PA"},
    "BatchEnvelope": {"scans": [{"nonce": "5f0c9c4e-1b7a-4d7e-9a51-6c1d2e3f4a5b", "code": "7KQ2MX9D4TRB6WZHJ0NCE5PA",
                                 "scanned_at": "2026-09-01T18:42:10+02:00"}]},
    "LeakReport": {"credentials": ["utx_" + "0" * 36]},
    "WebhookEndpointCreate": {"url": "https://hooks.example.com/usetix",
                              "events": ["attendee.checked_in", "attendee.check_in_undone"],
                              "description": "Door dashboard"},
    "WebhookEndpointPatch": {"enabled": True},
    "WebhookRecover": {"since": "2026-09-01T00:00:00Z"},
}
WEBHOOK = {"id": 5, "url": "https://hooks.example.com/usetix", "description": "Door dashboard",
           "events": ["attendee.checked_in", "attendee.check_in_undone"], "enabled": True, "disabled_reason": None,
           "failing_since": None, "created_at": "2026-05-04T09:12:30Z", "updated_at": "2026-05-04T09:12:30Z"}
WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" + "AAAAAAAAAAA="
# An attempt's error is the delivery's, not an API error code: named apart, so that
# tests/app/test_openapi.py's scan of the codes answered does not take it for one.
_ATTEMPT_ERROR = "HTTP 500"
DELIVERY = {"id": 12, "message_id": "msg_2KWPBgLlAfxdpx2AI54pPJ85", "event_type": "attendee.checked_in",
            "attempted_at": "2026-09-01T16:42:11Z", "succeeded": False, "status_code": 500, "error": _ATTEMPT_ERROR,
            "latency_ms": 84, "response_body": "Internal Server Error"}


def _strip_null_defaults(node: Any) -> Any:
    # A PATCH field is optional but never null: "default": null would invite clients to send it.
    if isinstance(node, dict):
        return {k: _strip_null_defaults(v) for k, v in node.items() if not (k == "default" and v is None)}
    if isinstance(node, list):
        return [_strip_null_defaults(v) for v in node]
    return node


def _path_id(name: str, max_row_id: int, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"The {what}'s id.",
            "schema": {"type": "integer", "minimum": 0, "maximum": max_row_id}}


def _header(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


IDEMPOTENCY_KEY = _header("Idempotency-Key", "Makes a retry safe (see the description above).",
                          {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"})
IF_MATCH = _header("If-Match", "The `ETag` this change is based on; a stale one gives 412.")
IF_NONE_MATCH = _header("If-None-Match", "An `ETag` you hold; 304 when it is still current.")
LIST_PARAMETERS = [
    {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
     "description": "A position from a `Link` target or `meta.sync_cursor` (opaque: pass it back as it is). "
                    "It holds the filters and the page size: give no `page`, `updated_since` or `include_deleted` "
                    "with it; `per_page` may change the size."},
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
     "description": "Page number, from 1: numbered pages with `meta.total` and page links, by OFFSET (the slow "
                    "way to a deep page; prefer the cursors of the `Link` header)."},
    # No schema default: a generated client would send it with every cursor, overriding the cursor's own size.
    {"name": "per_page", "in": "query",
     "description": f"Items a page: {DEFAULT_PER_PAGE} if not given (a cursor's page: the size it was made with).",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}},
    {"name": "updated_since", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "Only what changed at or after this time (ISO 8601; UTC if no offset), in the order of "
                    "change: a sync walk, whose last page carries `meta.sync_cursor`."},
    {"name": "include_deleted", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]},
     "description": "`true`: the list also holds what was deleted (since `updated_since`, if given), as "
                    "tombstones `{\"id\", \"deleted\": true, \"deleted_at\"}`, sorted with the rest."},
]


def _body(model: type, *, required: bool = True, merge_patch: bool = False) -> dict:
    example = REQUEST_EXAMPLES[model.__name__]
    content = _json(_ref(model), example)
    if merge_patch:
        content["application/merge-patch+json"] = {"schema": _ref(model), "example": example}
    return {"required": required, "content": content}


def _link(operation_id: str, **parameters: str) -> dict:
    return {"operationId": operation_id, "parameters": parameters}


EVENT_LINKS = {
    "GetEvent": _link("getEvent", event_id="$response.body#/data/id"),
    "UpdateEvent": _link("updateEvent", event_id="$response.body#/data/id"),
    "DeleteEvent": _link("deleteEvent", event_id="$response.body#/data/id"),
    "CreateAttendee": _link("createAttendee", event_id="$response.body#/data/id"),
    "ListAttendees": _link("listAttendees", event_id="$response.body#/data/id"),
}
_ATTENDEE = {"event_id": "$response.body#/data/event_id", "attendee_id": "$response.body#/data/id"}
ATTENDEE_LINKS = {
    "GetAttendee": _link("getAttendee", **_ATTENDEE),
    "UpdateAttendee": _link("updateAttendee", **_ATTENDEE),
    "CheckIn": _link("checkIn", **_ATTENDEE),
    "UndoCheckIn": _link("undoCheckIn", **_ATTENDEE),
    "DeleteAttendee": _link("deleteAttendee", **_ATTENDEE),
}


LEAK_REPORT_DESCRIPTION = (
    "Needs no token: anyone who finds Usetix tokens (a person, a secret scanner) sends them here. Every "
    "well-formed value that matches a live token is revoked at once, recorded in its account's audit log as "
    "reported leaked (with the reporter's address) and shown to its admins. The answer is always `202` with "
    "the same body, whatever was matched. Values that are not well-formed tokens (`utx_` and 36 base62 "
    "characters ending in the CRC32 checksum) are ignored. Limited per client address (60 an hour by default)."
)
WRITE_TIER = " Needs a Read + Write token."
IDEMPOTENT = " Send an `Idempotency-Key` to make a retry safe."


def _operation(operation_id: str, tag: str, summary: str, description: str, answers: dict, *,
               parameters: list | None = None, body: dict | None = None, security: list | None = None) -> dict:
    """One operation: its successful ``answers`` and the error answers of OPERATION_ERRORS."""
    authenticated = security is None
    responses = dict(answers)
    for status, codes in sorted(OPERATION_ERRORS[operation_id].items()):
        responses[str(status)] = _error_answer(status, codes, authenticated)
    operation: dict[str, Any] = {"operationId": operation_id, "tags": [tag], "summary": summary,
                                 "description": description}
    if authenticated:  # its permission, as the bearer requirement's scope (OpenAPI 3.1 allows it for any scheme)
        needed = OPERATION_SCOPES[operation_id]
        security = [{"bearerAuth": [needed] if needed else []}]
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    if security is not None:
        operation["security"] = security
    operation["responses"] = responses
    return operation


def _answer(description: str, schema: dict | None = None, example: Any = None, *, headers: tuple[str, ...] = (),
            links: dict | None = None, authenticated: bool = True) -> dict:
    names = (*AUTHENTICATED, *headers) if authenticated else headers
    answer: dict[str, Any] = {"description": description}
    if names:
        answer["headers"] = _headers(*names)
    if schema is not None:
        answer["content"] = _json(schema, example)
    if links:
        answer["links"] = links
    return answer


WEBHOOKS_DESCRIPTION = (
    "Each delivery is a `POST` of `{\"type\", \"timestamp\", \"data\"}` (`data`: the object as this API answers "
    "it, or `{\"id\", \"deleted\": true}`) with the Standard Webhooks headers `webhook-id` (the same on every "
    "attempt of a message), `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256>`): verify it with "
    "the official `standardwebhooks` library and the endpoint's secret. A `2xx` within 15 s is success; a `410` "
    "disables the endpoint; anything else is retried for about three days (5 s, 5 min, 30 min, 2 h, 5 h, then every "
    "10 h). Redirects are not followed."
)


def _webhook_paths(max_row_id: int) -> dict:
    endpoint_id = _path_id("endpoint_id", max_row_id, "webhook endpoint")
    message_id = {"name": "message_id", "in": "path", "required": True,
                  "description": "The message's `webhook-id`.", "schema": {"type": "string", "maxLength": 40}}
    replayed = ("Idempotent-Replayed",)
    return {
        "/admin/webhooks": {
            "get": _operation(
                "listWebhooks", "Webhooks", "The account's webhook endpoints",
                "Every webhook endpoint of the account, oldest first (never their secrets). " + WEBHOOKS_DESCRIPTION,
                {"200": _answer("The endpoints.", _ref(s.WebhookEndpointList), {"data": [WEBHOOK]})}),
            "post": _operation(
                "createWebhook", "Webhooks", "Add a webhook endpoint; its secret is in this answer only",
                "Adds an endpoint for the event types given. The `url` is `https`, has no credentials and does not "
                "point at a loopback, private, link-local or multicast address (a refused one is `422` with "
                "`errors[].field` `url`). The answer carries the `secret` (`whsec_...`) this once." + WRITE_TIER
                + IDEMPOTENT,
                {"201": _answer("Created.", _ref(s.WebhookEndpointCreatedEnvelope),
                                {"data": {**WEBHOOK, "secret": WEBHOOK_SECRET}}, headers=("Location", *replayed))},
                parameters=[IDEMPOTENCY_KEY], body=_body(s.WebhookEndpointCreate)),
        },
        "/admin/webhooks/{endpoint_id}": {
            "parameters": [endpoint_id],
            "get": _operation("getWebhook", "Webhooks", "One webhook endpoint", "One endpoint (never its secret).",
                              {"200": _answer("The endpoint.", _ref(s.WebhookEndpointEnvelope), {"data": WEBHOOK})}),
            "patch": _operation(
                "updateWebhook", "Webhooks", "Change an endpoint (a merge patch): url, events, description, enabled",
                "Changes the fields given. `enabled: true` enables an endpoint again (after a `410` or three days "
                "of failures) with a fresh start." + WRITE_TIER + IDEMPOTENT,
                {"200": _answer("The changed endpoint.", _ref(s.WebhookEndpointEnvelope), {"data": WEBHOOK},
                                headers=replayed)},
                parameters=[IDEMPOTENCY_KEY], body=_body(s.WebhookEndpointPatch, merge_patch=True)),
            "delete": _operation(
                "deleteWebhook", "Webhooks", "Delete an endpoint, its pending messages and its log",
                "Deletes the endpoint: nothing more is sent to it." + WRITE_TIER + IDEMPOTENT,
                {"204": _answer("Done.", headers=replayed)}, parameters=[IDEMPOTENCY_KEY]),
        },
        "/admin/webhooks/{endpoint_id}/rotate_secret": {
            "parameters": [endpoint_id],
            "post": _operation(
                "rotateWebhookSecret", "Webhooks", "A new secret, shown this once; the old one signs too for 24 h",
                "Makes a new secret. For 24 hours every delivery carries two signatures, the new secret's and the "
                "previous one's, so a consumer can switch without missing one." + WRITE_TIER + IDEMPOTENT,
                {"200": _answer("The new secret.", _ref(s.WebhookSecretEnvelope),
                                {"data": {"secret": WEBHOOK_SECRET,
                                          "previous_secret_expires_at": "2026-09-02T16:00:00Z"}},
                                headers=replayed)},
                parameters=[IDEMPOTENCY_KEY]),
        },
        "/admin/webhooks/{endpoint_id}/test": {
            "parameters": [endpoint_id],
            "post": _operation(
                "testWebhook", "Webhooks", "Send a `webhook.test` event to the endpoint",
                "Queues a `webhook.test` message for this endpoint, whatever it subscribes to." + WRITE_TIER
                + IDEMPOTENT,
                {"202": _answer("Queued.", _ref(s.WebhookQueuedEnvelope),
                                {"data": {"message_id": DELIVERY["message_id"]}}, headers=replayed)},
                parameters=[IDEMPOTENCY_KEY]),
        },
        "/admin/webhooks/{endpoint_id}/deliveries": {
            "parameters": [endpoint_id],
            "get": _operation(
                "listWebhookDeliveries", "Webhooks", "The endpoint's delivery log: every attempt, oldest first",
                "Each attempt's time, HTTP status or error, latency and the first 2 KB of the answer; kept 30 "
                "days. `status=failed` lists the failed attempts only. Paged like the other lists (`Link`, "
                "`cursor`, `per_page`, `page`); `updated_since` and `include_deleted` do not apply.",
                {"200": _answer("A page of attempts.", _ref(s.WebhookDeliveryPage),
                                {"data": [DELIVERY], "meta": {**META, "total": 1}}, headers=("Link",))},
                parameters=[{"name": "status", "in": "query", "description": "`failed`: failed attempts only.",
                             "schema": {"type": "string", "enum": ["failed"]}},
                            *(parameter for parameter in LIST_PARAMETERS
                              if parameter["name"] in ("cursor", "page", "per_page"))]),
        },
        "/admin/webhooks/{endpoint_id}/deliveries/{message_id}/replay": {
            "parameters": [endpoint_id, message_id],
            "post": _operation(
                "replayWebhookMessage", "Webhooks", "Send one message again (same `webhook-id`, fresh signature)",
                "Queues the message with this `webhook-id` again: the same id and body, a fresh timestamp and "
                "signature. An id this endpoint never had is `404`." + WRITE_TIER + IDEMPOTENT,
                {"202": _answer("Queued.", _ref(s.WebhookQueuedEnvelope),
                                {"data": {"message_id": DELIVERY["message_id"]}}, headers=replayed)},
                parameters=[IDEMPOTENCY_KEY]),
        },
        "/admin/webhooks/{endpoint_id}/recover": {
            "parameters": [endpoint_id],
            "post": _operation(
                "recoverWebhook", "Webhooks", "Queue again every failed message since a time",
                "Every message to this endpoint that failed (its retries spent, or its endpoint disabled) and was "
                "made at or after `since` is queued again from the start of the schedule." + WRITE_TIER
                + IDEMPOTENT,
                {"202": _answer("Queued.", _ref(s.WebhookRecoveredEnvelope), {"data": {"requeued": 3}},
                                headers=replayed)},
                parameters=[IDEMPOTENCY_KEY], body=_body(s.WebhookRecover)),
        },
    }


def _paths(max_row_id: int) -> dict:
    event_id = _path_id("event_id", max_row_id, "event")
    attendee_id = _path_id("attendee_id", max_row_id, "attendee")
    not_modified = _answer("Not modified: `If-None-Match` names the current version.", headers=("ETag",))
    written = ("ETag", "Idempotent-Replayed")
    created = ("ETag", "Location", "Idempotent-Replayed")
    done = _answer("Done.", headers=("Idempotent-Replayed",))
    event = ({"data": EVENT}, EVENT_LINKS)
    attendee = ({"data": ATTENDEE}, ATTENDEE_LINKS)
    return {
        "/admin/account": {
            "get": _operation(
                "getAccount", "Account", "The token's account and the token itself",
                "The account the token belongs to (id, name) and the token: its description, tier, "
                "`expires_at` (null for a token that never expires), permissions and the events it is limited "
                "to (null: every event). Any token may call it: a script can "
                "check its token here first.",
                {"200": _answer("The account and the token.", _ref(s.AccountEnvelope), {"data": ACCOUNT})}),
        },
        "/admin/events": {
            "get": _operation(
                "listEvents", "Events", "The account's events, soonest first",
                "One page of the account's events, soonest first (by `starts_at`, then id). Follow the "
                "`Link` header's `rel=\"next\"` for the next page. For a sync, ask with `updated_since` and "
                "`include_deleted=true`, upsert the rows by id and drop the ids that come back as tombstones; "
                "then follow the last page's `meta.sync_cursor` next time.",
                {"200": _answer("A page of events.", _ref(s.EventPage),
                                {"data": [EVENT, TOMBSTONE], "meta": META}, headers=("Link",))},
                parameters=LIST_PARAMETERS),
            "post": _operation(
                "createEvent", "Events", "Create an event (a draft unless `status` says so)",
                "Creates an event in the token's account: `title`, `starts_at`, `ends_at` and `venue` are "
                "required, `status` is `draft` unless given. Timestamps need an offset; `ends_at` may not be "
                "before `starts_at`." + WRITE_TIER + IDEMPOTENT,
                {"201": _answer("Created.", _ref(s.EventEnvelope), event[0], headers=created, links=event[1])},
                parameters=[IDEMPOTENCY_KEY], body=_body(s.EventCreate)),
        },
        "/admin/events/{event_id}": {
            "parameters": [event_id],
            "get": _operation(
                "getEvent", "Events", "One event",
                "One event of the account, with its `ETag`. Send the `ETag` you hold in `If-None-Match` to "
                "get `304` (no body) when it has not changed.",
                {"200": _answer("The event.", _ref(s.EventEnvelope), event[0], headers=("ETag",)),
                 "304": not_modified},
                parameters=[IF_NONE_MATCH]),
            "patch": _operation(
                "updateEvent", "Events",
                "Change an event's fields (a merge patch, RFC 7396); `status: cancelled` cancels it",
                "Changes the fields given; none may be null. With `If-Match` (the `ETag` you read), a change "
                "made meanwhile by someone else is `412` instead of lost. Cancel an event with attendees "
                "instead of deleting it: `{\"status\": \"cancelled\"}`." + WRITE_TIER + IDEMPOTENT,
                {"200": _answer("The changed event.", _ref(s.EventEnvelope), event[0], headers=written,
                                links=event[1])},
                parameters=[IF_MATCH, IDEMPOTENCY_KEY], body=_body(s.EventPatch, merge_patch=True)),
            "delete": _operation(
                "deleteEvent", "Events",
                "Delete an event without attendees (409 while it has some: cancel it instead)",
                "Deletes an event that has no attendees; lists asked with `include_deleted=true` show its "
                "tombstone from then on. An event with attendees is `409 event_has_attendees`: cancel it "
                "instead." + WRITE_TIER + IDEMPOTENT,
                {"204": done}, parameters=[IF_MATCH, IDEMPOTENCY_KEY]),
        },
        "/admin/events/{event_id}/attendees": {
            "parameters": [event_id],
            "get": _operation(
                "listAttendees", "Attendees", "The event's attendees",
                "One page of the event's attendees, by id; paged, filtered and synced like the events "
                "(`Link`, `updated_since`, `include_deleted`).",
                {"200": _answer("A page of attendees.", _ref(s.AttendeePage),
                                {"data": [ATTENDEE, {**TOMBSTONE, "id": 6}], "meta": META}, headers=("Link",))},
                parameters=LIST_PARAMETERS),
            "post": _operation(
                "createAttendee", "Attendees", "Add an attendee to the event",
                "Adds an attendee (`name`, `email`, `ticket_type`) to the event; a cancelled event is `409 "
                "event_cancelled`." + WRITE_TIER + IDEMPOTENT,
                {"201": _answer("Created.", _ref(s.AttendeeEnvelope), attendee[0], headers=created,
                                links=attendee[1])},
                parameters=[IDEMPOTENCY_KEY], body=_body(s.AttendeeCreate)),
        },
        "/admin/events/{event_id}/attendees/{attendee_id}": {
            "parameters": [event_id, attendee_id],
            "get": _operation(
                "getAttendee", "Attendees", "One attendee",
                "One attendee of the event, with its `ETag`; `If-None-Match` gives `304` when it has not "
                "changed.",
                {"200": _answer("The attendee.", _ref(s.AttendeeEnvelope), attendee[0], headers=("ETag",)),
                 "304": not_modified},
                parameters=[IF_NONE_MATCH]),
            "patch": _operation(
                "updateAttendee", "Attendees", "Change an attendee's fields (a merge patch)",
                "Changes the fields given; none may be null. `If-Match` makes a concurrent change `412` "
                "instead of lost." + WRITE_TIER + IDEMPOTENT,
                {"200": _answer("The changed attendee.", _ref(s.AttendeeEnvelope), attendee[0], headers=written,
                                links=attendee[1])},
                parameters=[IF_MATCH, IDEMPOTENCY_KEY], body=_body(s.AttendeePatch, merge_patch=True)),
            "delete": _operation(
                "deleteAttendee", "Attendees", "Delete an attendee",
                "Deletes the attendee; lists asked with `include_deleted=true` show its tombstone from then "
                "on." + WRITE_TIER + IDEMPOTENT,
                {"204": done}, parameters=[IF_MATCH, IDEMPOTENCY_KEY]),
        },
        "/admin/events/{event_id}/attendees/{attendee_id}/check_in": {
            "parameters": [event_id, attendee_id],
            "post": _operation(
                "checkIn", "Check-in", "Check the attendee in, now or at the scan's `checked_in_at`; 409 if already",
                "Checks the attendee in: now with an empty body, or at the time an offline scanner saw the "
                "ticket (`checked_in_at`). Of many scanners at once exactly one gets `201`; the others get "
                "`409 already_checked_in` with the time." + WRITE_TIER + IDEMPOTENT,
                {"201": _answer("Checked in (without `email` for a token without `attendees:read`).",
                                _ref(s.CheckedInEnvelope), {"data": CHECKED_IN}, headers=written,
                                links={"UndoCheckIn": ATTENDEE_LINKS["UndoCheckIn"],
                                       "GetAttendee": ATTENDEE_LINKS["GetAttendee"]})},
                parameters=[IDEMPOTENCY_KEY], body=_body(s.CheckIn, required=False)),
            "delete": _operation(
                "undoCheckIn", "Check-in", "Undo a check-in; 409 if not checked in",
                "Undoes the attendee's check-in; an attendee who is not checked in is `409 "
                "not_checked_in`." + WRITE_TIER + IDEMPOTENT,
                {"204": done}, parameters=[IDEMPOTENCY_KEY]),
        },
        "/admin/events/{event_id}/check_ins": {
            "parameters": [event_id],
            "post": _operation(
                "redeemTicket", "Door", "Redeem a ticket code at the event's door: admitted, or why not",
                "Checks in the attendee whose ticket carries `code` (as the scanner read it: case, hyphens and "
                "the look-alikes O, I, L do not matter), at `scanned_at` (now if left out; at most 5 minutes "
                "ahead of the server's clock). `201` admits; a refusal says why, with the attendee when the "
                "code is known: `409 already_checked_in` (with the first `checked_in_at`), `ticket_reissued`, "
                "`event_cancelled`, `wrong_event` (with the ticket's `event`), or `404 unknown_code`. Of many "
                "scanners at once exactly one is admitted. Every scan is recorded (`listScans`). The "
                "`Idempotency-Key` is also the scan's nonce: sent again (here, or in a batch, for 30 days and "
                "more) it gets the first result with `replayed: true`." + WRITE_TIER + IDEMPOTENT,
                {"201": _answer("Admitted (without `email` and `ticket_code` for a token without "
                                "`attendees:read`).", _ref(s.AdmissionEnvelope), {"data": ADMISSION},
                                headers=("Idempotent-Replayed",))},
                parameters=[IDEMPOTENCY_KEY], body=_body(s.Redeem)),
        },
        "/admin/events/{event_id}/check_ins/batch": {
            "parameters": [event_id],
            "post": _operation(
                "redeemBatch", "Door", "Send the scans an offline scanner queued (1 to 500); safe to send again",
                "Each scan of `scans` is a `BatchScan` (`nonce`, `code`, `scanned_at`) and gets its result in "
                "`data`, in the input's order: `admitted` or a refusal's reason (as `redeemTicket`'s), "
                "`nonce_reused` (the nonce came before with another code), or `invalid` with its `errors` (a "
                "scan that breaks the schema fails alone, never the batch). A nonce seen before (in a batch or "
                "as a redeem's `Idempotency-Key`) gets its first result again with `replayed: true` and "
                "changes nothing, so a batch may be sent again after a lost answer. When two scanners admitted "
                "one ticket offline, the earliest `scanned_at` is the check-in, whichever batch came first; the "
                "other is recorded as `already_checked_in`. More than 500 scans, or none, is `422 "
                "invalid_body`." + WRITE_TIER,
                {"200": _answer("Every scan's result, in the input's order.", _ref(s.BatchResults),
                                {"data": BATCH_RESULTS}, headers=("Idempotent-Replayed",))},
                parameters=[IDEMPOTENCY_KEY], body=_body(s.BatchEnvelope)),
        },
        "/admin/events/{event_id}/attendees/{attendee_id}/reissue_ticket": {
            "parameters": [event_id, attendee_id],
            "post": _operation(
                "reissueTicket", "Door", "Give the attendee a new ticket code; the old one is refused from now on",
                "The attendee gets a new `ticket_code`; the old code is refused at the door as "
                "`ticket_reissued`." + WRITE_TIER + IDEMPOTENT,
                {"200": _answer("The attendee with its new code.", _ref(s.AttendeeEnvelope),
                                {"data": {**ATTENDEE, "ticket_code": "H3XW8TQ0R5NB2KD7YMZ4C9AJ",
                                          "updated_at": "2026-09-01T16:40:00Z"}}, headers=written)},
                parameters=[IDEMPOTENCY_KEY]),
        },
        "/admin/events/{event_id}/check_in_status": {
            "parameters": [event_id],
            "get": _operation(
                "getCheckInStatus", "Door", "The event's live counts: checked in, of how many, by ticket type",
                "For a door display: poll with the `ETag` in `If-None-Match`, and get `304` until a count "
                "may have changed.",
                {"200": _answer("The counts.", _ref(s.CheckInStatusEnvelope), {"data": CHECK_IN_STATUS},
                                headers=("ETag",)),
                 "304": not_modified},
                parameters=[IF_NONE_MATCH]),
        },
        "/admin/events/{event_id}/scans": {
            "parameters": [event_id],
            "get": _operation(
                "listScans", "Door", "Every scan at the event's door, admitted or refused, newest first",
                "The history: each scan's `result`, `scanned_at`, `received_at`, source (online or batch), "
                "attendee (when the code was known), token, and the code's last 4 characters only. Paged by "
                "the `Link` header; `result` filters (the page links keep it); `updated_since` walks in "
                "the order of change (a scan changes when an earlier offline scan takes its check-in over).",
                {"200": _answer("A page of scans.", _ref(s.ScanPage),
                                {"data": [SCAN], "meta": {**META, "total": 1}}, headers=("Link",))},
                parameters=[{"name": "result", "in": "query", "description": "Only the scans with this result.",
                             "schema": {"type": "string", "enum": list(s.SCAN_RESULTS)}},
                            *(parameter for parameter in LIST_PARAMETERS if parameter["name"] != "include_deleted")]),
        },
        "/admin/credentials/revoke": {
            "post": _operation(
                "reportLeakedCredentials", "Leak reports",
                "Report leaked tokens: every live one among the values is revoked at once",
                LEAK_REPORT_DESCRIPTION,
                {"202": _answer("Accepted: the same answer whether or not any value was a live token.",
                                _ref(s.LeakReportAccepted),
                                {"message": "Thank you. Every live Usetix token among these values is now "
                                            "revoked, and its account's admins are told. This answer is the "
                                            "same whether or not any value was a token."},
                                authenticated=False)},
                body=_body(s.LeakReport), security=[]),
        },
        **_webhook_paths(max_row_id),
    }


def build_document(max_row_id: int) -> dict:
    """The whole OpenAPI document; ``max_row_id`` is the largest id a path accepts."""
    _, definitions = models_json_schema(
        [(m, "validation") for m in INPUT_MODELS] + [(m, "serialization") for m in OUTPUT_MODELS],
        ref_template=REF,
    )
    return _strip_null_defaults({
        "openapi": "3.1.0",
        "info": {"title": "Usetix Admin API", "version": "1.3.0", "description": DESCRIPTION},
        "servers": [{"url": "/", "description": "The server that serves this document."}],
        "security": [{"bearerAuth": []}],
        "tags": TAGS,
        "paths": _paths(max_row_id),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": BEARER_DESCRIPTION}},
            "schemas": definitions["$defs"],
            "headers": HEADERS,
        },
    })
