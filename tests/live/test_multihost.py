"""Several hosts, several workers: two real gunicorn servers ("host A" and "host B", two
workers each) on one database, as app hosts behind a load balancer.

On PostgreSQL when USETIX_TEST_DATABASE_URL is set (a schema of this module's own in that
database), else on one shared SQLite file, so a plain ``make test`` runs these too. The
schema is made by the migrations, as ``usetix init-db`` does in production.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests
from flask_migrate import upgrade

from usetix import create_app
from usetix.database.engine import db

from ..databases import database_kind, scratch_database
from ..helpers import (
    NONCE_FIELD,
    PASSWORD,
    TOKEN_VALUE,
    csrf_token_from,
    make_org,
    make_test_config,
    wait_until,
)
from ..servers import gunicorn

pytestmark = pytest.mark.gunicorn

COOKIE = "usetix_session"
TIMEOUT = 10  # seconds, for every HTTP request


@dataclass
class Host:
    name: str
    base: str
    log: object  # pathlib.Path


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    """Hosts A and B on one fresh database holding Acme Events and its admin."""
    directory = tmp_path_factory.mktemp("multihost")
    with scratch_database(directory, "multihost") as url:
        app = create_app({**make_test_config(directory), "DATABASE_URL": url})
        with app.app_context():
            upgrade()
            make_org("Acme Events", "admin@acme.example", events=12)
            db.session.remove()  # give its connection back first, so dispose() closes it
            db.engine.dispose()
        # The load test fails authentication on purpose, many times, from one address, and
        # reads hard with few tokens: lift the rate limits (memory storage, per worker).
        limits = {"API_RATE_LIMIT": "1000000 per minute", "API_FAILED_AUTH_LIMIT": "1000000 per minute"}
        with gunicorn(url, workers=2, log_path=directory / "a.log", **limits) as base_a, \
                gunicorn(url, workers=2, log_path=directory / "b.log", **limits) as base_b:
            yield Host("A", base_a, directory / "a.log"), Host("B", base_b, directory / "b.log")


class Dashboard:
    """An admin's browser, over plain HTTP with the real forms. Its cookie jar sends the
    session cookie to both hosts (cookies ignore the port), as a load balancer's one
    public name would."""

    def __init__(self, email: str = "admin@acme.example"):
        self.email = email
        self.http = requests.Session()

    def login(self, host: Host) -> None:
        page = self.http.get(host.base + "/login", timeout=TIMEOUT)
        response = self.http.post(host.base + "/login", data={
            "email": self.email, "password": PASSWORD, "csrf_token": csrf_token_from(page.text),
        }, allow_redirects=False, timeout=TIMEOUT)
        assert response.status_code == 302, response.text

    def session_id(self) -> str:
        return self.http.cookies[COOKIE]

    def create_token(self, form_host: Host, post_host: Host | None = None, tier: str = "read") -> tuple[int, str]:
        """Settings → API Tokens → Create Token; the new token's id and value."""
        form = self.http.get(form_host.base + "/admin/settings/api_tokens/new", timeout=TIMEOUT)
        assert form.status_code == 200
        response = self.http.post((post_host or form_host).base + "/admin/settings/api_tokens", data={
            "description": "multihost", "tier": tier,
            "csrf_token": csrf_token_from(form.text), "nonce": NONCE_FIELD.search(form.text).group(1),
        }, allow_redirects=False, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        raw = TOKEN_VALUE.search(response.text).group(1)
        account = api_get(form_host, "/admin/account", raw)
        assert account.status_code == 200
        return account.json()["data"]["token"]["id"], raw

    def revoke(self, host: Host, token_id: int) -> None:
        """Revoke; returns once the server has answered, so after the revocation committed."""
        page = self.http.get(host.base + "/admin/settings/api_tokens", timeout=TIMEOUT)
        response = self.http.post(f"{host.base}/admin/settings/api_tokens/{token_id}/revoke",
                                  data={"csrf_token": csrf_token_from(page.text), "confirm": "yes"},
                                  allow_redirects=False,
                                  timeout=TIMEOUT)
        assert response.status_code == 302 and response.headers["Location"] == "/admin/settings/api_tokens"

    def logout(self, host: Host) -> None:
        page = self.http.get(host.base + "/admin/events", timeout=TIMEOUT)
        response = self.http.post(host.base + "/logout", data={"csrf_token": csrf_token_from(page.text)},
                                  allow_redirects=False, timeout=TIMEOUT)
        assert response.status_code == 302


def api_get(host: Host, path: str, token: str, http=requests) -> requests.Response:
    return http.get(host.base + path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    timeout=TIMEOUT)


def dashboard_with_cookie(host: Host, session_id: str) -> requests.Response:
    """GET the events page on ``host`` with exactly this session cookie (a fresh browser)."""
    return requests.get(host.base + "/admin/events", cookies={COOKIE: session_id}, allow_redirects=False,
                        timeout=TIMEOUT)


def test_tokens_revocations_and_sessions_hold_across_hosts(hosts):
    a, b = hosts
    admin = Dashboard()

    # A login made on A is valid on B.
    admin.login(a)
    sid = admin.session_id()
    on_b = dashboard_with_cookie(b, sid)
    assert on_b.status_code == 200 and "Acme Events event 0" in on_b.text

    # A token created through A's dashboard works on B.
    token_id, raw = admin.create_token(a)
    response = api_get(b, "/admin/account", raw)
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Acme Events"
    assert response.json()["data"]["token"]["id"] == token_id
    assert api_get(b, "/admin/events?per_page=5", raw).json()["meta"]["total"] == 12

    # A form fetched from one host may be posted to the other (round-robin balancing).
    _, crossed = admin.create_token(a, post_host=b)
    assert api_get(a, "/admin/account", crossed).status_code == 200

    # After a revoke through A, the very next request to B is 401.
    admin.revoke(a, token_id)
    response = api_get(b, "/admin/account", raw)
    assert response.status_code == 401
    assert response.json()["error"] == "revoked_token"
    assert api_get(a, "/admin/account", raw).status_code == 401
    assert api_get(b, "/admin/account", crossed).status_code == 200  # the other token lives on

    # A logout on A ends the session on B.
    assert dashboard_with_cookie(b, sid).status_code == 200
    admin.logout(a)
    response = dashboard_with_cookie(b, sid)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert dashboard_with_cookie(a, sid).status_code == 302


# --- Under load --------------------------------------------------------------------------

READERS = 16
MAX_REQUESTS_PER_READER = 200
WRITER_ROUNDS = 6
HARD_DEADLINE = 60  # seconds: the test fails rather than hangs
PATHS = ("/admin/events?per_page=5", "/admin/account")


@dataclass
class Token:
    id: int
    raw: str
    revoke_started: float | None = None  # time.monotonic(), before the revoke request was sent
    revoked: float | None = None  # after its answer came back: the revocation had committed


@dataclass
class Answer:
    token: Token
    host: str
    started: float
    finished: float
    status: int
    error: str | None
    body: str = field(repr=False)


def test_reading_under_load_while_tokens_come_and_go(hosts):
    """16 threads read the API through both hosts while an admin creates and revokes
    tokens: no 5xx, no "database is locked", every request that starts after a
    revocation committed is 401, and every request that ended before it began is 200."""
    a, b = hosts
    admin = Dashboard()
    admin.login(a)
    tokens = [Token(*admin.create_token(a)) for _ in range(3)]
    tokens_lock = threading.Lock()
    answers: list[Answer] = []
    failures: list[Exception] = []
    progress: list[None] = []  # one entry per answer, as they come (answers fill at the end)
    stop = threading.Event()
    deadline = time.monotonic() + HARD_DEADLINE

    def read(seed: int) -> None:
        rng = random.Random(seed)
        http = requests.Session()
        mine = []
        try:
            for n in range(MAX_REQUESTS_PER_READER):
                if stop.is_set() or time.monotonic() > deadline:
                    break
                with tokens_lock:
                    token = rng.choice(tokens)
                host = (a, b)[(seed + n) % 2]
                started = time.monotonic()
                response = api_get(host, PATHS[n % len(PATHS)], token.raw, http)
                finished = time.monotonic()
                error = response.json().get("error") if response.headers.get("Content-Type", "").startswith(
                    "application/json") else None
                mine.append(Answer(token, host.name, started, finished, response.status_code, error,
                                   response.text[:300]))
                progress.append(None)
        except (requests.RequestException, ValueError) as exc:  # no answer, or not JSON: reported below
            failures.append(exc)
        finally:
            http.close()
            answers.extend(mine)

    threads = [threading.Thread(target=read, args=(seed,), daemon=True) for seed in range(READERS)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(WRITER_ROUNDS):
            reads = len(progress)
            wait_until(lambda reads=reads: len(progress) >= reads + READERS, timeout=30,
                       message="reads before the next round")
            write_host, revoke_host = (a, b) if round_ % 2 == 0 else (b, a)
            new = Token(*admin.create_token(write_host))
            with tokens_lock:
                tokens.append(new)
                victim = next(t for t in tokens if t.revoke_started is None)
            victim.revoke_started = time.monotonic()
            admin.revoke(revoke_host, victim.id)
            victim.revoked = time.monotonic()
        reads = len(progress)  # readers keep going after the last revocation
        wait_until(lambda: len(progress) >= reads + READERS, timeout=30, message="reads after the last revocation")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a reader did not finish in time"
    assert not failures, failures

    server_errors = [x for x in answers if x.status >= 500]
    assert not server_errors, server_errors[:3]
    assert not [x for x in answers if "database is locked" in x.body]
    assert {x.status for x in answers} <= {200, 401}, {x.status for x in answers}

    after_revocation = [x for x in answers if x.token.revoked is not None and x.started > x.token.revoked]
    late = [x for x in after_revocation if x.status != 401 or x.error != "revoked_token"]
    assert not late, late[:3]
    before_revocation = [x for x in answers if x.token.revoke_started is None or x.finished < x.token.revoke_started]
    refused_early = [x for x in before_revocation if x.status != 200]
    assert not refused_early, refused_early[:3]

    # Enough traffic on both sides of the revocations for the above to mean something.
    assert len(answers) >= 300, len(answers)
    assert len(after_revocation) >= 30 and len(before_revocation) >= 100
    assert {x.host for x in after_revocation} == {"A", "B"}

    for host in (a, b):
        log = host.log.read_text()
        assert "database is locked" not in log
        assert "Traceback" not in log, f"host {host.name} logged an error ({database_kind()}):\n{log[-3000:]}"
        assert re.search(r"method=GET path=/admin/account status=401 duration_ms=[\d.]+ account=- token=-", log)
