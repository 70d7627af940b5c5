"""The client's address behind a proxy: ProxyFix, then a check that what it took from
``X-Forwarded-For`` is an IP address.

ProxyFix copies the forwarded value into ``REMOTE_ADDR`` as it is, and everything reads
that: the credential gate and the rate limits key on it, sessions are bound to it, audit
records and token usage store it (in 64-character columns). A value that is not an IP
address (``PROXY_FIX_HOPS`` counts more proxies than there are, so an entry the client
wrote is taken; or a proxy that passes anything on) is refused with our 400 before anything reads
it; a valid one is kept in its normal form (``ipaddress``: IPv6 compressed, at most 45
characters). An address the proxy did not forward (the peer itself) is left alone.
"""

from __future__ import annotations

import ipaddress
import time

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .errors import refuse_before_flask

NOT_AN_ADDRESS = "The forwarded client address (X-Forwarded-For) is not an IP address."


def normal_address(value: str) -> str | None:
    """``value`` as an IP address in its normal form; None when it is not one (an IPv6
    zone, ``fe80::1%eth0``, is not: it means nothing beyond the proxy's own link)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if getattr(address, "scope_id", None):
        return None
    return str(address)


class ForwardedAddressCheck:
    """WSGI middleware just inside ProxyFix: 400 for a forwarded address that is not one."""

    def __init__(self, app: Flask, wsgi_app, https_only: bool, log: bool):
        self.app = app
        self.wsgi_app = wsgi_app
        self.https_only = https_only
        self.log = log

    def __call__(self, environ, start_response):
        forwarded = environ.get("REMOTE_ADDR")
        peer = environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR")  # ProxyFix keeps the original there
        if forwarded != peer:
            address = normal_address(forwarded or "")
            if address is None:
                return refuse_before_flask(self.app, environ, start_response, NOT_AN_ADDRESS,
                                           started=time.perf_counter(), https_only=self.https_only, log=self.log)
            if address != forwarded:
                environ["REMOTE_ADDR"] = address
        return self.wsgi_app(environ, start_response)


def behind_proxies(app: Flask, wsgi_app, hops: int, https_only: bool, log: bool) -> ProxyFix:
    """``wsgi_app`` behind ``hops`` trusted proxies: their X-Forwarded-For/-Proto/-Host/-Port
    believed, and the client address checked."""
    checked = ForwardedAddressCheck(app, wsgi_app, https_only=https_only, log=log)
    return ProxyFix(checked, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
