"""The OpenAPI 3.1 document of the JSON API, built from the pydantic models that validate.

``build_document()`` is served at /admin/openapi.json; tests/test_openapi.py fails when
its operations and the app's routes disagree. Pure: no Flask.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from . import api_schemas as s
from .list_query import MAX_PAGE, MAX_PER_PAGE

REF = "#/components/schemas/{model}"
INPUT_MODELS = (s.EventCreate, s.EventPatch, s.AttendeeCreate, s.AttendeePatch, s.CheckIn, s.LeakReport)
OUTPUT_MODELS = (s.Event, s.Attendee, s.Tombstone, s.Account, s.ListMeta, s.Error, s.FieldError,
                 s.LeakReportAccepted)

DESCRIPTION = (
    "Read and write your Usetix account's data with an account-scoped bearer token. Send "
    "`Authorization: Bearer <token>` and `Accept: application/json` on every request. A Read token may "
    "use GET and HEAD; a Read + Write token every operation here.\n\n"
    "**Retries.** POST, PATCH and DELETE take an `Idempotency-Key` header (1 to 255 visible ASCII "
    "characters, e.g. a UUID), kept 24 hours per token: a retry with the same key and the same request "
    "gets the first answer again, with `Idempotent-Replayed: true`, and changes nothing twice. The same "
    "key with another request is `422 idempotency_key_reused`; while the first is still running, `409` "
    "with `Retry-After`. `409`, `429` and `5xx` answers are not kept.\n\n"
    "**Concurrent edits.** A single event or attendee carries a strong `ETag`; send it back in "
    "`If-Match` with PATCH or DELETE, and a stale one is `412` (nothing changes). `If-None-Match` on "
    "a GET gives `304` when nothing changed.\n\n"
    "**Sync.** Lists take `updated_since`; with `include_deleted=true` they also hold what was deleted "
    "since then, as `{\"id\", \"deleted\": true, \"deleted_at\"}`.\n\n"
    "**Expiry.** Every authenticated answer of a token that expires carries "
    "`Usetix-Token-Expiration: <ISO 8601 UTC>`."
)


def _ref(model: type) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _data(model: type) -> dict:
    return {"type": "object", "properties": {"data": _ref(model)}, "required": ["data"],
            "additionalProperties": False}


def _list(*models: type) -> dict:
    item = _ref(models[0]) if len(models) == 1 else {"anyOf": [_ref(m) for m in models]}
    return {
        "type": "object",
        "properties": {"data": {"type": "array", "items": item}, "meta": _ref(s.ListMeta)},
        "required": ["data", "meta"],
        "additionalProperties": False,
    }


def _error(description: str, *headers: str) -> dict:
    answer: dict[str, Any] = {"description": description, "content": _json(_ref(s.Error))}
    if headers:
        answer["headers"] = {name: {"schema": {"type": "string"}} for name in headers}
    return answer


def _strip_null_defaults(node: Any) -> Any:
    # A PATCH field is optional but never null: "default": null would invite clients to send it.
    if isinstance(node, dict):
        return {k: _strip_null_defaults(v) for k, v in node.items() if not (k == "default" and v is None)}
    if isinstance(node, list):
        return [_strip_null_defaults(v) for v in node]
    return node


RESPONSES = {
    "Unauthorized": _error("Missing, malformed, unknown, revoked or expired token (an expired one: `error` is "
                           "`expired_token`, the challenge's `error=\"invalid_token\"`, and the message says when), "
                           "or a read token with a method other than GET/HEAD (`insufficient_scope`).",
                           "WWW-Authenticate"),
    "NotFound": _error("No such resource in this account (the same answer whether it exists in another "
                       "account or nowhere)."),
    "MethodNotAllowed": _error("The path does not take this method.", "Allow"),
    "TooManyRequests": _error("Rate limit exceeded; retry after `Retry-After` seconds.", "Retry-After"),
    "BadRequest": _error("Malformed JSON (`invalid_json`), a bad query parameter (`invalid_parameter`) or "
                         "a bad `Idempotency-Key` (`invalid_idempotency_key`)."),
    "Conflict": _error("The request conflicts with the object's state (`already_checked_in`, "
                       "`not_checked_in`, `event_has_attendees`, `event_cancelled`, `edit_conflict`: it "
                       "changed while the request ran, retry), or a request with the same "
                       "`Idempotency-Key` is still running (`idempotency_key_in_use`, with `Retry-After`).",
                       "Retry-After"),
    "PreconditionFailed": _error("`If-Match` names no current version of the object; nothing changed."),
    "PayloadTooLarge": _error("The body is larger than the server accepts."),
    "UnsupportedMediaType": _error("The body is not JSON (send `Content-Type: application/json`)."),
    "UnprocessableContent": _error("`invalid_body`: the body breaks the schema, and `errors` names every bad "
                                   "field; or `idempotency_key_reused`: the key was used for another request."),
}

LINK_HEADER = {"Link": {"description": "RFC 8288 links with rel=\"prev\" / rel=\"next\"; their targets are "
                                  "relative references (path and query), to resolve against the request's URL.",
                        "schema": {"type": "string"}}}
ETAG_HEADER = {"ETag": {"description": "Strong entity tag of this version of the object.",
                        "schema": {"type": "string"}}}
REPLAYED_HEADER = {"Idempotent-Replayed": {"description": "`true` on an answer replayed for an Idempotency-Key.",
                                           "schema": {"type": "string", "enum": ["true"]}}}


def _path_id(name: str, max_row_id: int) -> dict:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": max_row_id}}


def _header(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


IDEMPOTENCY_KEY = _header("Idempotency-Key", "Makes a retry safe (see the description above).",
                          {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"})
IF_MATCH = _header("If-Match", "The `ETag` this change is based on; a stale one gives 412.")
IF_NONE_MATCH = _header("If-None-Match", "An `ETag` you hold; 304 when it is still current.")
LIST_PARAMETERS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
     "description": "Page number, from 1."},
    {"name": "per_page", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 25}},
    {"name": "updated_since", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "Only what changed at or after this time (ISO 8601; UTC if no offset)."},
    {"name": "include_deleted", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]},
     "description": "`true`: the list also holds what was deleted (since `updated_since`, if given), as "
                    "tombstones `{\"id\", \"deleted\": true, \"deleted_at\"}`, sorted with the rest."},
]


def _common(*codes: str) -> dict:
    names = {"400": "BadRequest", "401": "Unauthorized", "404": "NotFound", "405": "MethodNotAllowed",
             "409": "Conflict", "412": "PreconditionFailed", "413": "PayloadTooLarge",
             "415": "UnsupportedMediaType", "422": "UnprocessableContent", "429": "TooManyRequests"}
    return {code: {"$ref": f"#/components/responses/{names[code]}"} for code in codes}


def _body(model: type, *, required: bool = True, merge_patch: bool = False) -> dict:
    content = _json(_ref(model))
    if merge_patch:
        content["application/merge-patch+json"] = {"schema": _ref(model)}
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


def _paths(max_row_id: int) -> dict:
    event_id = _path_id("event_id", max_row_id)
    attendee_id = _path_id("attendee_id", max_row_id)
    read = _common("401", "405", "429")
    write = _common("400", "401", "404", "405", "409", "413", "415", "422", "429")

    def ok(model: type, description: str = "OK", *, status_headers: dict | None = None,
           links: dict | None = None) -> dict:
        answer: dict[str, Any] = {"description": description, "content": _json(_data(model)),
                                  "headers": {**(status_headers or {}), **REPLAYED_HEADER}}
        if links:
            answer["links"] = links
        return answer

    created_headers = {**ETAG_HEADER, "Location": {"schema": {"type": "string"}}}
    no_content = {"description": "Done.", "headers": REPLAYED_HEADER}
    return {
        "/admin/account": {
            "get": {"operationId": "getAccount", "summary": "The token's account and the token itself",
                    "responses": {"200": {"description": "OK", "content": _json(_data(s.Account))}, **read}},
        },
        "/admin/events": {
            "get": {"operationId": "listEvents", "summary": "The account's events, soonest first",
                    "parameters": LIST_PARAMETERS,
                    "responses": {"200": {"description": "OK", "content": _json(_list(s.Event, s.Tombstone)),
                                          "headers": LINK_HEADER},
                                  **_common("400"), **read}},
            "post": {"operationId": "createEvent", "summary": "Create an event (a draft unless `status` says so)",
                     "parameters": [IDEMPOTENCY_KEY], "requestBody": _body(s.EventCreate),
                     "responses": {"201": ok(s.Event, "Created.", status_headers=created_headers, links=EVENT_LINKS),
                                   **write}},
        },
        "/admin/events/{event_id}": {
            "parameters": [event_id],
            "get": {"operationId": "getEvent", "summary": "One event", "parameters": [IF_NONE_MATCH],
                    "responses": {"200": {"description": "OK", "content": _json(_data(s.Event)),
                                          "headers": ETAG_HEADER},
                                  "304": {"description": "Not modified (If-None-Match)."},
                                  **_common("404"), **read}},
            "patch": {"operationId": "updateEvent",
                      "summary": "Change an event's fields (a merge patch, RFC 7396); `status: cancelled` cancels it",
                      "parameters": [IF_MATCH, IDEMPOTENCY_KEY], "requestBody": _body(s.EventPatch, merge_patch=True),
                      "responses": {"200": ok(s.Event, status_headers=ETAG_HEADER, links=EVENT_LINKS),
                                    **write, **_common("412")}},
            "delete": {"operationId": "deleteEvent",
                       "summary": "Delete an event without attendees (409 while it has some: cancel it instead)",
                       "parameters": [IF_MATCH, IDEMPOTENCY_KEY],
                       "responses": {"204": no_content, **write, **_common("412")}},
        },
        "/admin/events/{event_id}/attendees": {
            "parameters": [event_id],
            "get": {"operationId": "listAttendees", "summary": "The event's attendees",
                    "parameters": LIST_PARAMETERS,
                    "responses": {"200": {"description": "OK", "content": _json(_list(s.Attendee, s.Tombstone)),
                                          "headers": LINK_HEADER},
                                  **_common("400", "404"), **read}},
            "post": {"operationId": "createAttendee", "summary": "Add an attendee to the event",
                     "parameters": [IDEMPOTENCY_KEY], "requestBody": _body(s.AttendeeCreate),
                     "responses": {"201": ok(s.Attendee, "Created.", status_headers=created_headers,
                                             links=ATTENDEE_LINKS), **write}},
        },
        "/admin/events/{event_id}/attendees/{attendee_id}": {
            "parameters": [event_id, attendee_id],
            "get": {"operationId": "getAttendee", "summary": "One attendee", "parameters": [IF_NONE_MATCH],
                    "responses": {"200": {"description": "OK", "content": _json(_data(s.Attendee)),
                                          "headers": ETAG_HEADER},
                                  "304": {"description": "Not modified (If-None-Match)."},
                                  **_common("404"), **read}},
            "patch": {"operationId": "updateAttendee", "summary": "Change an attendee's fields (a merge patch)",
                      "parameters": [IF_MATCH, IDEMPOTENCY_KEY],
                      "requestBody": _body(s.AttendeePatch, merge_patch=True),
                      "responses": {"200": ok(s.Attendee, status_headers=ETAG_HEADER, links=ATTENDEE_LINKS),
                                    **write, **_common("412")}},
            "delete": {"operationId": "deleteAttendee", "summary": "Delete an attendee",
                       "parameters": [IF_MATCH, IDEMPOTENCY_KEY],
                       "responses": {"204": no_content, **write, **_common("412")}},
        },
        "/admin/events/{event_id}/attendees/{attendee_id}/check_in": {
            "parameters": [event_id, attendee_id],
            "post": {"operationId": "checkIn",
                     "summary": "Check the attendee in, now or at the scan's `checked_in_at`; 409 if already",
                     "parameters": [IDEMPOTENCY_KEY], "requestBody": _body(s.CheckIn, required=False),
                     "responses": {"201": ok(s.Attendee, "Checked in.", status_headers=ETAG_HEADER,
                                             links={"UndoCheckIn": ATTENDEE_LINKS["UndoCheckIn"],
                                                    "GetAttendee": ATTENDEE_LINKS["GetAttendee"]}),
                                   **write}},
            "delete": {"operationId": "undoCheckIn", "summary": "Undo a check-in; 409 if not checked in",
                       "parameters": [IDEMPOTENCY_KEY], "responses": {"204": no_content, **write}},
        },
        "/admin/credentials/revoke": {
            "post": {
                "operationId": "reportLeakedCredentials",
                "summary": "Report leaked tokens: every live one among the values is revoked at once",
                "description": LEAK_REPORT_DESCRIPTION,
                "security": [],
                "requestBody": _body(s.LeakReport),
                "responses": {
                    "202": {"description": "Accepted: the same answer whether or not any value was a live token.",
                            "content": _json(_ref(s.LeakReportAccepted))},
                    "400": _error("The body is not a JSON object."),
                    "413": {"$ref": "#/components/responses/PayloadTooLarge"},
                    "422": _error("`credentials` is not a list of 1 to 1,000 strings."),
                    "429": {"$ref": "#/components/responses/TooManyRequests"},
                },
            },
        },
    }


def build_document(max_row_id: int) -> dict:
    """The whole OpenAPI document; ``max_row_id`` is the largest id a path accepts."""
    _, definitions = models_json_schema(
        [(m, "validation") for m in INPUT_MODELS] + [(m, "serialization") for m in OUTPUT_MODELS],
        ref_template=REF,
    )
    return _strip_null_defaults({
        "openapi": "3.1.0",
        "info": {"title": "Usetix Admin API", "version": "1.1.0", "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": _paths(max_row_id),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An API token from Settings → API Tokens (utx_...)."}},
            "schemas": definitions["$defs"],
            "responses": RESPONSES,
        },
    })
