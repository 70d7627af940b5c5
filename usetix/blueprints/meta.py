"""Endpoints for machines that need no login or token: the health check and the OpenAPI
document. They answer HTML and JSON requests alike."""

from __future__ import annotations

import contextlib
import json
from functools import cache

import orjson
import sqlalchemy as sa
from flask import Response, current_app
from sqlalchemy.exc import SQLAlchemyError

from ..api_contract.openapi import build_document
from ..auth.policy import public
from ..database.engine import db
from ..ratelimit import rate_limits
from ..web.audience import Audience, AudienceBlueprint
from ..web.row_id import MAX_ROW_ID

bp = AudienceBlueprint("meta", __name__, audience=Audience.BOTH)
# A 503 of /healthz says when to look again, as every other 503 does (a database restart takes seconds).
HEALTH_RETRY_AFTER_SECONDS = 5


@cache
def openapi_document(max_row_id: int) -> bytes:
    return orjson.dumps(build_document(max_row_id))


@bp.get("/healthz")
@public
def healthz() -> Response:
    """Whether what a request needs answers (for load balancers and monitoring):
    ``{"status": "ok" | "unavailable", "checks": {name: "ok" | "unavailable"}}``, 503 when
    one does not.

    The checks are the database, and what every login needs besides: the session store
    (its table, or the Redis of ``SESSION_REDIS_URL``) and the login throttle's storage
    (its table, or the rate-limit Redis; not checked when limits are off). A database that
    answers ``SELECT 1`` while the sessions table is gone still makes every login a 503.
    """
    app = current_app._get_current_object()
    checks = {"database": _database_answers(), "session_store": app.session_interface.store.check()}
    limits_ok = rate_limits(app).shared_storage_answers()
    if limits_ok is not None:
        checks["rate_limit_storage"] = limits_ok
    for name, ok in checks.items():
        if not ok:
            app.logger.error("health check: %s unavailable", name)
    status, code = ("ok", 200) if all(checks.values()) else ("unavailable", 503)
    body = {"status": status, "checks": {name: "ok" if ok else "unavailable" for name, ok in checks.items()}}
    headers = {"Retry-After": str(HEALTH_RETRY_AFTER_SECONDS)} if code == 503 else None
    return Response(json.dumps(body), code, headers=headers, mimetype="application/json")


def _database_answers() -> bool:
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        # One line, not a traceback: a monitor asks every few seconds while the database is down.
        cause = getattr(exc, "orig", None) or exc
        current_app.logger.error("health check: database unavailable: %s: %s", type(cause).__name__,
                                 str(cause).strip().partition("\n")[0])
        with contextlib.suppress(SQLAlchemyError):
            db.session.rollback()  # its transaction never had a connection: the teardown must not try again
        return False
    return True


@bp.get("/admin/openapi.json")
@public
def openapi() -> Response:
    """The OpenAPI 3.1 description of the JSON API, built from the models that validate."""
    return Response(openapi_document(MAX_ROW_ID), mimetype="application/json")
