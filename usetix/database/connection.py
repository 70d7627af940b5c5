"""The request's own database connection, for the API's Core queries.

One per request, opened on first use and closed (rolled back if nothing committed) when
the request ends; like flaskr's ``get_db``. The ORM's ``db.session`` serves the pages.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask, g

from ..extensions import db

_KEY = "db_connection"


def request_connection() -> sa.Connection:
    """This request's connection, opened on first use."""
    request_globals = g._get_current_object()  # one proxy read: every API request passes here
    connection = request_globals.get(_KEY)
    if connection is None:
        connection = db.engine.connect()
        setattr(request_globals, _KEY, connection)
    return connection


def close_request_connection(exc: BaseException | None = None) -> None:
    connection = g._get_current_object().pop(_KEY, None)
    if connection is not None:
        connection.close()  # rolls back whatever was not committed, returns it to the pool


def init_app(app: Flask) -> None:
    app.teardown_request(close_request_connection)
