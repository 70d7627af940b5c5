"""The query plans of the scale bench's requests (bench/scale.py), in-process: each path is
requested once through the app (the API with the seed's read token, the dashboard logged in
as the seed's admin), the SELECTs it sends on ``attendees`` or ``audit_events`` are
recorded with their bound values, and each is explained on the same database: on
PostgreSQL ``EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)`` (it runs the statement, to show
how many rows each scan read), on SQLite ``EXPLAIN QUERY PLAN``.

    .venv/bin/python bench/scale_plans.py --tokens TOKENS.json --paths '{"first page": "/admin/events/26/attendees"}'

Prints, as JSON, per path: each statement (shortened), its plan's lines, the indexes the plan
uses, the scans of a whole table or index, and on PostgreSQL the most rows one scan read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import sqlalchemy as sa

TABLES = ("attendees", "audit_events")
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_PG_INDEX = re.compile(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\S+)")
_PG_SEQ = re.compile(r"Seq Scan on (\S+)")
_PG_ROWS = re.compile(r"(?:Scan)[^(]*\(actual rows=(\d+)")
_SQLITE_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\S+)|USING (INTEGER PRIMARY KEY)")
_SQLITE_SCAN = re.compile(r"^SCAN (\S+)(.*)$")


def summary(dialect: str, lines: list[str]) -> dict:
    if dialect == "postgresql":
        return {"indexes": sorted({m for line in lines for m in _PG_INDEX.findall(line)}),
                "whole_table_scans": sorted({m for line in lines for m in _PG_SEQ.findall(line)}),
                "most_rows_one_scan_read": max((int(m) for line in lines for m in _PG_ROWS.findall(line)), default=0)}
    indexes, scans = set(), set()
    for line in lines:
        for index, _primary in _SQLITE_INDEX.findall(line):
            indexes.add(index or "rowid")
        scan = _SQLITE_SCAN.match(line.strip())
        if scan and scan.group(1) in TABLES:  # a SCAN reads the whole table, or the whole of the index it names
            scans.add(f"{scan.group(1)}{scan.group(2)}".strip())
    return {"indexes": sorted(indexes), "whole_table_scans": sorted(scans)}


def explain(engine: sa.Engine, statement: str, parameters) -> list[str]:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement, parameters)
            lines = [row[0] for row in cursor.fetchall()]
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            lines = [row[-1] for row in cursor.fetchall()]
        raw.rollback()
        return lines
    finally:
        raw.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", required=True, help="JSON written by bench/seed.py")
    parser.add_argument("--paths", required=True, help="JSON object: name -> path")
    options = parser.parse_args()
    with open(options.tokens) as f:
        tokens = json.load(f)
    from twin import create_bench_app

    from usetix.database.engine import db

    app = create_bench_app()
    with app.app_context():
        engine = db.engine
    api = app.test_client()
    dashboard = app.test_client()
    page = dashboard.get("/login").text
    dashboard.post("/login", data={"email": "bench@bench.example", "password": "bench-not-a-real-password",
                                   "csrf_token": _CSRF.search(page).group(1)})
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and any(t in statement for t in TABLES):
            seen.append((statement, parameters))

    out = {}
    for name, path in json.loads(options.paths).items():
        if path.startswith("/admin/settings/"):
            client, headers = dashboard, {"Accept": "text/html"}
        else:
            client, headers = api, {"Authorization": f"Bearer {tokens['read_token']}", "Accept": "application/json"}
        seen.clear()
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            response = client.get(path, headers=headers)
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        if response.status_code != 200:
            print(f"{name}: {path} answered {response.status_code}", file=sys.stderr)
            return 1
        out[name] = []
        for statement, parameters in list(seen):
            lines = explain(engine, statement, parameters)
            out[name].append({"statement": " ".join(statement.split())[:300], "plan": lines,
                              **summary(engine.dialect.name, lines)})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
