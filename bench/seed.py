"""Seed a throwaway benchmark database and print the tokens the load runs use, as JSON.

    USETIX_DATABASE_URL=sqlite:////tmp/usetix-bench/bench.sqlite3 python bench/seed.py

The schema comes from our migrations (``usetix init-db``), the rows from our models and
``issue_token``: one account, one admin, 25 events (the peers' page size) and one read
token. Only the token's digest is stored; its raw value exists in this script's output,
which the benchmark hands to the load generator (the database is deleted afterwards).
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta

from flask_migrate import upgrade

from usetix import create_app
from usetix.auth.passwords import hash_password
from usetix.auth.token_service import issue_token
from usetix.core import token_format
from usetix.extensions import db
from usetix.models import Account, Admin, Event

EVENTS = 25
VENUES = ("Main Hall", "Riverside Pavilion", "Room 101", "The Old Library", "Glasshouse Stage")


def bad_checksum(token: str) -> str:
    """``token`` with its last checksum character changed: well-shaped, but fails the CRC."""
    last = token[-1]
    return token[:-1] + ("1" if last != "1" else "2")


def seed() -> dict:
    app = create_app()
    with app.app_context():
        upgrade()
        if db.session.query(Account.id).first() is not None:
            sys.exit("bench/seed.py: the database is not empty; the benchmark seeds a fresh one")
        rng = random.Random(6)
        account = Account(name="Bench Events")
        db.session.add(account)
        db.session.flush()
        admin = Admin(account_id=account.id, email="bench@bench.example",
                      password_hash=hash_password("bench-not-a-real-password"))
        db.session.add(admin)
        start = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
        for number in range(EVENTS):
            starts_at = start + timedelta(days=2 * number, hours=rng.randint(-3, 3))
            db.session.add(Event(account_id=account.id, title=f"Bench event #{number + 1}",
                                 starts_at=starts_at, ends_at=starts_at + timedelta(hours=3),
                                 venue=rng.choice(VENUES), status=rng.choice(("published", "draft"))))
        db.session.flush()
        _, read_token = issue_token(admin, "bench read token", "read", None)
        unknown = token_format.generate()  # well-formed, valid checksum, never stored
        return {
            "account_id": account.id,
            "read_token": read_token,
            "unknown_token": unknown,
            "malformed_token": bad_checksum(unknown),
        }


if __name__ == "__main__":
    print(json.dumps(seed()))
