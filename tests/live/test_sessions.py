"""Server-side sessions on real gunicorn: a failing session store is our 503 page,
and a logout holds while a stolen cookie is kept busy."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
import requests
import sqlalchemy as sa

from usetix.database.models import ServerSession

from ..databases import scratch_database
from ..helpers import PASSWORD, csrf_token_from, free_port, wait_until
from ..servers import gunicorn, prepare_database

pytestmark = pytest.mark.gunicorn

COOKIE = "usetix_session"
REDIS_URL = os.environ.get("USETIX_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="USETIX_TEST_REDIS_URL is not set (CI sets it)")
REDIS_PREFIX = "usetix:session:"


def digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


# --- Under real gunicorn ------------------------------------------------------------------------

def log_in_over_http(http: requests.Session, base: str) -> requests.Response:
    page = http.get(base + "/login", timeout=10)
    form = {"email": "admin@acme.example", "password": PASSWORD, "csrf_token": csrf_token_from(page.text)}
    return http.post(base + "/login", data=form, allow_redirects=False, timeout=10)


def stored_under(url: str, store: str, sid: str) -> bool:
    """Whether the served app's store holds this cookie's record (read behind its back)."""
    if store == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            return bool(client.exists(REDIS_PREFIX + digest(sid)))
        finally:
            client.close()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.scalar(sa.select(sa.func.count()).select_from(ServerSession.__table__)
                               .where(ServerSession.__table__.c.key == digest(sid))) == 1
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def served_database(tmp_path_factory):
    """A database made by the CLI (schema and demo data), for the gunicorn tests."""
    directory = tmp_path_factory.mktemp("sessions")
    with scratch_database(directory, "sessions") as url:
        prepare_database(url, PASSWORD)
        yield url, directory


@pytest.mark.parametrize("store", ["database", pytest.param("redis", marks=needs_redis)])
def test_logout_holds_while_a_stolen_cookie_is_kept_busy_under_gunicorn(served_database, store):
    """The attack as reported: a stolen cookie kept busy on a page that writes the session
    (the new-token form's nonce) while its owner logs out. Five times over."""
    url, directory = served_database
    settings = {"SESSION_REDIS_URL": REDIS_URL} if store == "redis" else {}
    with gunicorn(url, workers=2, log_path=directory / f"race-{store}.log", **settings) as base:
        for trial in range(5):
            victim = requests.Session()
            assert log_in_over_http(victim, base).status_code == 302
            sid = victim.cookies[COOKIE]
            # The session's CSRF secret is made by the first page with a form; made now, before
            # the thieves' pages race to make one each (the last saved would win).
            page = victim.get(base + "/admin/events", timeout=10)
            stop, served = threading.Event(), []
            answered = [0, 0, 0]  # answers each thief has had

            def keep_busy(n, sid=sid, stop=stop, served=served, answered=answered):
                while not stop.is_set():
                    answer = requests.get(base + "/admin/settings/api_tokens/new", cookies={COOKIE: sid},
                                          allow_redirects=False, timeout=10)
                    served.append(answer.status_code)
                    answered[n] += 1

            thieves = [threading.Thread(target=keep_busy, args=(n,)) for n in range(len(answered))]
            for thief in thieves:
                thief.start()
            try:
                wait_until(lambda answered=answered: all(answered), timeout=15,
                           message="every thief served before the logout")
                logout = victim.post(base + "/logout", data={"csrf_token": csrf_token_from(page.text)},
                                     allow_redirects=False, timeout=10)
                assert logout.status_code == 302
                # Each thief's request in flight at the logout has answered, and one sent after it too.
                at_logout = list(answered)
                wait_until(lambda answered=answered, at_logout=at_logout: all(
                    now >= then + 2 for now, then in zip(answered, at_logout, strict=True)),
                    timeout=15, message="every thief answered after the logout")
            finally:
                stop.set()
                for thief in thieves:
                    thief.join(15)
            assert 200 in served, f"trial {trial}: the stolen cookie never worked before the logout"
            after = requests.get(base + "/admin/events", cookies={COOKIE: sid}, allow_redirects=False, timeout=10)
            assert after.status_code == 302, f"trial {trial}: the logged-out cookie works again"
            assert not stored_under(url, store, sid), f"trial {trial}: the session was stored again"


@pytest.mark.parametrize("failure", ["redis-down", "table-missing"])
def test_a_failing_session_store_answers_our_503_page_under_gunicorn(tmp_path, failure):
    with scratch_database(tmp_path, "broken") as url:
        prepare_database(url, PASSWORD)
        settings = {}
        if failure == "redis-down":
            settings["SESSION_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        else:
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            with engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE server_sessions"))
            engine.dispose()
        log = tmp_path / "gunicorn.log"
        with gunicorn(url, workers=1, log_path=log, **settings) as base:
            answers = {"page": requests.get(base + "/admin/events", cookies={COOKIE: "A" * 43},
                                            allow_redirects=False, timeout=10)}
            assert answers["page"].status_code == 503  # a stored session's cookie: the store is needed
            http = requests.Session()
            assert http.get(base + "/login", timeout=10).status_code == 200  # an anonymous visit needs no store
            answers["login"] = log_in_over_http(http, base)
            health = requests.get(base + "/healthz", timeout=10)  # says what every login meets
            assert health.status_code == 503 and health.json()["checks"]["session_store"] == "unavailable"
            for what, answer in answers.items():
                assert answer.status_code == 503, (what, answer.status_code, answer.text)
                assert "503 Service Unavailable" in answer.text and "session store" in answer.text, what
                assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'"), what
                assert answer.headers["X-Content-Type-Options"] == "nosniff", what
                assert COOKIE not in answer.cookies, what
        text = log.read_text()
    assert "method=POST path=/login status=503" in text
    assert "method=GET path=/admin/events status=503" in text
    assert "session store failed" in text
    assert "Error handling request" not in text and "Traceback" not in text, text
