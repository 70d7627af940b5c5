"""Configuration: built-in defaults, then instance/config.py, then USETIX_* environment
variables, then the mapping passed to create_app() (tests)."""

from __future__ import annotations

import os
from datetime import timedelta

from flask import Flask

# A placeholder only usable in debug or testing; production must set a real key.
DEV_SECRET_KEY = "dev-only-not-secret"


def defaults(instance_path: str) -> dict:
    """Built-in settings; every one can be overridden by instance/config.py or USETIX_*."""
    return {
        "SECRET_KEY": DEV_SECRET_KEY,
        # The embedded default database lives in the instance folder, outside the package.
        "DATABASE_URL": "sqlite:///" + os.path.join(instance_path, "usetix.sqlite3"),
        # A SQLite database's PRAGMA synchronous (usetix/database/engine.py): NORMAL, FULL or EXTRA.
        "SQLITE_SYNCHRONOUS": "NORMAL",
        # How long a SQLite statement waits for another connection's lock before it fails
        # (PRAGMA busy_timeout); a write that still finds the lock answers 503.
        "SQLITE_BUSY_TIMEOUT_MS": 10000,
        "SESSION_IDLE_HOURS": 8,
        # However active, a login ends after this long (7 days).
        "SESSION_ABSOLUTE_HOURS": 168,
        "SESSION_REDIS_URL": None,
        "SESSION_COOKIE_NAME": "usetix_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": False,
        "PREFERRED_URL_SCHEME": "http",
        "PASSWORD_HASH_METHOD": "scrypt",
        "EVENTS_PER_PAGE": 25,
        # How far a sync's position trails the oldest open transaction (PostgreSQL) or now
        # (SQLite): the margin for a write that took its timestamp before it could commit,
        # and for the clocks of the hosts (usetix/database/list_queries.py, sync_horizon).
        "SYNC_SETTLE_SECONDS": 15,
        # Deleted events' and attendees' tombstones are kept this long (`usetix purge-tombstones`);
        # a sync of deletions from before then answers 410 full_sync_required.
        "TOMBSTONE_RETENTION_DAYS": 90,
        "API_RATE_LIMIT": "600 per minute",
        "API_FAILED_AUTH_LIMIT": "60 per minute",
        # Failed logins (usetix/ratelimit; SECURITY.md, "Abuse limits", says why these numbers):
        # one email from one address; one address across emails (spraying); one email from
        # every address, loose, so that locking an admin out takes many addresses.
        "LOGIN_RATE_LIMIT": "10 per 15 minutes",
        "LOGIN_ADDRESS_RATE_LIMIT": "30 per 15 minutes",
        "LOGIN_EMAIL_RATE_LIMIT": "100 per 15 minutes",
        # Unauthenticated leak reports (POST /admin/credentials/revoke) per client address.
        "LEAK_REPORT_RATE_LIMIT": "60 per hour",
        # Pairing devices (SECURITY.md, "Pairing devices", says why these numbers): codes a
        # client address may ask for (POST /oauth/device_authorization), and user codes the
        # approval page looks up per login session and per client address.
        "DEVICE_AUTHORIZATION_RATE_LIMIT": "30 per 10 minutes",
        "DEVICE_CODE_RATE_LIMIT": "10 per 10 minutes",
        "DEVICE_CODE_ADDRESS_RATE_LIMIT": "30 per 10 minutes",
        # Where people reach this app (https://tickets.example.org), for the links a device
        # shows (the device grant's verification_uri); None: a path only. Never the Host header.
        "PUBLIC_URL": None,
        # Per-worker counters without limits' expiry thread (usetix/ratelimit/worker_memory.py);
        # a redis:// URL shares them between workers and hosts.
        "RATELIMIT_STORAGE_URL": "worker-memory://",
        # False switches every limit off, for a deployment behind a rate-limiting gateway (usetix/ratelimit).
        "RATELIMIT_ENABLED": True,
        "PROXY_FIX": False,
        "PROXY_FIX_HOPS": 1,
        "TRUSTED_HOSTS": None,
        # One line per request to stderr (usetix/web/request_log.py).
        "REQUEST_LOG": True,
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # Webhooks (usetix/webhooks/; README, "Webhooks"). The task queue the workers
        # (`usetix worker`) take deliveries from: None is a SQLite file in the instance folder
        # (no extra service, one host); redis://... or postgresql://... for several hosts.
        "WEBHOOKS_QUEUE_URL": None,
        # Development and tests only: lets http://127.0.0.1:<port> (loopback) be a target.
        "WEBHOOKS_ALLOW_PRIVATE_TARGETS": False,
        # The delays between attempts in seconds (None: the spec's schedule, about three days);
        # tests shorten it.
        "WEBHOOKS_RETRY_SCHEDULE": None,
        # How long a worker's claim on a message lasts: more than a delivery's 15 s timeout;
        # a worker killed mid-delivery leaves its messages to others after this.
        "WEBHOOKS_LEASE_SECONDS": 60,
        # How often each worker's sweeper looks for messages due and unclaimed (lost between a
        # commit and its enqueue, or held by a worker that died), and how long a due message
        # waits in the queue before the sweeper hands it out again.
        "WEBHOOKS_SWEEP_SECONDS": 15,
        "WEBHOOKS_SWEEP_GRACE_SECONDS": 30,
        "WEBHOOKS_WORKER_THREADS": 8,
        # At most this many due messages per claim: one UPDATE claims them, one transaction
        # logs them, and those to one target share a kept-alive connection.
        "WEBHOOKS_BATCH_SIZE": 32,
        # The delivery log is kept this long.
        "WEBHOOKS_LOG_RETENTION_DAYS": 30,
    }


def load(app: Flask, overrides: dict | None) -> None:
    """Fill ``app.config`` in the documented order and derive the settings extensions read."""
    app.config.from_mapping(defaults(app.instance_path))
    app.config.from_pyfile("config.py", silent=True)
    # USETIX_SESSION_IDLE_HOURS=4 -> SESSION_IDLE_HOURS=4 (values are parsed as JSON when they can be).
    app.config.from_prefixed_env("USETIX")
    if overrides:
        app.config.from_mapping(overrides)

    config = app.config
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(config["DATABASE_URL"],
                                                         config.get("SQLALCHEMY_ENGINE_OPTIONS"))
    config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=float(config["SESSION_IDLE_HOURS"]))
    if config["SESSION_COOKIE_SECURE"]:
        config["PREFERRED_URL_SCHEME"] = "https"
    if isinstance(config["TRUSTED_HOSTS"], str):
        config["TRUSTED_HOSTS"] = [h.strip() for h in config["TRUSTED_HOSTS"].split(",") if h.strip()]
    if config["TRUSTED_HOSTS"]:  # host names ignore case; Flask's own check of this list does not
        config["TRUSTED_HOSTS"] = [host.lower() for host in config["TRUSTED_HOSTS"]]


def engine_options(database_url: str, configured: dict | None) -> dict:
    """The engine's options: what the configuration says, over our defaults.

    ``hide_parameters``: a statement's bound values (session data, token digests, emails)
    never appear in an error's message, so not in a logged traceback either. A pooled
    connection a database server dropped is replaced at checkout by ``ping_at_checkout``
    (usetix/database/engine.py), which is ``pool_pre_ping`` but for the API's first read;
    a configured ``pool_pre_ping`` adds SQLAlchemy's own ping to every checkout.
    """
    return {"hide_parameters": True, **(configured or {})}


def check_secret_key(app: Flask) -> None:
    """Refuse to serve outside debug/testing with the placeholder (or an empty) secret key."""
    if app.debug or app.testing:
        return
    key = app.config.get("SECRET_KEY")
    if not key or key == DEV_SECRET_KEY or len(str(key)) < 16:
        raise RuntimeError(
            "Usetix needs a real secret key outside debug and testing. Set USETIX_SECRET_KEY "
            "(for example: export USETIX_SECRET_KEY=$(python3 -c 'import secrets; "
            "print(secrets.token_hex(32))')) or SECRET_KEY in instance/config.py."
        )
