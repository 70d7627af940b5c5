"""Every API write runs in :func:`write_view`: one transaction for the view's writes, its
audit record and its Idempotency-Key's stored answer.

The wrapper parses and validates the body first (a bad body is refused before anything
else happens, and claims no Idempotency-Key), then claims the key, runs the view on the
request's connection, and commits. Views never commit. The audit record is written only
while the token is still valid: a token revoked or expired while the request ran (its body
arriving slowly, say) rolls everything back and gets the bearer hook's 401.

A view marked ``one_statement`` writes one statement on PostgreSQL (its change and audit
record: ``audit.AuditedUpdate``): without an Idempotency-Key its connection is then in
autocommit (``autocommit_write``), and committing or rolling back sends nothing. With a
key, any write's token lookup and claim run in autocommit on PostgreSQL (the claim commits
on its own), and the write's transaction starts after the claim.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, request
from pydantic import BaseModel

from ...database.connection import autocommit_write, request_connection, transaction_from_now
from ...database.writer_queue import writer_turn
from . import idempotency_key
from .audit import TokenNoLongerValid
from .authentication import refuse_again
from .refused import Refused
from .request_body import parse_body

# A view's answer built once its write has committed and its writer's turn is over (on SQLite
# the next writer writes meanwhile): a door batch's answer, a few hundred bytes a scan.
AnswerLater = Callable[[], Response]


def write_view(body: type[BaseModel] | None = None, *, optional: bool = False,
               merge_patch: bool = False, one_statement: bool = False, reads_first: bool = False) -> Callable:
    """Wrap a write view: body, Idempotency-Key, one transaction (see the module docstring).

    The view gets ``body=`` (the validated model) when ``body`` is given, and its URL values.
    ``one_statement``: on PostgreSQL the view writes one statement, whose own atomicity is enough.
    ``reads_first``: on SQLite the view reads before it writes, and calls
    ``writer_queue.take_turn`` before its first write (without an Idempotency-Key, whose claim
    is a write). A view may return, instead of its Response, a function that builds it
    (:data:`AnswerLater`).
    """
    def decorate(view: Callable[..., Response | AnswerLater]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**values: Any) -> Response:
            if body is not None:
                parsed = parse_body(body, optional=optional, merge_patch=merge_patch)
                if isinstance(parsed, Response):
                    return parsed
                values["body"] = parsed
            connection = request_connection()
            # On SQLite, queued behind the host's other API writers (usetix/database/writer_queue.py).
            key = request.headers.get("Idempotency-Key")
            with writer_turn(connection, current_app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000,
                             reads_first=reads_first and key is None):
                answer = _transaction(view, values, connection, key)
            return answer if isinstance(answer, Response) else answer()

        return autocommit_write(wrapper, one_statement)

    return decorate


def _transaction(view: Callable[..., Response | AnswerLater], values: dict[str, Any], connection: sa.Connection,
                 key: str | None) -> Response | AnswerLater:
    """The Idempotency-Key's claim, the view, and the commit (or rollback)."""
    claimed = None
    if key is not None:
        outcome = idempotency_key.claim(connection, key)
        if isinstance(outcome, Response):
            return outcome
        claimed = outcome
        transaction_from_now(connection)  # the write and its stored answer commit together
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
        else:
            if not isinstance(response, Response):
                response = response()  # stored with the write
            idempotency_key.settle(connection, claimed, response)
    except BaseException as failure:
        connection.rollback()
        if claimed is not None:
            idempotency_key.give_up(connection, claimed, failure)
        raise
    return response
