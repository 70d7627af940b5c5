"""Error pages: JSON for JSON requests (the API's shape), a small HTML page otherwise.

The page never depends on the request's URL adapter: Flask has none when the Host header
could not be bound (``BadHost``, ``SecurityError``), and ``url_for`` then fails inside the
error handler, which Flask can only answer with a bare 500. Its two links are built on a
host-less binding of the app's map instead, so an error page always renders; the
trusted-hosts middleware renders it the same way, before Flask runs.
"""

from __future__ import annotations

from flask import Flask, current_app, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException

from ..core.negotiation import prefers_json
from . import request_log
from .credential_gate import request_path
from .responses import error_headers, http_error_response, json_body
from .security_headers import fixed_headers

ERROR_TEMPLATE = "error.html"


def page_links(app: Flask, script_root: str) -> dict[str, str]:
    """The error page's links (stylesheet, dashboard), relative to this site, whatever the Host."""
    adapter = app.url_map.bind("", script_name=script_root or "/")
    return {"stylesheet": adapter.build("static", {"filename": "style.css"}),
            "dashboard": adapter.build("dashboard.events")}


def render_error_page(app: Flask, error: HTTPException, script_root: str) -> str:
    """The HTML error page for ``error``, without a request context (the middleware's case)."""
    return app.jinja_env.get_template(ERROR_TEMPLATE).render(error=error, links=page_links(app, script_root))


def refuse_before_flask(app: Flask, environ: dict, start_response, message: str, *, started: float,
                        https_only: bool, log: bool):
    """A WSGI middleware's 400 for a request Flask must not see: our JSON for a JSON
    request, our error page otherwise, with our headers and the request's log line."""
    if prefers_json(environ.get("HTTP_ACCEPT")):
        body, content_type = json_body({"error": "bad_request", "message": message}), "application/json"
    else:
        page = render_error_page(app, BadRequest(message), environ.get("SCRIPT_NAME", ""))
        body, content_type = page.encode(), "text/html; charset=utf-8"
    start_response("400 BAD REQUEST", [  # as Werkzeug's Response writes it
        ("Content-Type", content_type), ("Content-Length", str(len(body))), ("Vary", "Accept"),
        *fixed_headers(content_type.partition(";")[0], https_only),  # our headers, as on every answer
    ])
    if log:  # the one line of this request: gunicorn's access log is off by default
        request_log.log_request(environ.get("REQUEST_METHOD", "GET"), request_path(environ), 400, started, None, None)
    return [body]


def handle_http_error(exc: HTTPException):
    if request.wants_json:
        return http_error_response(exc)
    page = render_template(ERROR_TEMPLATE, error=exc, links=page_links(current_app, request.script_root))
    return page, exc.code or 500, error_headers(exc)


def register_errorhandlers(app: Flask) -> None:
    # HTTPException covers unhandled errors too: Flask wraps them in InternalServerError.
    app.register_error_handler(HTTPException, handle_http_error)
