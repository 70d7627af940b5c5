"""The report of a run: the header, the targets with their ratios, the harness's tables, and
the checks the timings cannot show (SQL per request, ``last_used_at`` writes, worker memory).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shlex
import statistics
import subprocess
import sys
import time
from types import ModuleType
from typing import Any

from paths import APP, BATCH_SCANS, ON_POSTGRES, PG_PATHS, RAISED_LIMIT, TABLE_NAMES

# (label, app, kind, reference app, kind, needed ratio): the targets of the earlier issues
RATIO_TARGETS = [
    ("write (check-in/undo) vs authenticated read", APP + "_write", "ok", APP, "ok", 0.4),
    # Issue 23: the door. A batch request carries BATCH_SCANS scans, so 0.1x its requests is 10x the scans.
    ("door: redeem (admit/undo) vs authenticated read", APP + "_redeem", "ok", APP, "ok", 0.4),
    ("door: 100-scan batches vs redeems, per request (0.1x = 10x the scans a second)", APP + "_batch", "ok",
     APP + "_redeem", "ok", 0.1),
    ("authenticated vs flask_baseline", APP, "ok", "flask_baseline", "ok", 1.3),
    ("authenticated vs ceiling", APP, "ok", "ceiling", "ok", 0.5),
    ("unknown token 401 vs flask_baseline's 401", APP, "reject", "flask_baseline", "reject", 1.2),
    ("malformed token 401 vs ceiling's 401", APP + "_malformed", "reject", "ceiling", "reject", 0.8),
    ("authenticated vs unauthenticated twin", APP, "ok", APP + "_twin", "ok", 0.9),
    # Issue 22: a restricted token's list, and a permission refusal no dearer than a tier refusal
    ("restricted token's list vs flask_baseline", APP + "_restricted", "ok", "flask_baseline", "ok", 1.5),
    ("permission refusal 403 vs tier refusal 401", APP + "_denied", "reject", APP + "_post", "reject", 1.0),
]
# With --postgres: the same against the harness's PostgreSQL peers (issue 21)
PG_SUFFIX = "_pg"  # the harness's suffix of a peer's PostgreSQL variant
PG_PEER_REFERENCES = ("flask_baseline_pg", "drf_pg", "ceiling_pg")
PG_RATIO_TARGETS = [
    ("PostgreSQL: authenticated vs flask_baseline_pg", ON_POSTGRES, "ok", "flask_baseline_pg", "ok", 1.5),
    ("PostgreSQL: authenticated vs drf_pg", ON_POSTGRES, "ok", "drf_pg", "ok", 2.0),
    ("PostgreSQL: authenticated vs ceiling_pg", ON_POSTGRES, "ok", "ceiling_pg", "ok", 0.6),
    ("PostgreSQL: write (check-in/undo) vs authenticated read", PG_PATHS["write"], "ok", ON_POSTGRES, "ok", 0.5),
    ("PostgreSQL: door: redeem (admit/undo) vs authenticated read", PG_PATHS["redeem"], "ok", ON_POSTGRES, "ok",
     0.4),
    ("PostgreSQL: door: 100-scan batches vs redeems, per request (0.1x = 10x the scans a second)",
     PG_PATHS["batch"], "ok", PG_PATHS["redeem"], "ok", 0.1),
]
MAX_PG_ROUND_TRIPS = 2  # per authenticated list on PostgreSQL
# bench/roundtrips.py's paths, as the report names them
ROUND_TRIP_LABELS = {
    "auth": "authenticated `GET /admin/events`", "single": "one event, `GET /admin/events/<id>`",
    "unknown": "unknown token (401)", "check_in": "check-in, `POST …/check_in`",
    "undo": "its undo, `DELETE …/check_in`",
    "idempotent_check_in": "a check-in with an `Idempotency-Key`",
}
MAX_RSS_GROWTH_PCT = 10
LAST_USED_MIN_GAP_S = 60
APP_PACKAGES = ("gunicorn", "Flask", "Werkzeug", "SQLAlchemy", "Flask-SQLAlchemy", "limits", "Flask-Login",
                "Flask-WTF", "orjson", "pydantic", "psycopg")
PATHS_LINE = (
    "Paths: `usetix` ok = authenticated GET /admin/events (read token), reject = well-formed unknown "
    "token; `usetix_twin` = GET /admin/bench-twin/events (same work, no authentication); "
    "`usetix_malformed` = bad-checksum token; `usetix_post` = the read token's POST /admin/events; "
    "`usetix_restricted` = GET /admin/events with a token restricted to all the events; `usetix_denied` = "
    "GET /admin/events with a token that may read attendees only (403); "
    "`usetix_write` = a write token's check-in and undo over a pool of attendees (201/204); "
    "`usetix_pg` and `usetix_pg_write` = the authenticated read (ok), the unknown token (reject) and the write "
    "path on PostgreSQL; "
    "`usetix_logged` = the authenticated path with the app's request log on (its default; off "
    "everywhere else, as the peers log nothing per request)"
)


PG_LEGEND = (
    "PostgreSQL: `<peer>_pg` rows are the harness's PostgreSQL peers (its `--db both`) on a scratch database of "
    "its own, `usetix_pg` rows our app on its scratch database, both on the `--postgres` server. In those rows "
    "\"vs flask_baseline\" and \"vs ceiling\" are ratios to flask_baseline_pg and ceiling_pg of the same run, and "
    "\"CPU % server\" includes the PostgreSQL backends serving that database; \"PostgreSQL vs SQLite\" compares "
    "each with its SQLite twin.\n"
)


def without_passwords(argv: list[str]) -> list[str]:
    """The command line as the report shows it: a database URL's password masked."""
    import sqlalchemy as sa

    shown = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        url = value if eq and name == "--postgres" else arg
        if "://" in url:
            masked = sa.engine.make_url(url).render_as_string(hide_password=True)
            arg = f"{name}={masked}" if url is value else masked
        shown.append(arg)
    return shown


def app_versions() -> dict[str, str]:
    """Our Python and packages, as the app's interpreter sees them."""
    completed = subprocess.run([sys.executable, "-c", (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"for p in {APP_PACKAGES!r}:\n"
        "    try:\n"
        "        out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError:\n"
        "        out[p] = 'not installed'\n"
        "print(json.dumps(out))")], capture_output=True, text=True, timeout=60)
    return json.loads(completed.stdout) if completed.returncode == 0 else {}


def run_metadata(harness: ModuleType, options: Any, wrk_path: str, peers_python: str | None,
                 app_argv: list[str]) -> dict:
    """What the report's header says about the run (the harness's ``meta`` plus our app's)."""
    versions = harness.collect_versions(peers_python, wrk_path)
    ours = app_versions()
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": versions, "app_versions": ours, "machine": harness.machine_info(),
        "path": "/admin/events", "threads": options.threads, "connections": options.connections,
        "duration": options.duration, "warmup": options.warmup, "rounds": options.rounds, "tally": True,
        "max_busy": options.max_busy, "quiet_wait": options.quiet_wait,
        "server_desc": (f"peers and {APP} under gunicorn --workers {options.workers} --worker-class sync, "
                        f"127.0.0.1 only; {APP}: `gunicorn {' '.join(app_argv[1:])}`"
                        f" with the API rate limits raised to {RAISED_LIMIT}"),
        "dataset": (f"peers: 200 accounts x 25 events (seed 1), token of account 1; {APP}: bench/seed.py "
                    "(1 account, 25 events, 1 read token, a write token, 400 attendees), SQLite WAL, synchronous "
                    f"{options.sqlite_synchronous or 'NORMAL (the default)'}"
                    + (", and the same on a scratch PostgreSQL database (the harness's PostgreSQL peers: their own)"
                       if options.postgres else "")),
        "command": " ".join(shlex.quote(x) for x in ["bench/run.py", *without_passwords(sys.argv[1:])]),
        "idle_busy_pct": harness.idle_check(),
    }
    harness.log(f"versions: {versions}; app: {ours}")
    return meta


class Report:
    """The markdown report of one run's measurements (``results``: the :class:`harness.LoadRunner`'s)."""

    def __init__(self, harness: ModuleType, results: dict, failures: list[str], twin_pairs: list, options: Any):
        self.harness = harness
        self.results = results
        self.failures = failures
        self.twin_pairs = twin_pairs
        self.options = options

    def render(self, meta: dict, statements: dict[str, list[str]], round_trips: dict[str, int],
               memory: dict | None, writes: list[list[str]]) -> str:
        harness = self.harness
        names, on_postgres, db_pairs = table_rows(self.results, harness.PEERS, harness.PG_PEERS)
        ref_map = {n: {"flask_baseline": "flask_baseline_pg", "ceiling": "ceiling_pg"} for n in on_postgres}
        out = [harness.render_header(meta)]
        out.append(f"App versions: {', '.join(f'{k} {v}' for k, v in meta['app_versions'].items())}  ")
        out.append(PATHS_LINE + ("; `usetix_before` = the tree given with --before" if self.options.before else "")
                   + ".\n")
        out.append(self.targets_table(statements, round_trips, memory, writes))
        if on_postgres:
            out.append(PG_LEGEND)
        out.append(harness.render(self.results, names, meta, self.failures, ref_map, db_pairs))
        if any(n in self.results for n in PG_PEER_REFERENCES):
            out.append(self.postgres_ratios())
        out.append(self.checks(statements, round_trips, memory, writes))
        return "\n".join(out)

    def runs(self, name: str, kind: str) -> list[dict]:
        return self.results.get(name, {}).get(kind, [])

    def median(self, name: str, kind: str) -> float | None:
        runs = self.runs(name, kind)
        return statistics.median(r["rps"] for r in runs) if runs else None

    def median_p99_ms(self, name: str, kind: str) -> float | None:
        runs = self.runs(name, kind)
        return statistics.median(r["latency_us"]["p99"] for r in runs) / 1000 if runs else None

    def ratio(self, name: str, kind: str, reference: str, reference_kind: str) -> float | None:
        value, base = self.median(name, kind), self.median(reference, reference_kind)
        return value / base if value and base else None

    def targets_table(self, statements: dict[str, list[str]], round_trips: dict[str, int], memory: dict | None,
                      writes: list[list[str]]) -> str:
        non2xx = sum(n for r in self.runs(APP, "ok") for s, n in r["statuses"].items() if not 200 <= s < 300)
        p99 = self.median_p99_ms(APP, "ok")
        gap = closest_token_writes(writes)
        growth = rss_growth_pct(memory) if memory else None

        lines = ["### Targets (medians of this run)\n", "| target | measured | needed | met |", "|---|---:|---:|---|"]
        ratio_targets = RATIO_TARGETS + (PG_RATIO_TARGETS if self.options.postgres else [])
        for label, name, kind, reference, reference_kind, needed in ratio_targets:
            value = self.ratio(name, kind, reference, reference_kind)
            shown = "n/a (no peers)" if value is None else f"{value:.2f}x"
            met = "n/a" if value is None else ("yes" if value >= needed else "NO")
            lines.append(f"| {label} | {shown} | ≥ {needed}x | {met} |")
        malformed = statements.get("malformed", [])
        lines.append(f"| malformed token: SQL statements | {len(malformed)} | 0 | {'yes' if not malformed else 'NO'} |")
        authenticated = len(statements.get("auth", []))
        lines.append(f"| authenticated list: SQL statements | {authenticated} | ≤ 2 | "
                     f"{'yes' if authenticated <= 2 else 'NO'} |")
        if round_trips:
            trips = round_trips["auth"]
            lines.append(f"| PostgreSQL: round trips per authenticated list | {trips} | ≤ {MAX_PG_ROUND_TRIPS} | "
                         f"{'yes' if trips <= MAX_PG_ROUND_TRIPS else 'NO'} |")
        written = len(token_updates(writes, changed=True))
        shown_gap = "-" if gap is None else f"{gap:.0f} s"
        lines.append(f"| last_used_at writes (UPDATEs that changed the row), closest two apart | {written}, "
                     f"{shown_gap} | ≥ {LAST_USED_MIN_GAP_S} s | "
                     f"{'yes' if gap is None or gap >= LAST_USED_MIN_GAP_S else 'NO'} |")
        lines.append(f"| non-2xx on the authenticated path | {non2xx} | 0 | {'yes' if non2xx == 0 else 'NO'} |")
        lines.append(f"| authenticated p99 (median of rounds) | {'-' if p99 is None else f'{p99:.2f} ms'} "
                     "| reported | yes |")
        lines += self.write_rows("", APP + "_write")
        lines += self.door_rows("", APP + "_redeem", APP + "_batch", statements)
        if self.options.postgres:
            lines += self.write_rows("PostgreSQL: ", PG_PATHS["write"])
            lines += self.door_rows("PostgreSQL: ", PG_PATHS["redeem"], PG_PATHS["batch"], {})
        lines.append(f"| worker RSS growth, 1k → {memory['requests'] // 1000 if memory else '-'}k requests | "
                     f"{'-' if growth is None else f'{growth:+.1f} %'} | ≤ +{MAX_RSS_GROWTH_PCT} % | "
                     f"{'yes' if growth is not None and growth <= MAX_RSS_GROWTH_PCT else 'NO'} |")
        lines.append("")
        return "\n".join(lines)

    def postgres_ratios(self) -> str:
        """Our PostgreSQL rows against each PostgreSQL peer: medians, and per round."""
        lines = ["### PostgreSQL: our rows against the PostgreSQL peers (same rounds)\n",
                 "| app | path | req/s (median) | " + " | ".join(f"vs {ref}" for ref in PG_PEER_REFERENCES)
                 + " | per round (" + ", ".join(PG_PEER_REFERENCES) + ") |",
                 "|---|---|---:|" + "---:|" * len(PG_PEER_REFERENCES) + "---|"]
        for name in (ON_POSTGRES, PG_PATHS["write"]):
            for kind in ("ok", "reject"):
                value = self.median(name, kind)
                if value is None:
                    continue
                reference_kind = "ok" if name == PG_PATHS["write"] else kind
                ratios = [self.ratio(name, kind, ref, reference_kind) for ref in PG_PEER_REFERENCES]
                per_round = []
                for run in self.runs(name, kind):
                    refs = [next((r["rps"] for r in self.runs(ref, reference_kind) if r["round"] == run["round"]), None)
                            for ref in PG_PEER_REFERENCES]
                    per_round.append("/".join("-" if not x else f"{run['rps'] / x:.2f}" for x in refs))
                lines.append(f"| {name} | {kind} | {value:.0f} | "
                             + " | ".join("n/a" if x is None else f"{x:.2f}x" for x in ratios)
                             + f" | {', '.join(per_round)} |")
        lines.append("")
        return "\n".join(lines)

    def write_rows(self, prefix: str, name: str) -> list[str]:
        """A write path's rows of the targets table: its p99 (median of rounds), and its
        statuses of all rounds, of which none may be other than 201, 204 and the expected 409."""
        statuses: dict[int, int] = {}
        for r in self.runs(name, "ok"):
            for status, count in r["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
        other = sum(n for status, n in statuses.items() if status not in (201, 204, 409))
        p99 = self.median_p99_ms(name, "ok")
        return [f"| {prefix}write path p99 (median of rounds) | {'-' if p99 is None else f'{p99:.2f} ms'} "
                "| reported | yes |",
                f"| {prefix}write path statuses other than 201, 204 and 409 (all: {dict(sorted(statuses.items()))}) "
                f"| {other} | 0 | {'yes' if other == 0 else 'NO'} |"]

    def door_rows(self, prefix: str, redeem: str, batch: str, statements: dict[str, list[str]]) -> list[str]:
        """The door's rows: the redeem's and the batch's p99, the batch's scans a second, and
        the SQL statements of one redeem (with its undo) and of one batch (in-process, SQLite)."""
        lines = []
        for label, name in (("redeem (admit/undo)", redeem), (f"{BATCH_SCANS}-scan batch", batch)):
            p99 = self.median_p99_ms(name, "ok")
            lines.append(f"| {prefix}door: {label} p99 (median of rounds) | "
                         f"{'-' if p99 is None else f'{p99:.2f} ms'} | reported | yes |")
        rate = self.median(batch, "ok")
        lines.append(f"| {prefix}door: batch scans a second (median) | "
                     f"{'-' if rate is None else f'{rate * BATCH_SCANS:.0f}'} | reported | yes |")
        for name in ("redeem", "batch"):
            if name in statements:
                lines.append(f"| door: SQL statements per {name} (in-process) | {len(statements[name])} | reported "
                             "| yes |")
        return lines

    def checks(self, statements: dict[str, list[str]], round_trips: dict[str, int], memory: dict | None,
               writes: list[list[str]]) -> str:
        lines = ["### SQL statements per request (steady state, in-process)\n", "| path | statements |", "|---|---|"]
        for name, seen in statements.items():
            shown = "<br>".join(f"`{s[:110]}{'…' if len(s) > 110 else ''}`" for s in seen) or "none"
            lines.append(f"| {name} | {len(seen)}: {shown} |")
        if round_trips:
            lines += ["", "### Round trips to PostgreSQL per request (steady state, in-process, libpq's trace)\n",
                      "| path | round trips |", "|---|---:|"]
            lines += [f"| {ROUND_TRIP_LABELS.get(name, name)} | {count} |" for name, count in round_trips.items()]
        updates = token_updates(writes)
        lost = token_updates(writes, changed=False)
        other = [w for w in writes if w not in updates]
        lines += ["", "### last_used_at writes\n",
                  f"{len(updates)} `UPDATE api_tokens SET last_used_at` statement(s) in the memory check's "
                  f"{memory['seconds'] / 60 if memory else 0:.1f} min of authenticated load, at "
                  + (", ".join(f"{time.strftime('%H:%M:%S', time.gmtime(float(w[1])))} (pid {w[0]}, {w[2]} row)"
                               for w in updates) or "-")
                  + f" UTC. {len(lost)} of them changed no row: the UPDATE is conditional, so when both workers "
                  "find the value a minute old at once, one writes and the other's UPDATE matches nothing. "
                  f"Other writes: {len(other)}.", ""]
        if not memory:
            return "\n".join([*lines, "(memory check not run)\n"])
        lines += ["### Worker memory (authenticated path)\n", "| worker | RSS after 1k | RSS after "
                  f"{memory['requests']} | change |", "|---|---:|---:|---:|"]
        for pid, before in sorted(memory["rss_1k_kib"].items()):
            after = memory["rss_end_kib"].get(pid)
            change = "-" if after is None else f"{100.0 * (after - before) / before:+.1f} %"
            lines.append(f"| pid {pid} | {before / 1024:.1f} MiB | "
                         f"{'gone' if after is None else f'{after / 1024:.1f} MiB'} | {change} |")
        lines.append(f"\nStatuses during the memory check: {dict(sorted(memory['statuses'].items()))}\n")
        if self.twin_pairs:
            lines.append("Authenticated / twin per round: "
                         + ", ".join(f"round {r}: {x / y:.2f}" for r, x, y in self.twin_pairs) + "\n")
        return "\n".join(lines)


def table_rows(results: dict, peers: list[str],
               pg_peers: list[str]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The apps of the harness's tables, in order, each once: every app measured (the peers,
    then ours), those of them on PostgreSQL, and the (SQLite, PostgreSQL) pairs of the
    "PostgreSQL vs SQLite" table. Our PostgreSQL paths share a name (``usetix_pg`` is both
    the read and the unknown token), and ``usetix_pg`` is also a peer-style ``_pg`` name:
    each app and pair is listed once however many ways lead to it."""
    candidates = [*peers, *(name + PG_SUFFIX for name in pg_peers), *TABLE_NAMES]
    names = [n for n in dict.fromkeys(candidates) if n in results]
    # PostgreSQL rows (the peers' and ours) against the PostgreSQL peers, as the harness's --db both reports them
    on_postgres = [n for n in names if n.endswith(PG_SUFFIX) or n.startswith(ON_POSTGRES)]
    pairs = [(n.removesuffix(PG_SUFFIX), n) for n in on_postgres if n.endswith(PG_SUFFIX)]
    pairs += [(APP, ON_POSTGRES), (APP + "_write", PG_PATHS["write"])]
    db_pairs = [(lite, pg) for lite, pg in dict.fromkeys(pairs) if lite in results and pg in results]
    return names, on_postgres, db_pairs


def token_updates(writes: list[list[str]], changed: bool | None = None) -> list[list[str]]:
    """last_used_at UPDATEs (pid, time, rows changed, statement) of bench/twin.py's write log:
    all, or those that did (not) change a row."""
    updates = [w for w in writes if len(w) == 4 and w[3].startswith("UPDATE api_tokens SET last_used_at")]
    return updates if changed is None else [w for w in updates if (int(w[2]) > 0) == changed]


def closest_token_writes(writes: list[list[str]]) -> float | None:
    """Seconds between the closest two last_used_at values written (the UPDATE's first
    parameter, as the database stores it; the log's own clock runs a moment later)."""
    times = sorted(dt.datetime.fromisoformat(json.loads(w[3].partition("\t")[2])[0]).timestamp()
                   for w in token_updates(writes, changed=True))
    return min((b - a for a, b in itertools.pairwise(times)), default=None)


def rss_growth_pct(memory: dict) -> float | None:
    """The largest growth of a worker's RSS from 1k requests to the end, in per cent."""
    before, after = memory["rss_1k_kib"], memory["rss_end_kib"]
    pids = [pid for pid in before if pid in after]
    if not pids:
        return None
    return max(100.0 * (after[pid] - before[pid]) / before[pid] for pid in pids)


# -- the scale bench (bench/scale.py, --scale) ------------------------------------------------

SCALE_MAX_RATIO = 1.5  # issue 27: a rel="next" page at any depth, and a sync of 100, vs an event of 1,000
AUDIT_LOG_MAX_MS = 50.0  # issue 27: the dashboard's audit log at 1,000,000 records


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _met(value: float | None, limit: float) -> str:
    return "n/a" if value is None else ("yes" if value <= limit else "NO")


def render_scale(results: list[dict], failures: list[str], options: Any) -> str:
    """The scale bench's report: per database, the lists by size, the targets, the audit log,
    the plans and the checks."""
    out = ["## Scale: lists, sync and the audit log at size (issue 27)\n",
           f"Run {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}: "
           f"`{' '.join(shlex.quote(x) for x in ['bench/run.py', *without_passwords(sys.argv[1:])])}`. "
           f"gunicorn, the repository's gunicorn.conf.py, {options.workers} sync workers; each figure the median of "
           f"{options.scale_requests} sequential requests, `per_page=100`. Events grown in SQL as the API writes "
           "attendees (bench/scale.py says how; PostgreSQL VACUUM ANALYZEd). A rel=\"next\" page at a depth is the "
           "URL the whole walk followed to that page, asked again. A sync is every page of `?updated_since=` a "
           "moment before 100 changed rows (or of `?cursor=<sync_cursor>` after 100 more), summed.\n"]
    for result in results:
        out += _scale_kind(result)
    if failures:
        out += ["### Failures\n", *[f"- {f}" for f in failures], ""]
    return "\n".join(out)


def _scale_kind(result: dict) -> list[str]:
    events = result["events"]
    kind = result["kind"]
    out = [f"### {kind}\n"]
    if not events:
        return [*out, "(nothing measured)\n"]
    links = sorted({e["link_kind"] for e in events})
    out.append(f"rel=\"next\" links carried: {', '.join(links)}.\n")
    out += ["| attendees | first page (meta.total) | rel=next page 2 | middle | deep | `page=N` middle | "
            "`page=N` last | sync of 100, `updated_since` | sync of 100, `sync_cursor` | whole walk by Link |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for e in events:
        nexts = e["next_ms"]
        deep = nexts.get("deep")
        walk = e["walk"]
        cursor_sync = e["sync"].get("sync_cursor")
        cursor_shown = "-" if not cursor_sync else f"{_ms(cursor_sync['ms'])} ({cursor_sync['pages']} p.)"
        deep_shown = "-" if deep is None else _ms(deep["ms"]) + ("" if not walk["cut"] else f" (page {deep['page']})")
        out.append(
            f"| {e['size']:,} | {_ms(e['first_ms'])} ({e['first_total']}) | {_ms(nexts.get('shallow', {}).get('ms'))} "
            f"| {_ms(nexts.get('middle', {}).get('ms'))} | {deep_shown} | {_ms(e['page_n_ms']['middle'])} | "
            f"{_ms(e['page_n_ms']['end'])} | {_ms(e['sync']['updated_since']['ms'])} "
            f"({e['sync']['updated_since']['pages']} p.) | "
            f"{cursor_shown} | "
            f"{walk['pages']:,} pages, {walk['seconds']:.1f} s ({1000 * walk['seconds'] / walk['pages']:.1f} ms a page)"
            f"{' (cut short by --scale-walk-seconds)' if walk['cut'] else ''} |")
    reference = events[0]
    # Its middle rel="next" page; an event of one page has only its first, the deep one.
    ref_page = (reference["next_ms"].get("middle") or reference["next_ms"].get("deep") or {}).get("ms")
    out += ["", f"#### Targets ({kind}; reference: the event of {reference['size']:,}, its middle rel=\"next\" page "
                f"{_ms(ref_page)} and its syncs)\n",
            "| target | measured | needed | met |", "|---|---:|---:|---|"]
    for e in events[1:]:
        for name in ("shallow", "middle", "deep"):
            got = e["next_ms"].get(name, {}).get("ms")
            value = got / ref_page if got and ref_page else None
            out.append(f"| {e['size']:,}: rel=\"next\" page ({name}) vs {reference['size']:,} | "
                       f"{'-' if value is None else f'{value:.2f}x'} | ≤ {SCALE_MAX_RATIO}x | "
                       f"{_met(value, SCALE_MAX_RATIO)} |")
        for flavour in ("updated_since", "sync_cursor"):
            got, ref = e["sync"].get(flavour, {}).get("ms"), reference["sync"].get(flavour, {}).get("ms")
            value = got / ref if got and ref else None
            out.append(f"| {e['size']:,}: sync of 100 changes ({flavour}) vs {reference['size']:,} | "
                       f"{'-' if value is None else f'{value:.2f}x'} | ≤ {SCALE_MAX_RATIO}x | "
                       f"{_met(value, SCALE_MAX_RATIO)} |")
    for e in events:
        walk = e["walk"]
        shown = f"{walk['rows']:,} rows, {walk['distinct']:,} distinct"
        out.append(f"| {e['size']:,}: whole walk sees every row once | {shown} | {e['size']:,} | "
                   f"{'yes' if walk['complete'] else 'NO' if not walk['cut'] else 'n/a (cut short)'} |")
        for flavour, sync in e["sync"].items():
            out.append(f"| {e['size']:,}: sync ({flavour}) lists the 100 changed rows | {sync['rows']} rows | "
                       f"all 100 | {'yes' if sync['all_changes_seen'] else 'NO'} |")
    audit = result.get("audit")
    if audit:
        out += ["", f"#### Dashboard audit log ({kind}, {audit['records']:,} records)\n",
                "| page | median | needed | met |", "|---|---:|---:|---|"]
        for label, key in (("newest page", "newest_ms"), ("its Older page", "older_ms"),
                           ("a deep page (the oldest but one)", "deep_ms"),
                           ("newest, filtered by action", "filtered_ms")):
            out.append(f"| {label} | {_ms(audit[key])} | < {AUDIT_LOG_MAX_MS:.0f} ms | "
                       f"{_met(audit[key], AUDIT_LOG_MAX_MS)} |")
    if result.get("plans"):
        out += ["", f"#### Plans ({kind}; the largest event; bench/scale_plans.py)\n",
                "| request | statement | indexes | whole scans | most rows one scan read |", "|---|---|---|---|---:|"]
        for name, statements in result["plans"].items():
            for s in statements:
                statement = s["statement"].replace("|", "\\|")
                out.append(f"| {name} | `{statement[:90]}…` | {', '.join(s['indexes']) or 'none'} | "
                           f"{', '.join(s['whole_table_scans']) or 'none'} | {s.get('most_rows_one_scan_read', '-')} |")
    elif result.get("plans_error"):
        out.append(f"\nPlans: not available ({result['plans_error'][-200:]})")
    grown = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["grow_seconds"].items())
    out += ["", f"Growing the data: {grown}.\n"]
    return out


def render_soak(soak: dict) -> str:
    """The soak's section (bench/soak.py): each load phase, the first against the last, and
    what the clients saw when a worker was killed and PostgreSQL restarted under load."""
    phases = soak["phases"]
    lines = ["### Soak on PostgreSQL as shipped (bench/soak.py)\n",
             f"gunicorn.conf.py's defaults ({soak['workers']} workers), a throwaway PostgreSQL "
             f"{soak['postgresql']} cluster; mixed load from wrk (bench/soak.lua): the first page of "
             f"`{soak['event']}/attendees` and of `/admin/events`, one attendee, ~15 % new attendees in that "
             f"event, unknown tokens; {soak['phase_seconds']} s per phase.\n",
             "| phase | req/s | p50 ms | p99 ms | workers' RSS max / total MiB | attendees in the event | statuses "
             "| CPU % server / wrk / other |",
             "|---:|---:|---:|---:|---:|---:|---|---|"]
    for p in phases:
        lines.append(f"| {p['phase']} | {p['rps']:.0f} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | "
                     f"{p['rss']['max_kib'] / 1024:.1f} / {p['rss']['total_kib'] / 1024:.1f} | "
                     f"{p['attendees_in_event']} | {_counts(p['statuses'])} | "
                     f"{p['cpu_server_pct']} / {p['cpu_wrk_pct']} / {p['cpu_other_pct']} |")
    if len(phases) >= 2:
        first, last = phases[0], phases[-1]

        def change(a: float, b: float) -> str:
            return f"{100.0 * (b - a) / a:+.0f} %" if a else "n/a"

        lines += ["", f"First phase to last: throughput {change(first['rps'], last['rps'])}, "
                      f"p99 {change(first['p99_ms'], last['p99_ms'])}, workers' RSS (max) "
                      f"{change(first['rss']['max_kib'], last['rss']['max_kib'])}, while the event grew from "
                      f"{first['attendees_in_event']} to {last['attendees_in_event']} attendees "
                      "(issue 27's target: flat within 10 % once a page costs the same at any depth)."]
    faults = soak.get("faults")
    if faults:
        happened = ", ".join(f"{name} at {at} s" if not name.endswith("took") else f"{name} {at} s"
                             for name, at in faults["happened"].items())
        lines += ["", f"**Faults under load** ({faults['seconds']} s, {faults['requests']} requests from a "
                      f"recording client; {happened}). What the clients saw:\n",
                  "| | answers |", "|---|---|"]
        for method, counts in faults["by_method"].items():
            lines.append(f"| {method} | {_counts(counts)} |")
        for moment, counts in faults["by_moment"].items():
            lines.append(f"| {moment[2:]} | {_counts(counts)} |")
        c = faults["creations"]
        lines += ["", f"Creations: {c['creations']} POSTs, {c['201']} answered 201, {c['rows']} rows of the run. "
                      f"201 without its row: {c['201_without_row_count']}; rows without their 201: "
                      f"{c['row_without_201']} {c['row_without_201_by_answer'] or ''} (allowed only behind "
                      f"`no answer` or `500 outcome_unknown`; unexplained: {len(c['row_without_201_unexplained'])}). "
                      f"503 answers without Retry-After: {faults['503_without_retry_after']}. "
                      f"**{'OK' if c['ok'] and not faults['503_without_retry_after'] else 'FAILED'}**."]
    return "\n".join(lines)


def _counts(counts: dict) -> str:
    return ", ".join(f"{label}: {n}" for label, n in sorted(counts.items(), key=lambda item: -item[1]))
