"""The JSON API against a real gunicorn server: two worker processes, plain HTTP.

What the in-process tests (test_api.py) cannot show: that the JSON/HTML split, the 401s
and immediate revocation hold across a process boundary, whichever worker answers, and
that the public document's curl command works as printed. Tokens are made and revoked
through the dashboard of the same server, as an admin would.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from usetix.core import token_format as tokens

from ..databases import scratch_database
from ..helpers import NONCE_FIELD, PASSWORD, TOKEN_VALUE, csrf_token_from, wait_until
from ..servers import gunicorn, prepare_database

pytestmark = pytest.mark.gunicorn

# The access log names the worker (pid) that answered each request.
ACCESS_LOG_FORMAT = "worker=%(p)s %(m)s %(U)s %(s)s"
ACCESS_LINE = re.compile(r"worker=<(\d+)> (\S+) (\S+) (\d{3})$", re.MULTILINE)
# The public document's example (API · Authentication, "Using a token"), as printed.
DOCUMENTED_CURL = """curl -H "Authorization: Bearer your-token-here" \\
     -H "Accept: application/json" \\
     https://app.usetix.io/admin/events"""
CHALLENGE = 'Bearer realm="Usetix"'
EVENTS_PER_ACCOUNT = 32  # usetix seed-demo


@dataclass
class Server:
    base: str
    log: Path

    def log_mark(self) -> int:
        return self.log.stat().st_size

    def answers_since(self, mark: int, method: str, path: str) -> list[tuple[int, int]]:
        """(worker pid, status) of each ``method`` request for ``path`` logged after ``mark``."""
        with open(self.log, "rb") as log:
            log.seek(mark)
            text = log.read().decode()
        return [(int(pid), int(status)) for pid, logged_method, logged_path, status in ACCESS_LINE.findall(text)
                if (logged_method, logged_path) == (method, path)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gunicorn")
    with scratch_database(directory, "gunicorn") as url:
        prepare_database(url, PASSWORD)
        log = directory / "gunicorn.log"
        # The 401 tests fail on purpose, many times, from one address: keep them under the
        # failed-authentication limit (memory storage: per worker).
        with gunicorn(url, workers=2, log_path=log,
                      extra_args=["--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT],
                      API_FAILED_AUTH_LIMIT="1000 per minute") as base:
            yield Server(base, log)


class Dashboard:
    """An admin in the dashboard over plain HTTP: the real forms, CSRF tokens and all."""

    def __init__(self, base: str, email: str):
        self.base = base
        self.http = requests.Session()
        page = self.http.get(base + "/login", timeout=10)
        response = self.http.post(base + "/login", data={
            "email": email, "password": PASSWORD, "csrf_token": csrf_token_from(page.text),
        }, allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text

    def create_token(self, description: str, tier: str) -> tuple[int, str]:
        """Settings → API Tokens → Token → Create Token; the new token's id and value."""
        form = self.http.get(self.base + "/admin/settings/api_tokens/new", timeout=10).text
        response = self.http.post(self.base + "/admin/settings/api_tokens", data={
            "description": description, "tier": tier,
            "csrf_token": csrf_token_from(form), "nonce": NONCE_FIELD.search(form).group(1),
        }, timeout=10)
        assert response.status_code == 200, response.text
        raw = TOKEN_VALUE.search(response.text).group(1)
        token_id = api(self.base, "GET", "/admin/account", raw).json()["data"]["token"]["id"]
        return token_id, raw

    def revoke(self, token_id: int) -> None:
        page = self.http.get(self.base + "/admin/settings/api_tokens", timeout=10).text
        assert f'data-token-id="{token_id}"' in page
        # confirm=yes: what the list's form sends once its script's dialog is accepted.
        response = self.http.post(f"{self.base}/admin/settings/api_tokens/{token_id}/revoke",
                                  data={"csrf_token": csrf_token_from(page), "confirm": "yes"}, timeout=10)
        assert response.status_code == 200
        assert "was revoked" in response.text
        assert f'<tr data-token-id="{token_id}" class="token-revoked' in response.text


def api(base: str, method: str, path: str, token: str | None = None, **headers: str) -> requests.Response:
    """A JSON API request, as a script would send it."""
    headers = {"Accept": "application/json", **headers}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, base + path, headers=headers, allow_redirects=False, timeout=10)


@dataclass
class RawResponse:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def raw_get(base: str, path: str, headers: dict[str, str]) -> RawResponse:
    """GET with exactly ``headers`` (requests would add an Accept: */* of its own)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return RawResponse(response.status, response.headers, response.read())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def acme(server):
    return Dashboard(server.base, "admin@acme.example")


@pytest.fixture(scope="module")
def globex(server):
    return Dashboard(server.base, "admin@globex.example")


@pytest.fixture(scope="module")
def read_token(acme):
    return acme.create_token("Analytics job", "read")[1]


@pytest.fixture(scope="module")
def revoked_token(acme):
    token_id, raw = acme.create_token("Leaked in a gist", "read")
    acme.revoke(token_id)
    return raw


# --- One path, two audiences ---------------------------------------------------------

@pytest.mark.parametrize("accept, is_json", [
    ("application/json", True),
    ("application/json; charset=utf-8", True),
    ("application/json, text/html", True),
    ("text/html, application/json;q=0.9", False),
    ("*/*", False),  # curl's default
    (None, False),
])
@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
def test_accept_decides_json_or_html(server, read_token, accept, is_json, with_token):
    headers = {"Accept": accept} if accept else {}
    if with_token:
        headers["Authorization"] = f"Bearer {read_token}"
    response = raw_get(server.base, "/admin/events", headers)
    assert "Accept" in response.headers["Vary"]
    if is_json:
        assert response.headers["Content-Type"] == "application/json"
        assert "Set-Cookie" not in response.headers  # JSON requests never open a session
        body = json.loads(response.body)
        if with_token:
            assert response.status == 200
            assert body["meta"]["total"] == EVENTS_PER_ACCOUNT
        else:
            assert response.status == 401
            assert body["error"] == "missing_token"
    else:
        # The dashboard, which knows nothing of tokens: an anonymous visitor goes to log in.
        assert response.status == 302
        assert response.headers["Location"] == "/login?next=%2Fadmin%2Fevents"
        assert response.headers["Content-Type"].startswith("text/html")


def test_a_session_cookie_never_authenticates_a_json_request(server, acme):
    assert acme.http.get(server.base + "/admin/events", timeout=10).status_code == 200  # a live login
    for method in ("GET", "POST"):
        response = acme.http.request(method, server.base + "/admin/events", headers={"Accept": "application/json"},
                                     allow_redirects=False, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"] == "missing_token"


def test_each_token_sees_its_own_account(server, acme, globex, read_token):
    globex_token = globex.create_token("Globex sync", "read")[1]

    def event_ids(token: str) -> set[int]:
        return {event["id"] for event in api(server.base, "GET", "/admin/events?per_page=100", token).json()["data"]}

    acme_ids, globex_ids = event_ids(read_token), event_ids(globex_token)
    assert len(acme_ids) == len(globex_ids) == EVENTS_PER_ACCOUNT
    assert not acme_ids & globex_ids
    # Another account's event is exactly as absent as one that exists nowhere.
    theirs = api(server.base, "GET", f"/admin/events/{min(acme_ids)}", globex_token)
    nowhere = api(server.base, "GET", "/admin/events/987654321", globex_token)
    assert theirs.status_code == nowhere.status_code == 404
    assert theirs.content == nowhere.content


# --- 401s ----------------------------------------------------------------------------

def _changed_character(token: str) -> str:
    position = len(tokens.PREFIX) + 3
    return token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1:]


UNAUTHORIZED = {
    # case: (method, Authorization header from the tokens, error, message mentions, challenge error)
    "missing": ("GET", lambda t: None, "missing_token", "Missing", None),
    "other scheme": ("GET", lambda t: "Basic YWRtaW46c2VjcmV0", "missing_token", "scheme must be Bearer", None),
    "no value": ("GET", lambda t: "Bearer", "malformed_token", "Malformed", "invalid_request"),
    "extra parts": ("GET", lambda t: f"Bearer {t['read']} x", "malformed_token", "Malformed", "invalid_request"),
    "bad checksum": ("GET", lambda t: f"Bearer {_changed_character(t['read'])}", "malformed_token", "checksum",
                     "invalid_token"),
    "unknown": ("GET", lambda t: f"Bearer {tokens.generate()}", "invalid_token", "Unknown", "invalid_token"),
    "revoked": ("GET", lambda t: f"Bearer {t['revoked']}", "revoked_token", "revoked", "invalid_token"),
    "read token POST": ("POST", lambda t: f"Bearer {t['read']}", "insufficient_scope", "read token",
                        "insufficient_scope"),
    "read token DELETE": ("DELETE", lambda t: f"Bearer {t['read']}", "insufficient_scope", "read token",
                          "insufficient_scope"),
    "read token OPTIONS": ("OPTIONS", lambda t: f"Bearer {t['read']}", "insufficient_scope", "read token",
                           "insufficient_scope"),
}


@pytest.mark.parametrize("case", UNAUTHORIZED)
def test_unauthorized(server, read_token, revoked_token, case):
    method, authorization, error, mentions, challenge_error = UNAUTHORIZED[case]
    header = authorization({"read": read_token, "revoked": revoked_token})
    headers = {"Accept": "application/json"}
    if header is not None:
        headers["Authorization"] = header
    response = requests.request(method, server.base + "/admin/events", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == error
    assert mentions in body["message"]
    expected = CHALLENGE + (f', error="{challenge_error}"' if challenge_error else "")
    assert response.headers["WWW-Authenticate"] == expected


def test_a_token_in_the_query_string_or_a_form_never_authenticates(server, read_token):
    response = api(server.base, "GET", f"/admin/events?access_token={read_token}")
    assert response.status_code == 401
    assert response.json()["error"] == "missing_token"
    response = requests.post(server.base + "/admin/events", data={"access_token": read_token},
                             headers={"Accept": "application/json"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "missing_token"


# --- Revocation ----------------------------------------------------------------------

def _probe_every_worker(server: Server, token: str, status: int, minimum: int = 6) -> set[int]:
    """Ask with ``token`` until both workers have answered (at least ``minimum`` times in
    all); every answer must be ``status``. Returns the workers' pids.

    The probes are HEAD requests, which nothing else in these tests sends: gunicorn logs
    a request just after answering it, so a GET's line may land after ``mark``.
    """
    mark = server.log_mark()
    sent = 0
    # Two probes in flight at once: one after the other, the worker that has just answered
    # is usually back in accept() before the other wakes, and may take every request.
    with ThreadPoolExecutor(2) as pool:
        while True:
            for response in pool.map(lambda _: api(server.base, "HEAD", "/admin/account", token), range(2)):
                sent += 1
                assert response.status_code == status, sent
            workers = {pid for pid, _ in server.answers_since(mark, "HEAD", "/admin/account")}
            if (len(workers) == 2 and sent >= minimum) or sent >= 200:
                break
    # The access log's lines are written just after the answers.
    wait_until(lambda: len(server.answers_since(mark, "HEAD", "/admin/account")) >= sent,
               message=f"{sent} lines in the access log")
    answers = server.answers_since(mark, "HEAD", "/admin/account")
    assert len(answers) == sent
    assert {logged for _, logged in answers} == {status}
    return {pid for pid, _ in answers}


def test_revocation_is_immediate_on_every_worker(server, acme):
    token_id, raw = acme.create_token("Mailchimp sync", "write")
    # Both workers have used the token (and would have cached it, were there a cache).
    before = _probe_every_worker(server, raw, 200)
    assert len(before) == 2

    acme.revoke(token_id)
    # The first request after the revoke is 401, and so is every later one, on both workers.
    after = _probe_every_worker(server, raw, 401)
    assert after == before
    response = api(server.base, "GET", "/admin/events", raw)
    assert response.json()["error"] == "revoked_token"


def test_a_token_cannot_revoke_tokens(server, acme):
    token_id, raw = acme.create_token("Overreaching integration", "write")
    # The dashboard's pages are not API paths: a JSON request there is a JSON 404.
    for method, path in [("GET", "/admin/settings/api_tokens"),
                         ("POST", f"/admin/settings/api_tokens/{token_id}/revoke")]:
        response = api(server.base, method, path, raw)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    # On an HTML request the token is ignored: anonymous, so off to the login page.
    response = requests.post(f"{server.base}/admin/settings/api_tokens/{token_id}/revoke",
                             headers={"Authorization": f"Bearer {raw}"}, allow_redirects=False, timeout=10)
    assert response.status_code in (302, 400)  # to /login, or refused for its missing CSRF token
    assert api(server.base, "GET", "/admin/account", raw).status_code == 200


# --- OPTIONS ---------------------------------------------------------------------------

def _allowed(response: requests.Response) -> set[str]:
    return {method.strip() for method in response.headers["Allow"].split(",")}


def test_options_is_answered_by_flask_and_never_runs_a_view(server, acme):
    """OPTIONS gets Flask's automatic answer (Allow, no body) on both maps. Were it to
    reach a view, a POST-only one such as revoke would act on it, with no CSRF check:
    CSRF protection guards POST, PUT, PATCH and DELETE only."""
    token_id, raw = acme.create_token("Asked for its options", "write")
    response = acme.http.options(f"{server.base}/admin/settings/api_tokens/{token_id}/revoke",
                                 allow_redirects=False, timeout=10)
    assert response.status_code == 200
    assert _allowed(response) == {"GET", "HEAD", "POST", "OPTIONS"}  # GET: the confirmation page
    assert response.content == b""
    assert api(server.base, "GET", "/admin/account", raw).status_code == 200  # not revoked

    response = api(server.base, "OPTIONS", "/admin/events", raw)  # a write token may send any method
    assert response.status_code == 200
    assert _allowed(response) == {"GET", "HEAD", "POST", "OPTIONS"}
    assert response.content == b""


# --- The document's curl command -----------------------------------------------------

def _documented_curl(base: str, token: str) -> list[str]:
    command = DOCUMENTED_CURL.replace("\\\n", " ").replace("your-token-here", token)
    return shlex.split(command.replace("https://app.usetix.io", base))


def _curl(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_the_documented_curl_command(server, read_token):
    argv = _documented_curl(server.base, read_token)
    assert argv[0] == "curl" and argv[-1] == server.base + "/admin/events"
    done = _curl(argv)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert len(body["data"]) == 25
    assert body["meta"] == {"page": 1, "per_page": 25, "total": EVENTS_PER_ACCOUNT}

    status = _curl(argv + ["--silent", "--output", os.devnull, "--write-out", "%{http_code} %{content_type}"])
    assert status.stdout == "200 application/json"


def test_curl_without_the_accept_header_gets_the_dashboard(server, read_token):
    """curl sends Accept: */*, an HTML request: the token is ignored."""
    argv = ["curl", "-H", f"Authorization: Bearer {read_token}", server.base + "/admin/events"]
    done = _curl(argv + ["--silent", "--output", os.devnull, "--write-out", "%{http_code} %{redirect_url}"])
    assert done.stdout == f"302 {server.base}/login?next=%2Fadmin%2Fevents"
