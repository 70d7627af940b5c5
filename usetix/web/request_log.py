"""One log line per request, to stderr: method, path, status, duration, account, token.

The line never holds the token value, the query string (a token pasted into a URL would
land there) or any header. Who the request was comes from ``g.principal``
(``usetix.auth.principal``), set by authentication: logging costs no query.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

from flask import Flask, Response, g, request

logger = logging.getLogger("usetix.requests")

# Paths made only of these print as they are; any other (spaces, quotes, control
# characters: a forged log line) is JSON-quoted.
_PLAIN_PATH = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]*")
_FORMAT = "method=%s path=%s status=%d duration_ms=%s account=%s token=%s"


def init_app(app: Flask) -> None:
    """Log every request of ``app`` (unless ``REQUEST_LOG`` is off).

    Call it before the blueprints are registered: its clock must start before their
    ``before_request`` hooks, which may answer (a 401) without running later hooks.
    """
    if not enabled(app):
        return
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    # Like Flask's own default handler: only when nothing else (the root logger of a
    # deployment's logging config, pytest's capture) would handle the line.
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        # Not also through app.logger ("usetix"), which gets Flask's own stderr handler the
        # first time anything logs an error: that would print every line twice.
        logger.propagate = False
    app.before_request(_start_clock)
    app.after_request(_log_request)


def _start_clock() -> None:
    g.request_started = time.perf_counter()


def _log_request(response: Response) -> Response:
    if not logger.isEnabledFor(logging.INFO):
        return response
    # On the API's hot path: read g and request once each, not through their proxies.
    values, req = g._get_current_object(), request._get_current_object()
    principal = values.get("principal")
    if principal is None:
        account_id = token_id = None
    else:
        account_id, token = principal.account_id, principal.token
        token_id = None if token is None else token.id
    log_request(req.method, req.path, response.status_code, values.get("request_started"), account_id, token_id)
    return response


def enabled(app: Flask) -> bool:
    return bool(app.config.get("REQUEST_LOG", True))


def log_request(method: str, path: str, status: int, started: float | None, account_id: int | None,
                token_id: int | None) -> None:
    """Write one request's line; ``started`` is its ``time.perf_counter()`` start, if known.

    Also called by the credential gate (usetix/web/credential_gate.py) for the refusals it gives.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    duration = "-" if started is None else round((time.perf_counter() - started) * 1000, 2)
    if not _PLAIN_PATH.fullmatch(path):
        path = json.dumps(path)
    args = (method, path, status, duration,
            "-" if account_id is None else account_id, "-" if token_id is None else token_id)
    # makeRecord + handle: what logger.info does, without its walk up the stack for the
    # caller's file and line (always this function).
    logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, _LINE, _FORMAT, args, None,
                                    "log_request"))


# The line records name: this function's own.
_LINE = log_request.__code__.co_firstlineno
