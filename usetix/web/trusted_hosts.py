"""Refuse requests whose Host header is not one of ``TRUSTED_HOSTS``, before Flask sees them.

Flask checks ``TRUSTED_HOSTS`` too (the setting keeps Flask's meaning), but only while
building the URL adapter: the request then still opens its session and runs every
``before_request`` hook, and the error page cannot be rendered (it builds URLs, and there
is no adapter). Checking at the WSGI layer answers a plain 400 at once, so a forged Host
can never appear in a link we generate.

``/healthz`` is exempt: load balancers probe it by the backend's address. It generates no
links, so such a probe is passed on under the first trusted host, which Flask's own check
accepts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host

from ..core.negotiation import prefers_json
from . import request_log
from .credential_gate import request_path
from .security_headers import fixed_headers

HEALTH_CHECK_PATH = "/healthz"


class TrustedHostMiddleware:
    """WSGI middleware: 400 for a Host (after ProxyFix, X-Forwarded-Host) not in ``hosts``.

    A host entry starting with a dot also matches its subdomains (Werkzeug's rule). Host
    names are case-insensitive (RFC 4343), Werkzeug's match is not: both sides are
    compared, and passed on, in lower case.
    """

    def __init__(self, wsgi_app, hosts: Iterable[str], https_only: bool = False, log: bool = True):
        self.wsgi_app = wsgi_app
        self.hosts = [host.lower() for host in hosts]
        self.https_only = https_only
        self.log = log

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        host = environ.get("HTTP_HOST")
        if host is not None and not host.islower():
            environ = {**environ, "HTTP_HOST": host.lower()}
        try:
            get_host(environ, self.hosts)
        except SecurityError:
            if environ.get("PATH_INFO") != HEALTH_CHECK_PATH:
                return self._refuse(environ, start_response, started)
            environ = {**environ, "HTTP_HOST": self.hosts[0].lstrip(".")}
        return self.wsgi_app(environ, start_response)

    def _refuse(self, environ, start_response, started: float):
        if prefers_json(environ.get("HTTP_ACCEPT")):
            body = b'{"error":"bad_request","message":"The Host header names a host this server does not serve."}'
            content_type = "application/json"
        else:
            body = b"Bad Request: the Host header names a host this server does not serve.\n"
            content_type = "text/plain; charset=utf-8"
        start_response("400 Bad Request", [
            ("Content-Type", content_type), ("Content-Length", str(len(body))), ("Vary", "Accept"),
            # Our headers, as on every answer (nosniff; no-store also for the text answer).
            *fixed_headers(content_type.partition(";")[0], self.https_only),
            *([("Cache-Control", "no-store")] if content_type != "application/json" else []),
        ])
        if self.log:  # the one line of this request: gunicorn's access log is off by default
            request_log.log_request(environ.get("REQUEST_METHOD", "GET"), request_path(environ), 400, started,
                                    None, None)
        return [body]
