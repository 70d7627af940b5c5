"""Endpoints for machines that need no login or token: the health check and the OpenAPI
document. They answer HTML and JSON requests alike."""

from __future__ import annotations

from functools import cache

import orjson
import sqlalchemy as sa
from flask import Blueprint, Response, current_app
from sqlalchemy.exc import SQLAlchemyError

from ..auth.policy import public
from ..core.openapi import build_document
from ..extensions import db

bp = Blueprint("meta", __name__)


@cache
def openapi_document(max_row_id: int) -> bytes:
    return orjson.dumps(build_document(max_row_id))


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
    """The OpenAPI 3.1 description of the JSON API, built from the models that validate."""
    url_map = current_app.url_map
    largest_id = url_map.converters["int"](url_map).max  # what a path's <int:...> takes
    return Response(openapi_document(largest_id), mimetype="application/json")
