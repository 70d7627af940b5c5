"""What every API write shares: the JSON body, Idempotency-Key, ETag and If-Match, the
transaction and the audit record. The views are in ``writes.py``.

A write view is wrapped in :func:`write_view`. The wrapper parses and validates the body
first (a bad body is refused before anything else happens, and claims no Idempotency-Key),
then claims the key, runs the view on the request's connection, and commits the view's
writes, its audit record and the key's stored answer in one transaction. Views never
commit. The audit record is written only while the token is still valid: a token revoked
or expired while the request ran (its body arriving slowly, say) rolls everything back and
gets the bearer hook's 401.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Response, after_this_request, current_app, g, request
from pydantic import BaseModel, ValidationError

from ...api_contract.bodies import field_errors
from ...core.json_nesting import TOO_DEEP, nests_too_deep
from ...database import idempotency
from ...database.connection import request_connection
from ...database.locks import lock_timed_out
from ...database.models import ApiToken, AuditEvent, UTCDateTime, utcnow
from ...web.responses import error_response, json_response
from .authentication import refuse_again

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
# Headers of a write's answer that a replay gives again (the rate-limit ones are the replay's own).
REPLAYED_HEADERS = ("Content-Type", "Location", "ETag")
RETRY_IN_FLIGHT_SECONDS = "1"
# 96 bits: two versions of one object never share a tag.
ETAG_BYTES = 12

logger = logging.getLogger("usetix.api")


class Refused(Exception):
    """Raised by a view to answer an error: its writes are rolled back, and its
    Idempotency-Key is released (only a 2xx is kept)."""

    def __init__(self, response: Response):
        self.response = response


def token_ids() -> tuple[int, int]:
    """``(account_id, token_id)`` of this request's token."""
    principal = g.principal
    return principal.account_id, principal.token.id


def invalid_body(errors: list[dict[str, str]]) -> Response:
    fields = ", ".join(dict.fromkeys(error["field"] for error in errors))
    return error_response(422, "invalid_body", f"The body is not valid: see errors ({fields}).", errors=errors)


def parse_body(model: type[BaseModel], *, optional: bool = False, merge_patch: bool = False) -> BaseModel | Response:
    """The request's body validated by ``model``, or the answer refusing it (400, 415, 422)."""
    raw = request.get_data(cache=True)
    if optional and not raw:
        return model()
    allowed = (JSON, MERGE_PATCH) if merge_patch else (JSON,)
    if request.mimetype not in allowed:
        return error_response(415, "unsupported_media_type",
                              f"Send the body as JSON, with Content-Type: {' or '.join(allowed)}.")
    if nests_too_deep(raw):
        return error_response(400, "invalid_json", TOO_DEEP)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = field_errors(exc)
        malformed = [error for error in errors if error["code"] == "json_invalid"]
        if malformed:
            return error_response(400, "invalid_json", f"The body is not valid JSON: {malformed[0]['message']}.")
        return invalid_body(errors)


def revalidate(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    """A stored object with a patch merged in, checked as a whole (``ends_at`` against the
    stored ``starts_at``, say); raises Refused with the 422."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refused(invalid_body(field_errors(exc))) from None


def etag(object_id: int, version: int, created_at: datetime) -> str:
    """A strong, opaque ETag: a digest of the row's id, version (every write bumps it) and
    creation time, keyed with the app's secret so that it tells nothing (not the creation
    time to the microsecond, which the body gives to the second). The creation time keeps
    tags apart even for an id that SQLite gave twice before migration d19a11fe0001."""
    digest = hashlib.blake2b(f"{object_id}.{version}.{round(created_at.timestamp() * 1_000_000)}".encode(),
                             key=_etag_key(current_app.config["SECRET_KEY"]), digest_size=ETAG_BYTES)
    return digest.hexdigest()  # unquoted, as Werkzeug's ETags hold them


@functools.lru_cache(maxsize=4)
def _etag_key(secret: str | bytes) -> bytes:
    secret = secret.encode() if isinstance(secret, str) else secret
    return hashlib.blake2b(secret, person=b"usetix.etag").digest()


def check_if_match(current: str) -> None:
    """412 unless If-Match (when sent) names ``current`` or is ``*`` (strong comparison)."""
    if "If-Match" in request.headers and not request.if_match.contains(current):
        raise Refused(precondition_failed())


def precondition_failed() -> Response:
    return error_response(412, "precondition_failed",
                          "If-Match does not name the current version (its ETag); nothing changed. "
                          "GET it again and retry.")


def lost_race() -> Response:
    """Another write changed the object between our read and our conditional write: with
    If-Match that is a stale tag (412); without, a conflict to retry (409, never stored)."""
    if "If-Match" in request.headers:
        return precondition_failed()
    return error_response(409, "edit_conflict", "The object changed while this request ran; retry it.")


def not_modified(current: str) -> Response | None:
    if request.if_none_match.contains_weak(current):
        return Response(status=304, headers={"ETag": f'"{current}"'})
    return None


_tokens = ApiToken.__table__
_at = sa.bindparam("at", type_=UTCDateTime)
# Built once (see writes.py): the token's description and tier as they are now, copied in,
# if the token is still valid now. So the write's own transaction checks the token again, at
# no extra statement: a write whose token was revoked or expired while it ran (a slow body)
# inserts no audit record, and is rolled back and refused (TokenNoLongerValid).
AUDIT = AuditEvent.__table__.insert().from_select(
    ["account_id", "actor", "action", "token_id", "token_description", "token_tier", "client_address",
     "created_at", "object_type", "object_id", "object_label"],
    sa.select(_tokens.c.account_id, _tokens.c.description + " (API token)",
              sa.bindparam("action_name", type_=sa.String), _tokens.c.id, _tokens.c.description, _tokens.c.tier,
              sa.bindparam("address", type_=sa.String), _at,
              sa.bindparam("kind", type_=sa.String), sa.bindparam("target_id", type_=sa.Integer),
              sa.bindparam("label", type_=sa.String))
    .where(_tokens.c.id == sa.bindparam("by_token_id"), _tokens.c.account_id == sa.bindparam("by_account_id"),
           _tokens.c.revoked_at.is_(None), sa.or_(_tokens.c.expires_at.is_(None), _tokens.c.expires_at > _at)),
).execution_options(preserve_rowcount=True)  # else SQLAlchemy keeps no rowcount of an INSERT


class TokenNoLongerValid(Exception):
    """The request's token was revoked or expired after it was authenticated."""


def audit(connection: sa.Connection, action: str, object_type: str, object_id: int, label: str) -> None:
    """Record this write with its token (as it is now), object, time and client address;
    raises TokenNoLongerValid when the token is no longer valid."""
    account_id, token_id = token_ids()
    recorded = connection.execute(AUDIT, {
        "by_account_id": account_id, "by_token_id": token_id, "action_name": action, "address": request.remote_addr,
        "at": utcnow(), "kind": object_type, "target_id": object_id, "label": label[:200],
    }).rowcount
    if not recorded:
        raise TokenNoLongerValid


def write_view(body: type[BaseModel] | None = None, *, optional: bool = False,
               merge_patch: bool = False) -> Callable:
    """Wrap a write view: body, Idempotency-Key, one transaction (see the module docstring).

    The view gets ``body=`` (the validated model) when ``body`` is given, and its URL values.
    """
    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**values: Any) -> Response:
            if body is not None:
                parsed = parse_body(body, optional=optional, merge_patch=merge_patch)
                if isinstance(parsed, Response):
                    return parsed
                values["body"] = parsed
            connection = request_connection()
            claimed = None
            key = request.headers.get("Idempotency-Key")
            if key is not None:
                outcome = _claim(connection, key)
                if isinstance(outcome, Response):
                    return outcome
                claimed = outcome
            try:
                try:
                    response = view(**values)
                except Refused as refused:
                    connection.rollback()
                    response = refused.response
                except TokenNoLongerValid:
                    connection.rollback()
                    response = refuse_again()
                if claimed is None:
                    connection.commit()
                elif idempotency.storable(response.status_code):
                    headers = {name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers}
                    idempotency.complete(connection, claimed, response.status_code, headers, response.get_data())
                    connection.commit()
                else:
                    idempotency.release(connection, claimed)
            except BaseException as failure:
                connection.rollback()
                if claimed is not None:
                    _give_up(connection, claimed, failure)
                raise
            return response

        return wrapper

    return decorate


def _give_up(connection: sa.Connection, claimed: idempotency.Claim, failure: BaseException) -> None:
    """Release the key of a write that failed, so that its retry runs. When the database is
    locked (the failure itself, or the release finding it so), releasing is a write that
    would wait out the busy timeout again before the 503 is sent: it is done once the
    answer is out, on a connection of its own, instead of leaving the key claimed (a retry
    would be 409 until the claim counts as abandoned)."""
    if not lock_timed_out(failure):
        try:
            idempotency.release(connection, claimed)
            return
        except sa.exc.OperationalError as exc:
            if not lock_timed_out(exc):
                raise
            connection.rollback()
    engine = connection.engine

    @after_this_request
    def release_once_sent(response: Response) -> Response:
        response.call_on_close(functools.partial(_release_on_own_connection, engine, claimed))
        return response


def _release_on_own_connection(engine: sa.Engine, claimed: idempotency.Claim) -> None:
    try:
        with engine.connect() as connection:
            idempotency.release(connection, claimed)
    except sa.exc.SQLAlchemyError:
        logger.exception("an Idempotency-Key of a failed write could not be released; it can be claimed again "
                         "%s after its claim", idempotency.ABANDONED_AFTER)


def _claim(connection: sa.Connection, key: str) -> idempotency.Claim | Response:
    if not idempotency.valid_key(key):
        return error_response(400, "invalid_idempotency_key",
                              f"Idempotency-Key must be 1 to {idempotency.MAX_KEY_LENGTH} visible ASCII characters.")
    _, token_id = token_ids()
    headers = request.headers
    fingerprint = idempotency.fingerprint(request.method, request.full_path, request.get_data(cache=True),
                                          headers.get("If-Match"), headers.get("If-None-Match"))
    outcome = idempotency.claim(connection, token_id, key, fingerprint, utcnow())
    if isinstance(outcome, idempotency.Replay):
        return Response(outcome.body, outcome.status, headers={**outcome.headers, "Idempotent-Replayed": "true"})
    if outcome is idempotency.Refusal.REUSED:
        return error_response(422, "idempotency_key_reused",
                              "This Idempotency-Key was used with another request (method, path, body, If-Match "
                              "or If-None-Match); use a new key for a new request.")
    if outcome is idempotency.Refusal.IN_FLIGHT:
        return error_response(409, "idempotency_key_in_use",
                              "A request with this Idempotency-Key is still running; retry after it.",
                              {"Retry-After": RETRY_IN_FLIGHT_SECONDS})
    return outcome


def json_with_etag(payload: Any, tag: str, status: int = 200, headers: dict | None = None) -> Response:
    return json_response({"data": payload}, status, {**(headers or {}), "ETag": f'"{tag}"'})
