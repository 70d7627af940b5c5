"""The scale bench (``bench/run.py --scale``): the API's lists and the dashboard's audit log
on an event of many attendees and an account of many audit records (issue 27).

For each database (SQLite, and PostgreSQL with ``--postgres``) the run seeds a fresh one with
bench/seed.py, adds one event per size (``--scale-sizes``; SQLite ``--scale-sqlite-sizes``)
and grows it in SQL to that many attendees, each row as the API writes one (account_id,
event_id, name, email, ticket_type, not checked in, created_at = updated_at, version 1):
``generate_series`` on PostgreSQL, ``executemany`` on SQLite; then ``--scale-audit`` audit
records (API writes by the write token, a millisecond apart). PostgreSQL then gets
``VACUUM ANALYZE``, as autovacuum would leave a table of that age; SQLite gets nothing
(the app runs no ANALYZE). The app is served as the other paths are (gunicorn, the
repository's gunicorn.conf.py, ``--workers`` sync workers), and each figure is the median of
``--scale-requests`` sequential requests from one client, ``per_page=100``:

- the first page (no cursor: it carries ``meta.total``);
- pages reached by following ``Link rel="next"``: the run walks the whole list once from
  the first page (the "whole walk": pages and seconds; every row must be seen exactly once),
  keeps the ``rel="next"`` targets it followed to the second page (shallow), the middle
  page and the last page (deep), and asks each of those URLs again. A cursor cannot be
  made outside the app, so the deep page is reached the way a client reaches it; a walk
  longer than ``--scale-walk-seconds`` stops, and its deepest page stands for "deep" (the
  report says so). Whatever the link carries (``cursor=`` or today's ``page=N``) is followed;
  the report names which;
- ``page=N`` at the middle and the last page: the slow way, for contrast;
- a sync of 100 changes: 100 rows spread over the event updated in SQL (new ``updated_at``,
  ``version + 1``), then ``?updated_since=`` a moment before them, following ``rel="next"``
  to the end (seconds for the whole sync; the 100 rows must be in it); and, when that walk's
  last page carries ``meta.sync_cursor``, 100 more changes fetched with ``?cursor=<it>``;
- the dashboard's audit log (logged in as the seed's admin): its newest page, its Older
  page, and a deep page (the record at ``--scale-audit``-minus-one-page: the page's cursor
  made with the bench's own key, after checking that it makes the very cursor the page's
  own Older link carries), and the newest page filtered by action.

The statements of the first page, a deep page, the sync and the audit pages are explained
in-process (bench/scale_plans.py): the report names the indexes their plans use and any
scan of the whole table. Ratios are to the first (smallest) size's figures: issue 27 wants
a ``rel="next"`` page at any depth at most 1.5 times one of an event of 1,000, and a sync of 100
changes at most 1.5 times the same at 1,000.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import sqlalchemy as sa
from harness import HOST
from paths import BENCH_DIR, ROOT, Database, gunicorn_argv

PER_PAGE = 100
SYNC_CHANGES = 100
TICKET_TYPES = ("General", "VIP", "Student")
AUDIT_ACTIONS = ("attendee.created", "attendee.checked_in", "attendee.check_in_undone", "attendee.updated")
ADMIN_EMAIL, ADMIN_PASSWORD = "bench@bench.example", "bench-not-a-real-password"  # bench/seed.py's
# SQLAlchemy's storage format of a DateTime on SQLite (what the app writes and compares)
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_OLDER = re.compile(r'<a rel="next" href="([^"]+)"')
_AUDIT_ROW = re.compile(r'data-audit-id="(\d+)"')


@dataclasses.dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)

    def next_link(self, base: str) -> str | None:
        """The Link header's rel="next" target, resolved against ``base`` (a path and query)."""
        for value in self.headers.get_all("Link") or []:
            found = _NEXT.search(value)
            if found:
                target = urlsplit(urljoin(base, found.group(1)))
                return target.path + (f"?{target.query}" if target.query else "")
        return None


class Client:
    """One sequential client of the app: a new connection per request (sync workers close
    it anyway), a bearer token or the dashboard's cookies."""

    def __init__(self, port: int, token: str | None = None):
        self.port = port
        self.token = token
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None) -> Answer:
        headers = {"Accept": "application/json"} if self.token else {"Accept": "text/html"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        try:
            started = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            seconds = time.perf_counter() - started
        finally:
            conn.close()
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        return Answer(response.status, response.headers, data, seconds)

    def get(self, path: str, expect: int = 200) -> Answer:
        answer = self.request("GET", path)
        if answer.status != expect:
            raise RuntimeError(f"GET {path} answered {answer.status}, expected {expect}: {answer.body[:300]!r}")
        return answer

    def median_ms(self, path: str, requests: int) -> float:
        """The median of ``requests`` sequential GETs of ``path`` (each must answer 200), in ms."""
        return 1000 * statistics.median(self.get(path).seconds for _ in range(requests))

    def log_in(self) -> None:
        page = self.get("/login").body.decode()
        answer = self.request("POST", "/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                 "csrf_token": _CSRF.search(page).group(1)})
        if answer.status != 302:
            raise RuntimeError(f"dashboard login answered {answer.status}")


# -- growing the data in SQL ------------------------------------------------------------------

def engine_for(url: str) -> sa.Engine:
    connect_args = {"timeout": 60} if url.startswith("sqlite") else {}
    return sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args)


def add_event(engine: sa.Engine, account_id: int, attendees: int) -> int:
    from usetix.database.models import Event

    starts = datetime(2027, 3, 1, 18, 0, tzinfo=UTC)
    with engine.begin() as conn:
        return conn.execute(sa.insert(Event.__table__).values(
            account_id=account_id, title=f"Scale event of {attendees:,} attendees", starts_at=starts,
            ends_at=starts + timedelta(hours=4), venue="Main Hall", status="published",
            created_at=datetime.now(UTC), updated_at=datetime.now(UTC), version=1).returning(Event.id)).scalar_one()


def grow_attendees(engine: sa.Engine, account_id: int, event_id: int, count: int, first_at: datetime) -> None:
    """``count`` attendees of ``event_id``, created a millisecond apart from ``first_at``."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("""
                INSERT INTO attendees (account_id, event_id, name, email, ticket_type, checked_in, checked_in_at,
                                       created_at, updated_at, version, ticket_code)
                SELECT :account_id, :event_id, 'Scale guest ' || g, 'guest' || g || '@e' || :event_id || '.example',
                       (ARRAY['General', 'VIP', 'Student'])[1 + g % 3], false, NULL,
                       :first_at + g * interval '1 millisecond', :first_at + g * interval '1 millisecond', 1,
                       upper(substr(md5(random()::text || g), 1, 24))
                FROM generate_series(1, :count) AS g
            """), {"account_id": account_id, "event_id": event_id, "count": count,
                   "first_at": first_at.replace(tzinfo=None)})
        return
    from usetix.core.ticket_codes import new_code

    raw = engine.raw_connection()
    try:
        rows = ((account_id, event_id, f"Scale guest {g}", f"guest{g}@e{event_id}.example", TICKET_TYPES[g % 3], 0,
                 (stamp := (first_at + timedelta(milliseconds=g)).strftime(SQLITE_TIME)), stamp, new_code())
                for g in range(1, count + 1))
        raw.cursor().executemany(
            "INSERT INTO attendees (account_id, event_id, name, email, ticket_type, checked_in, created_at, "
            "updated_at, version, ticket_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)", rows)
        raw.commit()
    finally:
        raw.close()


def grow_audit(engine: sa.Engine, account_id: int, count: int, first_at: datetime) -> None:
    """``count`` audit records of API writes by the account's write token, a millisecond apart."""
    from usetix.database.models import ApiToken

    with engine.connect() as conn:
        token = conn.execute(sa.select(ApiToken.id, ApiToken.description, ApiToken.tier)
                             .where(ApiToken.account_id == account_id, ApiToken.tier == "write")).one()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("""
                INSERT INTO audit_events (account_id, admin_id, actor, action, token_id, token_description,
                                          token_tier, client_address, created_at, object_type, object_id,
                                          object_label)
                SELECT :account_id, NULL, 'token', (CAST(:actions AS text[]))[1 + g % 4], :token_id, :description,
                       :tier, '203.0.113.7', :first_at + g * interval '1 millisecond', 'attendee', g,
                       'Scale guest ' || g
                FROM generate_series(1, :count) AS g
            """), {"account_id": account_id, "actions": list(AUDIT_ACTIONS), "token_id": token.id,
                   "description": token.description, "tier": token.tier, "count": count,
                   "first_at": first_at.replace(tzinfo=None)})
        return
    raw = engine.raw_connection()
    try:
        rows = ((account_id, AUDIT_ACTIONS[g % 4], token.id, token.description, token.tier,
                 (first_at + timedelta(milliseconds=g)).strftime(SQLITE_TIME), g, f"Scale guest {g}")
                for g in range(1, count + 1))
        raw.cursor().executemany(
            "INSERT INTO audit_events (account_id, admin_id, actor, action, token_id, token_description, token_tier, "
            "client_address, created_at, object_type, object_id, object_label) "
            "VALUES (?, NULL, 'token', ?, ?, ?, ?, '203.0.113.7', ?, 'attendee', ?, ?)", rows)
        raw.commit()
    finally:
        raw.close()


def vacuum_analyze(engine: sa.Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE attendees")
            conn.exec_driver_sql("VACUUM ANALYZE audit_events")


def change_attendees(engine: sa.Engine, event_id: int, changes: int) -> tuple[datetime, set[int]]:
    """``changes`` attendees spread over the event changed as the API changes one (new
    ``updated_at``, ``version + 1``): a moment before the first change, and their ids."""
    from usetix.database.models import Attendee

    table = Attendee.__table__
    with engine.begin() as conn:
        low, high = conn.execute(sa.select(sa.func.min(table.c.id), sa.func.max(table.c.id))
                                 .where(table.c.event_id == event_id)).one()
        step = max(1, (high - low + 1) // changes)
        ids = [low + step * k + k % step for k in range(changes)]
        before = datetime.now(UTC) - timedelta(milliseconds=1)
        now = datetime.now(UTC)
        conn.execute(sa.update(table).where(table.c.id == sa.bindparam("row_id"))
                     .values(name=table.c.name + " (changed)", version=table.c.version + 1,
                             updated_at=sa.bindparam("changed_at")),
                     [{"row_id": row_id, "changed_at": now + timedelta(microseconds=k)} for k, row_id in
                      enumerate(ids)])
    return before, set(ids)


# -- measuring ----------------------------------------------------------------------------------

def walk(client: Client, first: str, keep: set[int] | None = None, limit_s: float | None = None) -> dict:
    """Follow rel="next" from ``first`` to the end: pages, rows (ids), seconds, whether it
    was cut short, the last page's meta, and the URLs of the pages numbered in ``keep``
    (1 = ``first``)."""
    url: str | None = first
    pages, ids, kept, seconds, cut, meta = 0, [], {}, 0.0, False, {}
    started = time.monotonic()
    while url is not None:
        answer = client.get(url)
        pages += 1
        seconds += answer.seconds
        if keep and pages in keep:
            kept[pages] = url
        body = answer.json()
        ids += [row["id"] for row in body["data"]]
        meta = body.get("meta", {})
        following = answer.next_link(url)
        if following is not None and limit_s is not None and time.monotonic() - started > limit_s:
            cut = True
            kept["deepest"] = (pages, url)
            break
        url = following
    return {"pages": pages, "ids": ids, "seconds": seconds, "cut": cut, "meta": meta, "kept": kept}


def link_kind(url: str | None) -> str:
    if url is None:
        return "none"
    return "cursor" if "cursor=" in url else "page=N" if "page=" in url else "other"


def measure_event(client: Client, engine: sa.Engine, event_id: int, size: int, options: Any, log) -> dict:
    requests = options.scale_requests
    base = f"/admin/events/{event_id}/attendees"
    first = f"{base}?per_page={PER_PAGE}"
    out: dict[str, Any] = {"size": size, "event_id": event_id}
    first_page = client.get(first).json()
    out["first_total"] = first_page["meta"].get("total")
    out["first_ms"] = client.median_ms(first, requests)
    last_page = max(1, -(-size // PER_PAGE))
    positions = {"shallow": 2, "middle": max(2, (last_page + 1) // 2), "deep": last_page}
    log(f"scale: {size:,}: walking {last_page:,} pages by rel=next")
    whole = walk(client, first, set(positions.values()), options.scale_walk_seconds)
    seen = whole["ids"]
    out["walk"] = {"pages": whole["pages"], "rows": len(seen), "distinct": len(set(seen)), "seconds": whole["seconds"],
                   "cut": whole["cut"], "complete": not whole["cut"] and len(seen) == len(set(seen)) == size}
    out["link_kind"] = link_kind(whole["kept"].get(2))
    out["next_ms"], out["next_urls"] = {}, {}
    for name, number in positions.items():
        url = whole["kept"].get(number)
        if url is None and name == "deep" and "deepest" in whole["kept"]:  # the walk was cut short
            number, url = whole["kept"]["deepest"]
        if url is not None:
            out["next_ms"][name] = {"ms": client.median_ms(url, requests), "page": number}
            out["next_urls"][name] = url
    out["page_n_ms"] = {name: client.median_ms(f"{first}&page={number}", requests)
                        for name, number in (("middle", positions["middle"]), ("end", last_page))}
    out["sync"] = measure_sync(client, engine, event_id, first, requests)
    return out


def timed_walk(client: Client, url: str, changed: set[int], requests: int) -> dict:
    """The sync from ``url`` to its end, ``requests`` times: the median seconds, its pages
    and rows, whether the changed rows were all in it, its last meta."""
    walks = [walk(client, url) for _ in range(requests)]
    last = walks[-1]
    return {"ms": 1000 * statistics.median(w["seconds"] for w in walks), "pages": last["pages"],
            "rows": len(last["ids"]), "all_changes_seen": changed <= set(last["ids"]),
            "sync_cursor": last["meta"].get("sync_cursor")}


def measure_sync(client: Client, engine: sa.Engine, event_id: int, first: str, requests: int) -> dict:
    before, changed = change_attendees(engine, event_id, SYNC_CHANGES)
    since = before.isoformat().replace("+00:00", "Z")
    result = {"updated_since": timed_walk(client, f"{first}&{urlencode({'updated_since': since})}", changed,
                                          requests)}
    sync_cursor = result["updated_since"].pop("sync_cursor")
    if sync_cursor:
        _, changed = change_attendees(engine, event_id, SYNC_CHANGES)
        base = first.partition("?")[0]
        url = f"{base}?{urlencode({'cursor': sync_cursor})}"
        result["sync_cursor"] = timed_walk(client, url, changed, requests)
        result["sync_cursor"].pop("sync_cursor")
        result["sync_cursor"]["url"] = url
    return result


def measure_audit_log(client: Client, engine: sa.Engine, secret: str, account_id: int, records: int,
                      requests: int) -> dict:
    """The dashboard's audit log: newest page, its Older page, a deep page, a filtered page."""
    from usetix.blueprints.dashboard import audit_log_cursor
    from usetix.database.models import AuditEvent

    log_path = "/admin/settings/audit_log"
    newest = client.get(log_path).body.decode()
    older = _OLDER.search(newest).group(1).replace("&amp;", "&")
    shown = [int(x) for x in _AUDIT_ROW.findall(newest)]

    def cursor_after(offset: int) -> str:
        """The Older link's cursor after the record at ``offset`` (newest first) as the app makes it."""
        with engine.connect() as conn:
            row = conn.execute(sa.select(AuditEvent.created_at, AuditEvent.id)
                               .where(AuditEvent.account_id == account_id)
                               .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
                               .offset(offset).limit(1)).one()
        position = audit_log_cursor.Position(audit_log_cursor.OLDER, row.created_at, row.id)
        return audit_log_cursor.encode(secret, audit_log_cursor.scope(account_id, {}), position)

    if older != f"{log_path}?cursor={cursor_after(len(shown) - 1)}":
        raise RuntimeError(f"the bench's audit log cursor differs from the page's own Older link {older}")
    deep = f"{log_path}?cursor={cursor_after(max(0, records - 2 * len(shown)))}"
    if len(_AUDIT_ROW.findall(client.get(deep).body.decode())) != len(shown):
        raise RuntimeError("the deep audit log page is not a full page")
    return {"records": records, "deep_url": deep, "older_url": older,
            "newest_ms": client.median_ms(log_path, requests), "older_ms": client.median_ms(older, requests),
            "deep_ms": client.median_ms(deep, requests),
            "filtered_ms": client.median_ms(f"{log_path}?action=attendee.updated", requests)}


def explain(env: dict[str, str], tokens_file: Path, paths: dict[str, str]) -> dict:
    """bench/scale_plans.py's plans of ``paths`` (name: API or dashboard path)."""
    completed = subprocess.run([sys.executable, str(BENCH_DIR / "scale_plans.py"), "--tokens", str(tokens_file),
                                "--paths", json.dumps(paths)], env=dict(env, USETIX_REQUEST_LOG="false"), cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
    if completed.returncode != 0:
        raise RuntimeError(f"bench/scale_plans.py failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout)


def run_scale(runner: Any, options: Any, kind: str, database: Database, tokens_file: Path, sizes: list[int],
              audit_records: int) -> dict:
    """Grow ``database`` and measure it under gunicorn: one kind's results."""
    log = runner.harness.log
    engine = engine_for(database.url)
    account_id = database.tokens["account_id"]
    first_at = datetime.now(UTC) - timedelta(days=30)
    result: dict[str, Any] = {"kind": kind, "sizes": sizes, "events": [], "grow_seconds": {}}
    try:
        events = {}
        for size in sizes:
            started = time.monotonic()
            events[size] = add_event(engine, account_id, size)
            grow_attendees(engine, account_id, events[size], size, first_at)
            result["grow_seconds"][f"attendees {size}"] = time.monotonic() - started
            log(f"scale: {kind}: event of {size:,} attendees in {time.monotonic() - started:.1f} s")
        if audit_records:
            started = time.monotonic()
            grow_audit(engine, account_id, audit_records, first_at)
            result["grow_seconds"][f"audit {audit_records}"] = time.monotonic() - started
            log(f"scale: {kind}: {audit_records:,} audit records in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        vacuum_analyze(engine)
        result["grow_seconds"]["vacuum analyze"] = time.monotonic() - started
        argv = gunicorn_argv(options.port, options.workers)
        with runner.serving(f"usetix_scale_{kind}", argv, database.env, str(ROOT), options.port):
            api = Client(options.port, database.tokens["read_token"])
            for size in sizes:
                result["events"].append(measure_event(api, engine, events[size], size, options, log))
                log(f"scale: {kind}: {size:,}: {json.dumps(result['events'][-1], default=str)[:400]}")
            if audit_records:
                dashboard = Client(options.port)
                dashboard.log_in()
                result["audit"] = measure_audit_log(dashboard, engine, database.env["USETIX_SECRET_KEY"], account_id,
                                                    audit_records, options.scale_requests)
                log(f"scale: {kind}: audit log {result['audit']}")
        biggest = result["events"][-1]
        plan_paths = {"first page": f"/admin/events/{biggest['event_id']}/attendees?per_page={PER_PAGE}"}
        deep = biggest["next_urls"].get("deep")
        if deep:
            plan_paths["deep rel=next page"] = deep
        plan_paths["sync (updated_since)"] = (f"/admin/events/{biggest['event_id']}/attendees?per_page={PER_PAGE}&"
                                              + urlencode({"updated_since": (datetime.now(UTC) - timedelta(seconds=60))
                                                           .isoformat().replace("+00:00", "Z")}))
        sync_cursor = biggest["sync"].get("sync_cursor")
        if sync_cursor:
            plan_paths["sync (sync_cursor)"] = sync_cursor["url"]
        if audit_records:
            plan_paths["audit log, newest"] = "/admin/settings/audit_log"
            plan_paths["audit log, deep"] = result["audit"]["deep_url"]
            plan_paths["audit log, by action"] = "/admin/settings/audit_log?action=attendee.updated"
        try:
            result["plans"] = explain(database.env, tokens_file, plan_paths)
        except (RuntimeError, subprocess.SubprocessError) as exc:
            result["plans_error"] = str(exc)[-500:]
    finally:
        engine.dispose()
    return result
