"""Seed a throwaway benchmark database and print the tokens the load runs use, as JSON.

    USETIX_DATABASE_URL=sqlite:////tmp/usetix-bench/bench.sqlite3 python bench/seed.py

The schema comes from our migrations (``usetix init-db``), the rows from our models and
``issue_token``: one account, one admin, 25 events (the peers' page size), one read
token, and for the write path a write token and a pool of attendees on the first event.
Only the tokens' digests are stored; their raw values exist in this script's output, which
the benchmark hands to the load generator (the database is deleted afterwards).
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
from usetix.core.permissions import Permissions
from usetix.database.engine import db
from usetix.database.models import Account, Admin, Attendee, Event

EVENTS = 25
# The write path checks these in and out (bench/checkin.lua): each wrk thread walks 200,
# far more than its requests in flight, so its requests for one attendee never overlap.
CHECKIN_POOL = 400
# The door's paths (bench/redeem.lua, bench/batch.lua): tickets of two other events, by code.
REDEEM_POOL = 400
BATCH_POOL = 800
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
        first_event = db.session.query(Event.id).order_by(Event.id).first()[0]
        pool = [Attendee(account_id=account.id, event_id=first_event, name=f"Bench guest {n}",
                         email=f"guest{n}@bench.example", ticket_type="General") for n in range(CHECKIN_POOL)]
        db.session.add_all(pool)
        redeem_event, batch_event = [row[0] for row in db.session.query(Event.id).order_by(Event.id)[2:4]]
        door_pools = {
            event_id: [Attendee(account_id=account.id, event_id=event_id, name=f"Door guest {n}",
                                email=f"door{n}@bench.example", ticket_type=("General", "VIP")[n % 2])
                       for n in range(size)]
            for event_id, size in ((redeem_event, REDEEM_POOL), (batch_event, BATCH_POOL))}
        for tickets in door_pools.values():
            db.session.add_all(tickets)
        db.session.flush()
        _, read_token = issue_token(admin, "bench read token", "read", None)
        _, write_token = issue_token(admin, "bench write token", "write", None)
        # Issue 22: a read token limited to every one of the events (the same page, through
        # the restriction), and one that may read attendees only (refused the event list).
        event_ids = [row[0] for row in db.session.query(Event.id).filter(Event.account_id == account.id)]
        _, restricted_token = issue_token(admin, "bench restricted token", "read", None, event_ids=event_ids)
        _, attendees_only_token = issue_token(admin, "bench attendees-only token", "custom", None,
                                              permissions=Permissions("none", "read", "none"))
        # Issue 23: the door's scanner (the check-in preset).
        _, door_token = issue_token(admin, "bench door scanner", "check_in", None)
        unknown = token_format.generate()  # well-formed, valid checksum, never stored
        return {
            "account_id": account.id,
            "read_token": read_token,
            "write_token": write_token,
            "restricted_token": restricted_token,
            "attendees_only_token": attendees_only_token,
            "checkin_base": f"/admin/events/{first_event}/attendees/",
            "checkin_first": min(a.id for a in pool),
            "checkin_count": CHECKIN_POOL,
            "door_token": door_token,
            # Ticket codes in a throwaway database, like the raw tokens above.
            "redeem_base": f"/admin/events/{redeem_event}",
            "redeem_pool": [[a.id, a.ticket_code] for a in door_pools[redeem_event]],
            "batch_base": f"/admin/events/{batch_event}",
            "batch_pool": [[a.id, a.ticket_code] for a in door_pools[batch_event]],
            "unknown_token": unknown,
            "malformed_token": bad_checksum(unknown),
        }


if __name__ == "__main__":
    print(json.dumps(seed()))
