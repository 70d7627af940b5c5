"""The leak kill-switch, in-process: POST /admin/credentials/revoke, its audit records, its
cost, its limit, and the notice the account's admins get. (Real gunicorn: tests/live/test_leak_reports_gunicorn.py.)"""

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix.core import token_format as tokens
from usetix.database.engine import db
from usetix.database.models import Admin, ApiToken, AuditEvent

from ..helpers import PASSWORD, bearer, csrf_token_from, issue
from ..queries import recorded_queries

URL = "/admin/credentials/revoke"
ACCEPTED = {
    "message": "Thank you. Every live Usetix token among these values is now revoked, and its account's "
               "admins are told. This answer is the same whether or not any value was a token.",
}


def report(client, values, **kwargs):
    return client.post(URL, json={"credentials": values}, **kwargs)


def audit(app):
    with app.app_context():
        return [(e.action, e.token_id, e.actor, e.admin_id, e.client_address, e.account_id)
                for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))]


def token_id(app, raw):
    with app.app_context():
        return db.session.scalar(sa.select(ApiToken.id).where(ApiToken.digest == tokens.digest(raw)))


def bad_checksum(raw):
    last = raw[-1]
    return raw[:-1] + ("A" if last != "A" else "B")


def test_a_reported_token_is_revoked_at_once_and_recorded(app, client, orgs, caplog):
    raw = issue(app, orgs["acme"], "write")
    other = issue(app, orgs["acme"], "read")
    assert client.get("/admin/events", headers=bearer(raw)).status_code == 200
    response = report(client, [raw], environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 202 and response.json == ACCEPTED
    refused = client.get("/admin/events", headers=bearer(raw))
    assert refused.status_code == 401 and refused.json["error"] == "revoked_token"
    assert client.get("/admin/events", headers=bearer(other)).status_code == 200
    created = [entry for entry in audit(app) if entry[0] == "token.created"]
    assert audit(app)[len(created):] == [
        ("token.reported_leaked", token_id(app, raw), "leak report", None, "203.0.113.9", orgs["acme"].account_id),
    ]
    assert "leak report from 203.0.113.9 revoked 1 token(s) (1 value(s) sent)" in caplog.text
    assert raw not in caplog.text


@pytest.mark.parametrize("accept", ["application/json", "*/*", None, "text/html"])
def test_any_client_can_report_with_no_token_or_cookie(app, client, orgs, accept):
    raw = issue(app, orgs["acme"])
    headers = {"Accept": accept} if accept else {}
    response = report(client, [raw], headers=headers)
    assert response.status_code == 202 and response.json == ACCEPTED
    assert response.mimetype == "application/json"
    assert "Set-Cookie" not in response.headers
    assert client.get("/admin/events", headers=bearer(raw)).status_code == 401


def test_the_answer_is_the_same_whatever_was_matched(app, client, orgs):
    raw = issue(app, orgs["acme"])
    revoked_before = issue(app, orgs["globex"])
    report(client, [revoked_before])
    answers = [report(client, values) for values in (
        [raw], [tokens.generate()], ["not a token"], [revoked_before], [raw], [bad_checksum(tokens.generate())],
    )]
    assert {(a.status_code, a.data) for a in answers} == {(202, answers[0].data)}
    assert {tuple(sorted((k, v) for k, v in a.headers.items() if k != "Date")) for a in answers} == \
        {tuple(sorted((k, v) for k, v in answers[0].headers.items() if k != "Date"))}
    # Reported twice: revoked (and recorded) once.
    assert [e[1] for e in audit(app) if e[0] == "token.reported_leaked"] == [token_id(app, revoked_before),
                                                                           token_id(app, raw)]


def test_values_across_accounts_are_revoked_together_and_others_are_untouched(app, client, orgs):
    acme, globex, kept = issue(app, orgs["acme"]), issue(app, orgs["globex"]), issue(app, orgs["acme"])
    assert report(client, [acme, "utx_junk", globex, acme, tokens.generate()]).status_code == 202
    for raw, status in ((acme, 401), (globex, 401), (kept, 200)):
        assert client.get("/admin/events", headers=bearer(raw)).status_code == status
    leaked = [(e[1], e[5]) for e in audit(app) if e[0] == "token.reported_leaked"]
    assert sorted(leaked) == sorted([(token_id(app, acme), orgs["acme"].account_id),
                                     (token_id(app, globex), orgs["globex"].account_id)])


def test_an_expired_token_is_not_live_so_it_is_left_as_it_is(app, client, orgs):
    raw = issue(app, orgs["acme"])
    with app.app_context():
        db.session.execute(sa.update(ApiToken).values(expires_at=datetime(2026, 1, 1, tzinfo=UTC)))
        db.session.commit()
    assert report(client, [raw]).status_code == 202
    assert not [e for e in audit(app) if e[0] == "token.reported_leaked"]


@pytest.mark.parametrize("body, content_type, status, error", [
    (b"", "application/json", 400, "invalid_request"),
    (b"{not json", "application/json", 400, "invalid_request"),
    (b'["utx_"]', "application/json", 400, "invalid_request"),
    (b'"utx_"', "application/json", 400, "invalid_request"),
    (b"credentials=utx_abc", "application/x-www-form-urlencoded", 400, "invalid_request"),
    (b"{}", "application/json", 422, "invalid_parameter"),
    (b'{"credentials": "utx_abc"}', "application/json", 422, "invalid_parameter"),
    (b'{"credentials": []}', "application/json", 422, "invalid_parameter"),
    (b'{"credentials": [1]}', "application/json", 422, "invalid_parameter"),
    (b'{"credentials": [null]}', "application/json", 422, "invalid_parameter"),
    (b'{"credentials": [["utx_"]]}', "application/json", 422, "invalid_parameter"),
])
def test_malformed_input_is_a_clear_4xx(client, orgs, body, content_type, status, error):
    response = client.post(URL, data=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.json["error"] == error
    if status == 400:
        assert response.json["message"] == ('Send a JSON object: {"credentials": ["utx_...", ...]}, '
                                            'at most 1000 values.')
    else:
        assert response.json == {"error": "invalid_parameter", "parameter": "credentials",
                                 "message": "credentials must be a list of 1 to 1000 strings."}


def test_json_sent_without_its_content_type_is_still_read(app, client, orgs):
    raw = issue(app, orgs["acme"])
    response = client.post(URL, data=f'{{"credentials": ["{raw}"]}}', headers={"Content-Type": "text/plain"})
    assert response.status_code == 202
    assert client.get("/admin/events", headers=bearer(raw)).status_code == 401


def test_at_most_1000_values(app, client, orgs):
    raw = issue(app, orgs["acme"])
    too_many = report(client, [raw] + [tokens.generate() for _ in range(1000)])
    assert too_many.status_code == 422
    assert client.get("/admin/events", headers=bearer(raw)).status_code == 200
    assert report(client, [raw] + [tokens.generate() for _ in range(999)]).status_code == 202
    assert client.get("/admin/events", headers=bearer(raw)).status_code == 401


def test_a_flood_costs_one_statement_and_bad_checksums_none(app, client, orgs):
    raw = issue(app, orgs["acme"])
    forged = [bad_checksum(tokens.generate()) for _ in range(1000)]
    with recorded_queries(app) as statements:
        assert report(client, forged).status_code == 202
    # The report's own count in the shared rate-limit storage (the database, without Redis)
    # costs a few statements (an upsert, its read, now and then a sweep) whatever the report
    # holds; the values cost none beyond it.
    assert 1 <= len(limit_counts(statements)) <= 3
    statements = without_limit_counts(statements)
    assert statements == []  # the checksum rules every one out: no query at all
    well_formed = [tokens.generate() for _ in range(1000)]
    with recorded_queries(app) as statements:
        assert report(client, well_formed).status_code == 202
    statements = without_limit_counts(statements)
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("UPDATE API_TOKENS")
    assert client.get("/admin/events", headers=bearer(raw)).status_code == 200
    assert not [e for e in audit(app) if e[0] == "token.reported_leaked"]
    with recorded_queries(app) as statements:
        assert report(client, well_formed[:500] + [raw] + well_formed[500:999]).status_code == 202
    # The UPDATE, then one INSERT of the audit records (executemany) for what it revoked.
    assert [s.split()[0].upper() for s in without_limit_counts(statements)] == ["UPDATE", "INSERT"]


def limit_counts(statements: list[str]) -> list[str]:
    return [s for s in statements if "rate_limit_counters" in s]


def without_limit_counts(statements: list[str]) -> list[str]:
    return [s for s in statements if "rate_limit_counters" not in s]


@pytest.mark.app_config(LEAK_REPORT_RATE_LIMIT="3 per hour")
def test_reports_are_limited_per_client_address(app, client, orgs):
    raw = issue(app, orgs["acme"])
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with freeze_time(start) as clock:
        for _ in range(3):
            assert report(client, ["utx_x"], environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 202
        refused = report(client, [raw], environ_base={"REMOTE_ADDR": "198.51.100.1"})
        assert refused.status_code == 429
        assert refused.json["error"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
        assert client.get("/admin/events", headers=bearer(raw)).status_code == 200  # nothing was revoked
        # Another address has its own allowance; the first one's comes back after the hour.
        assert report(client, ["utx_x"], environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code == 202
        clock.tick(timedelta(hours=1, seconds=1))
        assert report(client, [raw], environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 202


def test_the_openapi_document_describes_the_endpoint(client):
    spec = client.get("/admin/openapi.json").json
    operation = spec["paths"][URL]["post"]
    assert operation["security"] == []
    assert set(operation["responses"]) == {"202", "400", "413", "422", "429", "503"}


# -- the notice -------------------------------------------------------------------------

def login(client, email):
    page = client.get("/login")
    assert client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": csrf_token_from(page.text)}).status_code == 302


def test_the_accounts_admins_see_a_notice_until_each_dismisses_it(app, orgs):
    with app.app_context():
        from usetix.auth.passwords import hash_password

        db.session.add(Admin(account_id=orgs["acme"].account_id, email="second@acme.example",
                             password_hash=hash_password(PASSWORD)))
        db.session.commit()
    raw = issue(app, orgs["acme"], description="Mailchimp <sync>")
    first, second, globex = app.test_client(), app.test_client(), app.test_client()
    login(first, "admin@acme.example")
    login(second, "second@acme.example")
    login(globex, "admin@globex.example")
    assert 'id="leak-notice"' not in first.get("/admin/events").text
    app.test_client().post(URL, json={"credentials": [raw]}, environ_base={"REMOTE_ADDR": "192.0.2.77"})
    page = first.get("/admin/events").text
    notice = re.search(r'<section class="notice leak-notice" id="leak-notice" role="alert">.*?</section>',
                       page, re.S).group(0)
    assert "API tokens reported leaked" in notice
    assert f'href="/admin/settings/api_tokens/{token_id(app, raw)}">Mailchimp &lt;sync&gt;</a>' in notice
    assert "from 192.0.2.77" in notice
    assert 'id="leak-notice"' in first.get("/admin/settings/audit_log").text  # on every page
    assert 'id="leak-notice"' not in globex.get("/admin/events").text  # another account's admins: nothing
    dismissed = first.post("/admin/notices/leak_reports/dismiss",
                           data={"csrf_token": csrf_token_from(page), "next": "/admin/events"})
    assert dismissed.status_code == 302 and dismissed.headers["Location"] == "/admin/events"
    assert 'id="leak-notice"' not in first.get("/admin/events").text
    assert 'id="leak-notice"' in second.get("/admin/events").text  # each admin dismisses for themselves
    # A later report shows again.
    other = issue(app, orgs["acme"], description="Second leak")
    with freeze_time(datetime.now(UTC) + timedelta(seconds=2)):
        app.test_client().post(URL, json={"credentials": [other]})
        page = first.get("/admin/events").text
    assert "Second leak" in page and "Mailchimp &lt;sync&gt;" not in page


def test_dismissing_needs_csrf_and_goes_nowhere_else(app, client, logged_in, orgs):
    raw = issue(app, orgs["acme"])
    app.test_client().post(URL, json={"credentials": [raw]})
    page = client.get("/admin/events").text
    assert client.post("/admin/notices/leak_reports/dismiss", data={"next": "/admin/events"}).status_code == 400
    assert 'id="leak-notice"' in client.get("/admin/events").text
    for target in ("https://evil.example/", "//evil.example/admin/", "/admin/\\\\evil", "/login",
                   "/admin//evil.example", "/admin/\nSet-Cookie: x=1", "/admin/events?x=1",
                   "/admin/../login", "/admin/\u00e9"):
        response = client.post("/admin/notices/leak_reports/dismiss",
                               data={"csrf_token": csrf_token_from(page), "next": target})
        assert response.headers["Location"] == "/admin/settings/api_tokens"


def test_the_token_page_history_says_it_was_reported_leaked(app, client, logged_in, orgs):
    raw = issue(app, orgs["acme"])
    app.test_client().post(URL, json={"credentials": [raw]}, environ_base={"REMOTE_ADDR": "192.0.2.5"})
    page = client.get(f"/admin/settings/api_tokens/{token_id(app, raw)}").text
    history = re.search(r'<table id="token-history">.*?</table>', page, re.S).group(0)
    assert "Revoked token: reported leaked" in history and "leak report" in history and "192.0.2.5" in history
    assert "<dd>Revoked</dd>" in page
    log = client.get("/admin/settings/audit_log").text
    assert "Revoked token: reported leaked" in log
