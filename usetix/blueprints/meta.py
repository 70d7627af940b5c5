"""Endpoints for machines that need no login or token: the health check and the OpenAPI
document. They answer HTML and JSON requests alike."""

from __future__ import annotations

import json
from importlib.resources import files

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app
from sqlalchemy.exc import SQLAlchemyError

from ..auth.policy import public
from ..extensions import db
from ..ratelimit import rate_limits

bp = Blueprint("meta", __name__)

OPENAPI_DOCUMENT = files("usetix").joinpath("openapi.json").read_bytes()


@bp.get("/healthz")
@public
def healthz() -> Response:
    """Each dependency the app is configured to use, and whether it answers (for load
    balancers and monitoring): ``{"status": ..., "checks": {name: "ok" | "unavailable"}}``.

    503 when one the app cannot work without is down: the database, or the Redis holding
    dashboard sessions. The rate-limit Redis is not one: without it the API serves,
    uncounted, and only logins wait (503 on the login form), so its outage answers 200 with
    ``"status": "degraded"`` rather than taking every host out of the balancer at once.
    """
    app = current_app._get_current_object()
    checks = {"database": _database_answers()}
    essential = ["database"]
    if app.config.get("SESSION_REDIS_URL"):
        checks["session_store"] = _redis_answers(app, app.config["SESSION_REDIS_URL"])
        essential.append("session_store")
    limits_ok = rate_limits(app).external_storage_answers()
    if limits_ok is not None:
        checks["rate_limit_storage"] = limits_ok
    for name, ok in checks.items():
        if not ok:
            app.logger.error("health check: %s unavailable", name)
    if not all(checks[name] for name in essential):
        status, code = "unavailable", 503
    elif not all(checks.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = {"status": status, "checks": {name: "ok" if ok else "unavailable" for name, ok in checks.items()}}
    return Response(json.dumps(body), code, mimetype="application/json")


def _database_answers() -> bool:
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        current_app.logger.exception("health check: database unavailable")
        return False
    return True


def _redis_answers(app: Flask, url: str) -> bool:
    """Ping Redis at ``url`` with bounded waits, on a client kept for the app."""
    import redis

    clients = app.extensions.setdefault("usetix.healthz", {})
    client = clients.get(url)
    if client is None:
        client = clients[url] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@bp.get("/admin/openapi.json")
@public
def openapi() -> Response:
    """The OpenAPI 3.1 description of the JSON API."""
    return Response(OPENAPI_DOCUMENT, mimetype="application/json")
