"""Command-line tools: ``usetix COMMAND`` or ``flask --app usetix COMMAND``.

Every command checks its input before writing, and writes in one transaction, so a bad
argument leaves nothing half-done.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta

import click
import sqlalchemy as sa
from flask import Blueprint, current_app

from .auth.device_grant import purge_expired_requests
from .auth.passwords import hash_password
from .auth.sessions.hooks import PURGE_BATCH_SIZE, purge_expired
from .auth.token_service import find_by_value, revoke_token
from .core import token_format
from .database import idempotency, tombstones
from .database.engine import db
from .database.models import Account, Admin, Attendee, Event, utcnow
from .webhooks.delivery import purge_old_attempts
from .webhooks.worker import run_worker

bp = Blueprint("cli", __name__, cli_group=None)

MIN_PASSWORD_LENGTH = 10
DEMO_PASSWORD = "usetix-demo-password"
DEMO_ACCOUNTS = (("Acme Events", "admin@acme.example"), ("Globex Live", "admin@globex.example"))
DEMO_EVENTS_PER_ACCOUNT = 32


def fail(message: str) -> None:
    """Print ``message`` to stderr and exit with status 1."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@bp.cli.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema (idempotent)."""
    from flask_migrate import upgrade

    upgrade()
    click.echo(f"Database ready: {db.engine.url.render_as_string(hide_password=True)}")


@bp.cli.command("create-account")
@click.argument("name")
def create_account(name: str) -> None:
    """Create an account called NAME and print its id."""
    name = name.strip()
    if not name or len(name) > 200:
        fail("the account name must be 1 to 200 characters.")
    account = Account(name=name)
    db.session.add(account)
    db.session.commit()
    click.echo(account.id)


def _add_admin(account_id: int, email: str, password: str) -> Admin:
    """Validate and create an admin (not committed); exits with a clear error on bad input."""
    email = Admin.normalize_email(email)
    if db.session.get(Account, account_id) is None:
        fail(f"there is no account with id {account_id}.")
    if "@" not in email or len(email) > 254:
        fail(f"{email!r} is not an email address.")
    if db.session.scalar(sa.select(Admin.id).where(Admin.email == email)) is not None:
        fail(f"an admin with email {email} already exists.")
    if len(password) < MIN_PASSWORD_LENGTH:
        fail(f"the password must be at least {MIN_PASSWORD_LENGTH} characters.")
    admin = Admin(account_id=account_id, email=email, password_hash=hash_password(password))
    db.session.add(admin)
    return admin


@bp.cli.command("create-admin")
@click.option("--account", "account_id", type=int, required=True, help="Id of the admin's account.")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_admin(account_id: int, email: str, password_stdin: bool) -> None:
    """Create an admin; the password comes from a hidden prompt or --password-stdin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    admin = _add_admin(account_id, email, password)
    db.session.commit()
    click.echo(f"Admin {admin.email} created (id {admin.id}).")


@bp.cli.command("seed-demo")
@click.option("--password", default=DEMO_PASSWORD, show_default=True, help="Password of the demo admins.")
def seed_demo(password: str) -> None:
    """Demo data (idempotent): two accounts with events, attendees and one admin each."""
    rng = random.Random(2026)
    start = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    for name, email in DEMO_ACCOUNTS:
        if db.session.scalar(sa.select(Admin.id).where(Admin.email == email)) is not None:
            continue
        account = Account(name=name)
        db.session.add(account)
        db.session.flush()
        _add_admin(account.id, email, password)
        for number in range(DEMO_EVENTS_PER_ACCOUNT):
            starts_at = start + timedelta(days=3 * number + rng.randint(0, 2), hours=rng.randint(-4, 3))
            event = Event(
                account_id=account.id,
                title=f"{name.split()[0]} {rng.choice(_TOPICS)} {rng.choice(_KINDS)} #{number + 1}",
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=rng.choice((2, 3, 4))),
                venue=rng.choice(_VENUES),
                status=rng.choice(("published", "published", "draft")),
            )
            db.session.add(event)
            db.session.flush()
            for seat in range(rng.randint(2, 8)):
                first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
                checked_in = rng.random() < 0.3
                db.session.add(Attendee(
                    account_id=account.id,
                    event_id=event.id,
                    name=f"{first} {last}",
                    email=f"{first}.{last}{seat}@{name.split()[0].lower()}-guests.example".lower(),
                    ticket_type=rng.choice(("General", "VIP", "Student")),
                    checked_in=checked_in,
                    checked_in_at=starts_at + timedelta(minutes=rng.randint(-30, 45)) if checked_in else None,
                ))
    db.session.commit()
    click.echo("Demo data ready. Log in at /login as:")
    for name, email in DEMO_ACCOUNTS:
        click.echo(f"  {email:<24} ({name})")
    click.echo(f"  password: {password}" if password == DEMO_PASSWORD else "  with the password you gave.")


@bp.cli.command("purge-sessions")
@click.option("--batch-size", type=click.IntRange(min=1), default=PURGE_BATCH_SIZE, show_default=True,
              help="Rows deleted per transaction.")
def purge_sessions(batch_size: int) -> None:
    """Delete expired dashboard sessions (run it from cron; no request does it)."""
    click.echo(f"Purged {purge_expired(current_app, batch_size)} expired session(s).")


@bp.cli.command("purge-idempotency-keys")
def purge_idempotency_keys() -> None:
    """Delete Idempotency-Keys older than 24 hours (writes also sweep them now and then)."""
    with db.engine.begin() as connection:
        purged = idempotency.purge(connection, utcnow())
    click.echo(f"Purged {purged} expired idempotency key(s).")


@bp.cli.command("purge-tombstones")
def purge_tombstones() -> None:
    """Delete the tombstones of deletions older than TOMBSTONE_RETENTION_DAYS (run it from cron)."""
    kept = timedelta(days=float(current_app.config["TOMBSTONE_RETENTION_DAYS"]))
    click.echo(f"Purged {tombstones.purge(db.engine, utcnow() - kept)} tombstone(s).")


@bp.cli.command("purge-device-codes")
def purge_device_codes() -> None:
    """Delete device pairing requests whose code expired without giving a token (cron, daily)."""
    click.echo(f"Purged {purge_expired_requests(utcnow())} expired device code(s).")
@bp.cli.command("worker")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Delivery threads (default: WEBHOOKS_WORKER_THREADS).")
def worker(threads: int | None) -> None:
    """Deliver webhooks: take messages from the task queue, and sweep the outbox for any it
    lost (run any number, on any host; SIGINT finishes what is in hand, SIGTERM stops)."""
    run_worker(current_app._get_current_object(), threads)


@bp.cli.command("purge-webhook-deliveries")
def purge_webhook_deliveries() -> None:
    """Delete delivery log entries older than WEBHOOKS_LOG_RETENTION_DAYS (the workers do it hourly too)."""
    click.echo(f"Purged {purge_old_attempts()} webhook delivery attempt(s).")


@bp.cli.command("revoke-token")
@click.option("--value-stdin", is_flag=True, required=True, help="Read the leaked token value from stdin.")
def revoke_token_command(value_stdin: bool) -> None:
    """Revoke a leaked token by its value, whatever its account (recorded in the audit log)."""
    raw = sys.stdin.readline().strip()
    try:
        token = find_by_value(raw)
    except token_format.MalformedToken as exc:
        fail(f"that is not a Usetix token: {exc}.")
    if token is None:
        fail("no token with that value exists.")
    if revoke_token(token, actor="operator (command line)", admin_id=None, client_address=None):
        click.echo(f"Revoked token {token.id} (“{token.description}”) of account {token.account_id}.")
    else:
        click.echo(f"Token {token.id} of account {token.account_id} was already revoked.")


_TOPICS = ("Jazz", "Python", "Design", "Film", "Poetry", "Startup", "Science", "Food", "Open-Air", "Comedy")
_KINDS = ("Night", "Meetup", "Workshop", "Summit", "Showcase", "Festival", "Salon", "Gala")
_VENUES = ("Main Hall", "Riverside Pavilion", "Room 101", "The Old Library", "Glasshouse Stage",
           "Harbour Warehouse", "Civic Centre Auditorium", "Rooftop Terrace")
_FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Guido", "Radia")
_LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Perlman")
