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

from collections.abc import Iterable

from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host

from ..core.negotiation import prefers_json

HEALTH_CHECK_PATH = "/healthz"


class TrustedHostMiddleware:
    """WSGI middleware: 400 for a Host (after ProxyFix, X-Forwarded-Host) not in ``hosts``.

    A host entry starting with a dot also matches its subdomains (Werkzeug's rule).
    """

    def __init__(self, wsgi_app, hosts: Iterable[str]):
        self.wsgi_app = wsgi_app
        self.hosts = list(hosts)

    def __call__(self, environ, start_response):
        try:
            get_host(environ, self.hosts)
        except SecurityError:
            if environ.get("PATH_INFO") != HEALTH_CHECK_PATH:
                return self._refuse(environ, start_response)
            environ = {**environ, "HTTP_HOST": self.hosts[0].lstrip(".")}
        return self.wsgi_app(environ, start_response)

    @staticmethod
    def _refuse(environ, start_response):
        if prefers_json(environ.get("HTTP_ACCEPT")):
            body = b'{"error":"bad_request","message":"The Host header names a host this server does not serve."}'
            content_type = "application/json"
        else:
            body = b"Bad Request: the Host header names a host this server does not serve.\n"
            content_type = "text/plain; charset=utf-8"
        start_response("400 Bad Request", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                           ("Cache-Control", "no-store")])
        return [body]
