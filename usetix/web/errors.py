"""Error pages: JSON for JSON requests (the API's shape), a small HTML page otherwise."""

from __future__ import annotations

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException

from .responses import error_headers, http_error_response


def handle_http_error(exc: HTTPException):
    if request.wants_json:
        return http_error_response(exc)
    return render_template("error.html", error=exc), exc.code or 500, error_headers(exc)


def register_errorhandlers(app: Flask) -> None:
    # HTTPException covers unhandled errors too: Flask wraps them in InternalServerError.
    app.register_error_handler(HTTPException, handle_http_error)
