#!/usr/bin/env python3
"""Webhook delivery rate: ``usetix worker`` processes delivering to a local receiver.

    .venv/bin/python bench/webhooks.py                        # 2,000 messages, 1 worker, SQLite + embedded queue
    .venv/bin/python bench/webhooks.py --messages 200         # a smoke run
    .venv/bin/python bench/webhooks.py --workers 2 --queue redis://127.0.0.1:6379/14
    .venv/bin/python bench/webhooks.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/scratch

A scratch database (a SQLite file under /tmp, or the --postgres database, which must be
empty: its tables are made and dropped) gets one account with one endpoint, the receiver
(a threaded HTTP server in this process that answers 200 at once). The writes are real
API writes (check-ins and their undoing, through Flask's test client in this process),
each one message, committed as fast as they go. By default the workers start first (one
message through them before the clock starts) and deliver the messages as they come: the
p50/p99 from a message's commit (the write's answer) to its receipt is the figure there.
``--backlog N`` starts the workers after N writes instead: the delivery rate (first receipt
to last) is then how fast they drain a backlog.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from usetix import create_app  # noqa: E402  (after the path: the script runs from anywhere)
from usetix.auth.token_service import issue_token  # noqa: E402
from usetix.database.engine import db  # noqa: E402
from usetix.database.models import Account, Admin, Attendee, Event, utcnow  # noqa: E402

USETIX = str(Path(sys.executable).with_name("usetix"))


class Receipts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at: dict[str, float] = {}

    def serve(self) -> ThreadingHTTPServer:
        receipts = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receipts.lock:
                    receipts.at.setdefault(self.headers["webhook-id"], time.time())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def seed(app, attendees: int) -> tuple[str, list[tuple[int, int]]]:
    with app.app_context():
        db.create_all()
        account = Account(name="Bench")
        db.session.add(account)
        db.session.flush()
        admin = Admin(account_id=account.id, email="bench@bench.example", password_hash="x")
        event = Event(account_id=account.id, title="Bench", venue="Hall", status="published",
                      starts_at=utcnow(), ends_at=utcnow())
        db.session.add_all([admin, event])
        db.session.flush()
        people = [Attendee(account_id=account.id, event_id=event.id, name=f"Guest {n}", email=f"g{n}@bench.example",
                           ticket_type="General") for n in range(attendees)]
        db.session.add_all(people)
        db.session.commit()
        token = issue_token(admin, "bench", "write", "127.0.0.1")[1]
        return token, [(event.id, person.id) for person in people]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=0,
                        help="writes before the workers start (0: the workers start first, warmed by one message)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--queue", default=None, help="WEBHOOKS_QUEUE_URL (default: Huey's SQLite file)")
    parser.add_argument("--postgres", default=None, help="an empty PostgreSQL database instead of SQLite")
    parser.add_argument("--timeout", type=float, default=300)
    options = parser.parse_args()
    backlog = options.backlog

    scratch = Path(tempfile.mkdtemp(prefix="usetix-webhooks-bench-"))
    database_url = options.postgres or f"sqlite:///{scratch / 'bench.sqlite3'}"
    queue_url = options.queue or f"sqlite:///{scratch / 'queue.sqlite3'}"
    settings = {"SECRET_KEY": "bench-secret-key-0123456789", "DATABASE_URL": database_url,
                "WEBHOOKS_QUEUE_URL": queue_url, "WEBHOOKS_ALLOW_PRIVATE_TARGETS": True, "REQUEST_LOG": False,
                "RATELIMIT_ENABLED": False}
    app = create_app(settings)
    receipts = Receipts()
    server = receipts.serve()
    token, attendees = seed(app, min(options.messages, 500) + 1)  # the last one warms the workers
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    created = client.post("/admin/webhooks", headers=headers, json={
        "url": f"http://127.0.0.1:{server.server_address[1]}/hook",
        "events": ["attendee.checked_in", "attendee.check_in_undone"]})
    assert created.status_code == 201, created.json
    with app.app_context():
        from usetix.webhooks.queue import queue_for

        queue_for(app).flush()

    env = {k: v for k, v in os.environ.items() if not k.startswith("USETIX_")}
    env.update({f"USETIX_{name}": json.dumps(value) if not isinstance(value, str) else value
                for name, value in settings.items()})
    workers: list[subprocess.Popen] = []
    committed: dict[str, float] = {}
    try:
        started = time.time()
        def start_workers() -> list[subprocess.Popen]:
            return [subprocess.Popen([USETIX, "worker", "--threads", str(options.threads)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                    for _ in range(options.workers)]

        if backlog == 0:  # warm: the workers up and one message through before the timed writes
            workers = start_workers()
            warm = time.time() + options.timeout
            path = f"/admin/events/{attendees[-1][0]}/attendees/{attendees[-1][1]}/check_in"
            assert client.post(path, headers=headers).status_code == 201
            while not receipts.at and time.time() < warm:
                time.sleep(0.05)
            with receipts.lock:
                receipts.at.clear()
            started = time.time()
        for n in range(options.messages):
            if n == backlog and not workers:
                workers = start_workers()
            event_id, attendee_id = attendees[(n // 2) % (len(attendees) - 1)]
            path = f"/admin/events/{event_id}/attendees/{attendee_id}/check_in"
            answer = (client.post if n % 2 == 0 else client.delete)(path, headers=headers)
            assert answer.status_code in (201, 204), answer.status_code
            committed[str(n)] = time.time()
        writes_took = time.time() - started
        if not workers:  # the whole run is a backlog
            workers = start_workers()
        deadline = time.time() + options.timeout
        while len(receipts.at) < options.messages and time.time() < deadline:
            time.sleep(0.05)
        with app.app_context(), db.engine.connect() as connection:
            import sqlalchemy as sa

            from usetix.database.models import WebhookMessage

            ids = connection.execute(sa.select(WebhookMessage.message_id).order_by(WebhookMessage.id)).scalars().all()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        server.shutdown()
    received = len(receipts.at)
    timed = ids[1:] if backlog == 0 else ids  # (the warm-up message first)
    latencies = sorted(receipts.at[message_id] - committed[str(n)]
                       for n, message_id in enumerate(timed) if message_id in receipts.at and n >= backlog)
    arrivals = sorted(receipts.at.values())
    rate = (received - 1) / (arrivals[-1] - arrivals[0]) if received > 1 else 0.0
    print(f"messages {options.messages} (backlog {backlog}), workers {options.workers} x {options.threads} threads, "
          f"database {'PostgreSQL' if options.postgres else 'SQLite'}, queue {options.queue or 'Huey SQLite'}")
    print(f"writes: {options.messages / writes_took:.0f}/s; delivered {received}/{options.messages}")
    print(f"delivery rate: {rate:.0f} messages/s (first receipt to last)")
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"commit to receipt (after the backlog): p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms")
    if options.postgres:
        with app.app_context():
            db.drop_all()


if __name__ == "__main__":
    main()
