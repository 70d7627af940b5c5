"""bench/report.py lists each app once in the harness's tables (a run with --postgres
listed ``usetix_pg`` twice per round and ``usetix`` three times against PostgreSQL)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
PEERS = ["ceiling", "ceiling_static", "drf", "flask_baseline"]
PG_PEERS = ["ceiling", "drf", "flask_baseline"]


@pytest.fixture
def report():
    """bench/report.py, imported as bench/run.py imports it (bench/ on the path)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("report")
    finally:
        sys.path.remove(str(BENCH))


def test_a_postgres_run_lists_each_app_and_pair_once(report):
    measured = [*PEERS, "ceiling_pg", "drf_pg", "flask_baseline_pg", "usetix", "usetix_twin", "usetix_malformed",
                "usetix_post", "usetix_write", "usetix_pg", "usetix_pg_write", "usetix_logged"]
    results = {name: {"ok": [{"rps": 1.0}]} for name in measured}

    names, on_postgres, db_pairs = report.table_rows(results, PEERS, PG_PEERS)

    assert names == measured
    assert on_postgres == ["ceiling_pg", "drf_pg", "flask_baseline_pg", "usetix_pg", "usetix_pg_write"]
    assert db_pairs == [("ceiling", "ceiling_pg"), ("drf", "drf_pg"), ("flask_baseline", "flask_baseline_pg"),
                        ("usetix", "usetix_pg"), ("usetix_write", "usetix_pg_write")]


def test_a_run_without_postgres_has_no_pairs(report):
    results = {name: {"ok": [{"rps": 1.0}]} for name in [*PEERS, "usetix", "usetix_twin"]}

    names, on_postgres, db_pairs = report.table_rows(results, PEERS, PG_PEERS)

    assert names == [*PEERS, "usetix", "usetix_twin"]
    assert on_postgres == []
    assert db_pairs == []
