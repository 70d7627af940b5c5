"""The leak kill-switch against real gunicorn with several workers: a reported token is 401
on the next request on every worker, a flood of 1,000 values changes nothing and stays
fast, and the limit per address holds across workers when the limits live in Redis."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from usetix.core import token_format

from ..dashboard_client import Dashboard
from ..databases import REDIS_URL, redis_client_or_skip, scratch_database
from ..helpers import PASSWORD, wait_until
from ..servers import HeldRequest, gunicorn, prepare_database

pytestmark = pytest.mark.gunicorn

WORKERS = 3
ACCESS_LOG_FORMAT = "worker=%(p)s %(m)s %(U)s %(s)s"
ACCESS_LINE = re.compile(r"worker=<(\d+)> (\S+) (\S+) (\d{3})$", re.MULTILINE)
URL = "/admin/credentials/revoke"


def api(base: str, method: str, path: str, token: str) -> requests.Response:
    return requests.request(method, base + path, headers={"Accept": "application/json",
                                                          "Authorization": f"Bearer {token}"}, timeout=10)


def probe_every_worker(base: str, log: Path, token: str, status: int) -> set[int]:
    """HEAD /admin/account with ``token`` until every worker has answered; every answer
    must be ``status``. Returns the workers' pids (from the access log)."""
    mark = log.stat().st_size
    sent = 0

    def answered() -> list[tuple[int, int]]:
        text = log.read_bytes()[mark:].decode()
        return [(int(pid), int(code)) for pid, method, path, code in ACCESS_LINE.findall(text)
                if (method, path) == ("HEAD", "/admin/account")]

    # Several probes in flight, so an idle worker wakes for one (see test_api_gunicorn).
    with ThreadPoolExecutor(WORKERS) as pool:
        while True:
            for response in pool.map(lambda _: api(base, "HEAD", "/admin/account", token), range(WORKERS)):
                sent += 1
                assert response.status_code == status, sent
            if len({pid for pid, _ in answered()}) == WORKERS or sent >= 300:
                break
    # The access log's lines are written just after the answers.
    wait_until(lambda: len(answered()) >= sent, message=f"{sent} lines in the access log")
    assert {code for _, code in answered()} == {status}
    return {pid for pid, _ in answered()}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("leaks")
    with scratch_database(directory, "leaks") as url:
        prepare_database(url, PASSWORD)
        log = directory / "gunicorn.log"
        with gunicorn(url, workers=WORKERS, log_path=log,
                      extra_args=["--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT],
                      API_FAILED_AUTH_LIMIT="10000 per minute") as base:
            yield base, log


def test_a_reported_token_is_401_on_the_next_request_on_every_worker(server):
    base, log = server
    admin = Dashboard(base)
    token = admin.create_token("Leaked in a gist", "write")
    kept = admin.create_token("Not leaked", "read")
    before = probe_every_worker(base, log, token, 200)
    assert len(before) == WORKERS
    response = requests.post(base + URL, json={"credentials": [token]}, timeout=10)
    assert response.status_code == 202
    assert probe_every_worker(base, log, token, 401) == before
    assert api(base, "GET", "/admin/events", token).json()["error"] == "revoked_token"
    assert api(base, "GET", "/admin/events", kept).status_code == 200
    # The account's admin sees it on the next page.
    page = admin.page("/admin/events")
    assert 'id="leak-notice"' in page and "Leaked in a gist" in page
    assert "Revoked token: reported leaked" in admin.page("/admin/settings/audit_log")


@pytest.mark.parametrize("kind", ["well-formed", "bad checksum"])
def test_a_flood_of_1000_values_is_answered_and_changes_nothing(server, kind):
    base, _ = server
    admin = Dashboard(base, "admin@globex.example")
    token = admin.create_token("Globex sync")
    audit_before = re.findall(r'data-audit-id="(\d+)"', admin.page("/admin/settings/audit_log"))
    values = [token_format.generate() for _ in range(1000)]
    if kind == "bad checksum":
        values = [value[:-1] + ("A" if value[-1] != "A" else "B") for value in values]
    # What a flood costs (one batched query, none for bad checksums) is counted in
    # tests/app/test_leak_reports.py; its time, in the bench.
    for _ in range(3):
        response = requests.post(base + URL, json={"credentials": values}, timeout=10)
        assert response.status_code == 202
    assert api(base, "GET", "/admin/events", token).status_code == 200
    assert re.findall(r'data-audit-id="(\d+)"', admin.page("/admin/settings/audit_log")) == audit_before
    assert 'id="leak-notice"' not in admin.page("/admin/events")


@pytest.fixture
def redis_limits():
    """Redis for the limits, with no leak-report counter left from an earlier run. Skipped
    only where nothing asks for Redis: CI and a set USETIX_TEST_REDIS_URL make it a failure."""
    client = redis_client_or_skip()

    def clear():
        for key in client.scan_iter(match="*leak-report*"):
            client.delete(key)

    clear()
    yield
    clear()
    client.close()


@pytest.mark.parametrize("storage", ["redis", "database"])
def test_the_limit_per_address_is_shared_by_every_worker(tmp_path, request, storage):
    """With Redis, and without (the default: the database's rate_limit_counters)."""
    if storage == "redis":
        request.getfixturevalue("redis_limits")
    settings = {"RATELIMIT_STORAGE_URL": REDIS_URL} if storage == "redis" else {}
    with scratch_database(tmp_path, "leaklimit") as url:
        prepare_database(url, PASSWORD)
        log = tmp_path / "gunicorn.log"
        with gunicorn(url, workers=WORKERS, log_path=log,
                      extra_args=["--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT],
                      LEAK_REPORT_RATE_LIMIT="6 per hour", **settings) as base:
            token = Dashboard(base).create_token("Reported too late")

            def report(values):
                return requests.post(base + URL, json={"credentials": values}, timeout=10)

            # Six reports on two workers at least, whatever the accept race: a report whose
            # headers are still coming keeps one sync worker busy, so the next five go to the
            # others; then it is finished, and its own worker answers it.
            held = HeldRequest(base, "POST", URL, {"Content-Type": "application/json", "Accept": "application/json"},
                               json.dumps({"credentials": [token_format.generate()]}).encode())
            answers = [report([token_format.generate()]).status_code for _ in range(5)]
            answers.append(held.finish())
            assert answers == [202] * 6
            refused = report([token])
            assert refused.status_code == 429
            assert refused.json()["error"] == "rate_limited"
            assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
            assert api(base, "GET", "/admin/events", token).status_code == 200  # the refused report did nothing
            workers = {int(pid) for pid, method, path, _ in ACCESS_LINE.findall(log.read_text())
                       if (method, path) == ("POST", URL)}
            assert len(workers) >= 2  # the count held across processes
