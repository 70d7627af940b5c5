"""A write's Idempotency-Key: claimed before the view runs, its answer stored with the
write (a 2xx only), released when the write fails, replayed to a retry. The claims
themselves are rows (``usetix/database/idempotency.py``)."""

from __future__ import annotations

import functools
import logging

import sqlalchemy as sa
from flask import Response, after_this_request, request

from ...database import idempotency
from ...database.locks import lock_timed_out
from ...database.models import utcnow
from ...web.responses import error_response
from .authentication import token_ids

# Headers of a write's answer that a replay gives again (the rate-limit ones are the replay's own).
REPLAYED_HEADERS = ("Content-Type", "Location", "ETag")
RETRY_IN_FLIGHT_SECONDS = "1"

logger = logging.getLogger("usetix.api")


def claim(connection: sa.Connection, key: str) -> idempotency.Claim | Response:
    """This request's claim on ``key``, or the answer instead of running the write: a
    replay of the stored answer, or a refusal (400, 409, 422)."""
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


def settle(connection: sa.Connection, claimed: idempotency.Claim, response: Response) -> None:
    """Keep a 2xx answer for the key's replays, or release the key of any other. A refusal
    the view answered (not raised as Refused) keeps what the view recorded of it: the door's
    refused scans are its history."""
    if idempotency.storable(response.status_code):
        headers = {name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers}
        idempotency.complete(connection, claimed, response.status_code, headers, response.get_data())
        connection.commit()
    else:
        connection.commit()
        idempotency.release(connection, claimed)


def give_up(connection: sa.Connection, claimed: idempotency.Claim, failure: BaseException) -> None:
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
