"""Error pages: JSON for JSON requests (the API's shape), a small HTML page otherwise.

The page never depends on the request's URL adapter: Flask has none when the Host header
could not be bound (``BadHost``, ``SecurityError``), and ``url_for`` then fails inside the
error handler, which Flask can only answer with a bare 500. Its two links are built on a
host-less binding of the app's map instead, so an error page always renders; the
trusted-hosts middleware renders it the same way, before Flask runs.
"""

from __future__ import annotations

from flask import Flask, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from .responses import error_headers, http_error_response

ERROR_TEMPLATE = "error.html"


def page_links(app: Flask, script_root: str) -> dict[str, str]:
    """The error page's links (stylesheet, dashboard), relative to this site, whatever the Host."""
    adapter = app.url_map.bind("", script_name=script_root or "/")
    return {"stylesheet": adapter.build("static", {"filename": "style.css"}),
            "dashboard": adapter.build("dashboard.events")}


def render_error_page(app: Flask, error: HTTPException, script_root: str) -> str:
    """The HTML error page for ``error``, without a request context (the middleware's case)."""
    return app.jinja_env.get_template(ERROR_TEMPLATE).render(error=error, links=page_links(app, script_root))


def handle_http_error(exc: HTTPException):
    if request.wants_json:
        return http_error_response(exc)
    page = render_template(ERROR_TEMPLATE, error=exc, links=page_links(current_app, request.script_root))
    return page, exc.code or 500, error_headers(exc)


def register_errorhandlers(app: Flask) -> None:
    # HTTPException covers unhandled errors too: Flask wraps them in InternalServerError.
    app.register_error_handler(HTTPException, handle_http_error)
