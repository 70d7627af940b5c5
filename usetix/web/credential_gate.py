"""Refuse unusable API credentials before Flask runs.

The API's bearer hook (``usetix/blueprints/api/authentication.py``) checks the credentials
of every JSON request, and decides every case itself. But some refusals depend on the
request's headers alone: no token, a malformed ``Authorization`` header, a token of the
wrong shape or checksum. They need no database, nor Flask's request context, routing
and hooks (docs/performance.md), so this WSGI middleware, innermost around the Flask app
(inside ProxyFix and the trusted-hosts check), gives those refusals itself.
It keeps no policy of its own: it asks the same questions of the same code (the Accept
rule, the app's public paths, ``usetix.auth.bearer.screen_credentials``), counts the same
failed-authentication limit and answers the same bytes (``refusal_answer``,
``fixed_headers``, ``log_request``); tests/app/test_credential_gate.py holds it to Flask's own
answers.

Anything it is not sure of goes on to Flask: HTML requests, a token-free endpoint's
paths, requests with a body (an oversized one is a 413 first), HEAD, a request on which
the gate itself failed (Flask answers that, and logs it), and every
well-formed token, which only the database can judge: the gate leaves its digest in the
WSGI environ (``SCREENED_DIGEST``) for the hook to look up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from werkzeug.http import HTTP_STATUS_CODES

from ..auth.bearer import screen_credentials
from ..auth.refusals import Refusal, refusal_answer
from ..core.negotiation import prefers_json
from ..ratelimit import rate_limits
from . import request_log
from .app import Usetix
from .responses import json_body
from .security_headers import fixed_headers

# Where the gate leaves the digest of the well-formed token it screened, for the bearer
# hook. (A WSGI server puts a client's headers under HTTP_*; no client can set this key.)
SCREENED_DIGEST = "usetix.screened_digest"


class CredentialGate:
    def __init__(self, app: Usetix, wsgi_app: Callable) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.config = app.config
        self.limits = rate_limits(app)
        self.log = request_log.enabled(app)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        environ.pop(SCREENED_DIGEST, None)  # only this gate's own word counts
        try:
            refusal = self._refusal(environ)
            if refusal is not None:
                status, headers, payload = refusal_answer(self.limits, environ.get("REMOTE_ADDR"), refusal)
        except Exception:  # a bug, say (a storage outage fails open in usetix.ratelimit): Flask answers it, and logs it
            environ.pop(SCREENED_DIGEST, None)
            return self.wsgi_app(environ, start_response)
        if refusal is None:
            return self.wsgi_app(environ, start_response)
        body = json_body(payload)
        start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", [  # as Werkzeug's Response writes it
            *headers.items(),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Vary", "Accept"),
            *fixed_headers("application/json", self.config["SESSION_COOKIE_SECURE"]),
        ])
        if self.log:
            request_log.log_request(_method(environ), request_path(environ), status, started, None, None)
        return [body]

    def _refusal(self, environ: dict) -> Refusal | None:
        """The refusal the bearer hook would give this request without a query, or None
        when this request is for Flask."""
        if _method(environ) == "HEAD" or not prefers_json(environ.get("HTTP_ACCEPT")):
            return None
        if environ.get("CONTENT_LENGTH", "0") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        path = request_path(environ)
        exact, prefixes = self.app.public_json_paths
        if path in exact or path.startswith(prefixes):
            return None
        screened = screen_credentials(environ.get("HTTP_AUTHORIZATION"))
        if isinstance(screened, Refusal):
            return screened
        environ[SCREENED_DIGEST] = screened  # the bearer hook looks it up, without screening again
        return None


def _method(environ: dict) -> str:
    return environ.get("REQUEST_METHOD", "GET").upper()  # as Werkzeug reads it


def request_path(environ: dict) -> str:
    """The path as Werkzeug's ``request.path`` reads it (WSGI's latin-1 string, as UTF-8)."""
    return "/" + (environ.get("PATH_INFO") or "").encode("latin1").decode(errors="replace").lstrip("/")
