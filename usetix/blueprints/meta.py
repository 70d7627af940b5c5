"""Endpoints for machines that need no login or token: the health check, the OpenAPI
document and leak reports. They answer HTML and JSON requests alike."""

from __future__ import annotations

import json
from functools import cache

import orjson
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from ..api_contract.openapi import build_document
from ..auth.policy import public
from ..auth.token_service import MAX_LEAK_REPORT_VALUES, revoke_leaked
from ..core.json_nesting import TOO_DEEP, nests_too_deep
from ..database.engine import db
from ..extensions import csrf
from ..ratelimit import LimitsUnavailable, address_key, rate_limits
from ..web.responses import error_response, json_response

bp = Blueprint("meta", __name__)


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
    return Response(json.dumps(body), code, mimetype="application/json")


def _database_answers() -> bool:
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        current_app.logger.exception("health check: database unavailable")
        return False
    return True


@bp.get("/admin/openapi.json")
@public
def openapi() -> Response:
    """The OpenAPI 3.1 description of the JSON API, built from the models that validate."""
    url_map = current_app.url_map
    largest_id = url_map.converters["int"](url_map).max  # what a path's <int:...> takes
    return Response(openapi_document(largest_id), mimetype="application/json")


LEAK_REPORT_USAGE = f'Send a JSON object: {{"credentials": ["utx_...", ...]}}, at most {MAX_LEAK_REPORT_VALUES} values.'
LEAK_REPORT_ACCEPTED = {
    "message": "Thank you. Every live Usetix token among these values is now revoked, and its account's "
               "admins are told. This answer is the same whether or not any value was a token.",
}


@bp.post("/admin/credentials/revoke")
@public
@csrf.exempt  # no cookie, no session: there is nothing for a forged form to ride on
def report_leaked_credentials() -> Response:
    """The leak kill-switch: anyone who finds Usetix tokens (a person, a secret scanner)
    posts them here, with no authentication, and every live one is revoked at once.

    The answer is always 202 with the same body, so it tells nothing about which values were
    real. Values of the wrong shape or checksum are dropped without a query; the rest are
    matched in one batched UPDATE. Limited per client address (LEAK_REPORT_RATE_LIMIT).
    """
    limits = rate_limits(current_app)
    try:  # shared by every worker and host, so a flood cannot multiply by the worker count
        verdict = limits.hit_shared(limits.leak_report, "leak-report", address_key(request.remote_addr))
    except LimitsUnavailable:
        return error_response(503, "unavailable", "Leak reports are paused for a moment; retry shortly.",
                              {"Retry-After": "30"})
    if verdict is not None and not verdict.allowed:
        return error_response(429, "rate_limited", "Too many leak reports from this address; retry later.",
                              verdict.headers)
    raw = request.get_data(cache=True)  # read whatever the label: scanners do not always say JSON
    if nests_too_deep(raw):
        return error_response(400, "invalid_json", TOO_DEEP)
    try:  # UTF-8 only (RFC 8259), which is what the depth scan reads
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return error_response(400, "invalid_request", LEAK_REPORT_USAGE)
    values = body.get("credentials")
    if (not isinstance(values, list) or not 1 <= len(values) <= MAX_LEAK_REPORT_VALUES
            or not all(isinstance(value, str) for value in values)):
        return error_response(422, "invalid_parameter",
                              f"credentials must be a list of 1 to {MAX_LEAK_REPORT_VALUES} strings.",
                              parameter="credentials")
    revoked = revoke_leaked(values, request.remote_addr)
    if revoked:  # for the operators (the reporter never learns it); never the values themselves
        current_app.logger.warning("leak report from %s revoked %d token(s) (%d value(s) sent)",
                                   request.remote_addr, revoked, len(values))
    return json_response(LEAK_REPORT_ACCEPTED, 202)

