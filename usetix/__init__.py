"""Usetix admin: the dashboard for an account's admins and the JSON API for its scripts."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config, request_log
from .body_limit import refuse_oversized_body
from .extensions import csrf, db, limiter, login_manager, migrate
from .routing import Usetix, for_pages_only


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, commands, response headers."""
    app = Usetix(__name__, instance_relative_config=True)
    config.load(app, test_config)
    config.check_secret_key(app)
    register_extensions(app)
    # Before the blueprints: its clock must start before their before_request hooks.
    request_log.init_app(app)
    # Before the blueprints too: an oversized body is refused before the API authenticates.
    app.before_request(refuse_oversized_body)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_middleware(app)
    return app


def register_extensions(app: Flask) -> None:
    from pathlib import Path

    from .sessions import make_session_interface

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)  # on every request: a form on any blueprint is protected unless exempted
    with for_pages_only(app):
        limiter.init_app(app)
        login_manager.init_app(app)
    app.session_interface = make_session_interface(app)


def register_blueprints(app: Flask) -> None:
    from .blueprints import api, auth, dashboard, meta

    app.register_blueprint(meta.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(api.bp)
    if app.config["BENCH_TWIN_ROUTE"] or app.config["BENCH_STATEMENT_LOG"]:
        from . import benchmark

        benchmark.init_app(app)


def register_errorhandlers(app: Flask) -> None:
    from . import errors

    errors.register_errorhandlers(app)


def register_commands(app: Flask) -> None:
    from . import cli

    app.register_blueprint(cli.bp)


def register_middleware(app: Flask) -> None:
    from .credential_gate import CredentialGate
    from .security_headers import add_security_headers
    from .trusted_hosts import TrustedHostMiddleware

    app.after_request(add_security_headers)
    # Innermost: it refuses unusable API credentials the way the bearer hook would, but
    # after the host check, and with the client address ProxyFix has restored.
    app.wsgi_app = CredentialGate(app, app.wsgi_app)
    if app.config["TRUSTED_HOSTS"]:
        # Inside ProxyFix, so it checks the host the client asked the proxy for. The
        # middleware does the whole check: Flask's own would refuse /healthz for a load
        # balancer that probes by address (see usetix/trusted_hosts.py).
        app.wsgi_app = TrustedHostMiddleware(app.wsgi_app, app.config["TRUSTED_HOSTS"])
        app.config["TRUSTED_HOSTS"] = None
    if app.config["PROXY_FIX"]:
        hops = int(app.config["PROXY_FIX_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
