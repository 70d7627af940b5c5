"""Endpoints for machines that need no login or token: the health check and the OpenAPI
document. They answer HTML and JSON requests alike."""

from __future__ import annotations

from importlib.resources import files

import sqlalchemy as sa
from flask import Blueprint, Response, current_app
from sqlalchemy.exc import SQLAlchemyError

from ..auth.policy import public
from ..extensions import db

bp = Blueprint("meta", __name__)

OPENAPI_DOCUMENT = files("usetix").joinpath("openapi.json").read_bytes()


@bp.get("/healthz")
@public
def healthz() -> Response:
    """200 when the database answers, 503 when it does not (for load balancers)."""
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        current_app.logger.exception("health check: database unavailable")
        return Response('{"status": "unavailable"}', 503, mimetype="application/json")
    return Response('{"status": "ok"}', 200, mimetype="application/json")


@bp.get("/admin/openapi.json")
@public
def openapi() -> Response:
    """The OpenAPI 3.1 description of the JSON API."""
    return Response(OPENAPI_DOCUMENT, mimetype="application/json")
