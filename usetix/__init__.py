"""Usetix admin: the dashboard for an account's admins and the JSON API for its scripts.

The package is layered, and imports point down only (import-linter checks it in
``make test``; the contract is in setup.cfg):

    blueprints/   the screens: api/, dashboard/, login.py, meta.py, leak_report.py
    web/          plumbing: the app class, credential gate, responses, errors, headers, logs
    auth/         who is this request: principal, bearer tokens, passwords, sessions
    ratelimit/    every limit, on the limits library
    database/     db and the engine, the models, the request's connection, prepared SELECTs
    extensions.py, api_contract/ (the API's bodies and OpenAPI document, pure)
    core/         pure modules: token format, Authorization header, Accept rule, list parameters

:func:`create_app` is the only importer of a blueprint.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from . import config
from .database.engine import configure_sqlite, db, ping_at_checkout
from .database.faults import mark_faults
from .extensions import csrf, migrate


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, commands, response headers."""
    from .web.app import Usetix

    app = Usetix(__name__, instance_relative_config=True)
    config.load(app, test_config)
    config.check_secret_key(app)
    register_extensions(app)
    register_request_hooks(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_middleware(app)
    return app


def main() -> None:
    """The ``usetix`` console script: the commands of ``usetix/cli.py`` and Flask's own."""
    from flask.cli import FlaskGroup

    FlaskGroup(create_app=create_app, help="Usetix admin: database, accounts, demo data.")()


def register_extensions(app: Flask) -> None:
    from . import ratelimit
    from .auth import admins, passwords
    from .auth.sessions.interface import make_session_interface
    from .database import connection

    db.init_app(app)
    with app.app_context():
        configure_sqlite(db.engine, app.config["SQLITE_SYNCHRONOUS"], app.config["SQLITE_BUSY_TIMEOUT_MS"])
        ping_at_checkout(db.engine)
        mark_faults(db.engine)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)  # on every request: a form on any blueprint is protected unless exempted
    admins.init_app(app)
    passwords.init_app(app)
    ratelimit.init_app(app)
    connection.init_app(app)
    app.session_interface = make_session_interface(app)


def register_request_hooks(app: Flask) -> None:
    """App-wide hooks that must run before the blueprints' (registered after them)."""
    from .web import request_log
    from .web.body_limit import refuse_oversized_body

    # Its clock must start before the blueprints' before_request hooks, which may answer.
    request_log.init_app(app)
    # An oversized body is refused before the API authenticates.
    app.before_request(refuse_oversized_body)


def register_blueprints(app: Flask) -> None:
    from .auth import admins
    from .blueprints import api, dashboard, leak_report, login, meta, oauth

    app.register_blueprint(meta.bp)
    app.register_blueprint(leak_report.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(login.bp)
    admins.set_login_view(login.LOGIN_ENDPOINT)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(api.bp)


def register_errorhandlers(app: Flask) -> None:
    from .web import database_failures, errors

    errors.register_errorhandlers(app)
    database_failures.register_errorhandler(app)


def register_commands(app: Flask) -> None:
    from . import cli

    app.register_blueprint(cli.bp)


def register_middleware(app: Flask) -> None:
    from .web import request_log
    from .web.client_address import behind_proxies
    from .web.credential_gate import CredentialGate
    from .web.security_headers import add_security_headers
    from .web.trusted_hosts import TrustedHostMiddleware

    app.after_request(add_security_headers)
    # Innermost: it refuses unusable API credentials the way the bearer hook would, but
    # after the host check, and with the client address ProxyFix has restored.
    app.wsgi_app = CredentialGate(app, app.wsgi_app)
    # Always (a Host Werkzeug cannot bind is refused even with TRUSTED_HOSTS unset); inside
    # ProxyFix, so it checks the host the client asked the proxy for; before Flask's own
    # check of the same setting (see usetix/web/trusted_hosts.py).
    app.wsgi_app = TrustedHostMiddleware(app, app.wsgi_app, app.config["TRUSTED_HOSTS"] or (),
                                         https_only=app.config["SESSION_COOKIE_SECURE"],
                                         log=request_log.enabled(app))
    if app.config["PROXY_FIX"]:
        # Outermost: every middleware and hook inside sees the client's (checked) address.
        app.wsgi_app = behind_proxies(app, app.wsgi_app, int(app.config["PROXY_FIX_HOPS"]),
                                      https_only=app.config["SESSION_COOKIE_SECURE"], log=request_log.enabled(app))
