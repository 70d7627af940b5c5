"""Refuse a request whose Host header is not a valid host name, or not one of
``TRUSTED_HOSTS`` when that is set, before Flask sees it.

Flask binds its URL adapter to the Host, and a name Werkzeug cannot bind (a label over 63
characters, an empty label: ``a..b``, ``.a``) leaves the request without one: the error
page could not build a URL, and Flask answered a bare 500 with a traceback per request.
Flask checks ``TRUSTED_HOSTS`` too (the setting keeps Flask's meaning), but only while
building the URL adapter: the request would still open its session and run every
``before_request`` hook. Checking at the WSGI layer answers our 400 at once (our JSON, or
our error page), so a forged Host can never appear in a link we generate, and a broken one
never reaches Flask. The validity test is Werkzeug's own (``Map.bind``), so this check and
Flask can never disagree about which names bind.

``/healthz`` is exempt from ``TRUSTED_HOSTS`` (not from validity): load balancers probe it
by the backend's address. It generates no links, so such a probe is passed on under the
first trusted host, which Flask's own check accepts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import lru_cache

from flask import Flask
from werkzeug.exceptions import BadHost, SecurityError
from werkzeug.routing import Map
from werkzeug.wsgi import get_host

from .errors import refuse_before_flask

HEALTH_CHECK_PATH = "/healthz"
UNTRUSTED = "The Host header names a host this server does not serve."
INVALID = "The Host header is not a valid host name."
_HOSTLESS_MAP = Map()  # only for Map.bind's test of a host name


@lru_cache(maxsize=256)  # a site sees few names; this runs on every request
def host_binds(host: str) -> bool:
    """Whether Werkzeug can bind a URL adapter to ``host`` (``host:port``), as Flask will."""
    try:
        _HOSTLESS_MAP.bind(host)
    except BadHost:
        return False
    return True


class TrustedHostMiddleware:
    """WSGI middleware: 400 for a Host (after ProxyFix, X-Forwarded-Host) that is not a
    valid host name, or (when ``hosts`` is not empty) not in ``hosts``.

    A host entry starting with a dot also matches its subdomains (Werkzeug's rule). Host
    names are case-insensitive (RFC 4343), Werkzeug's match is not: both sides are
    compared, and passed on, in lower case.
    """

    def __init__(self, app: Flask, wsgi_app, hosts: Iterable[str], https_only: bool = False, log: bool = True):
        self.app = app
        self.wsgi_app = wsgi_app
        self.hosts = [host.lower() for host in hosts]
        self.https_only = https_only
        self.log = log

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        host = environ.get("HTTP_HOST")
        if host is not None and not host.islower():
            environ = {**environ, "HTTP_HOST": host.lower()}
        if host is not None:  # without one (HTTP/1.0), the server's own name stands in
            name = get_host(environ)  # "" for characters no host name has
            if not name or not host_binds(name):
                return self._refuse(environ, start_response, started, INVALID)
        if self.hosts:
            try:
                get_host(environ, self.hosts)
            except SecurityError:
                if environ.get("PATH_INFO") != HEALTH_CHECK_PATH:
                    return self._refuse(environ, start_response, started, UNTRUSTED)
                environ = {**environ, "HTTP_HOST": self.hosts[0].lstrip(".")}
        return self.wsgi_app(environ, start_response)

    def _refuse(self, environ, start_response, started: float, reason: str):
        return refuse_before_flask(self.app, environ, start_response, reason, started=started,
                                   https_only=self.https_only, log=self.log)
