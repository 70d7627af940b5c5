"""Behind a proxy (PROXY_FIX): the forwarded client address is an IP address, kept in its
normal form, or the request is our 400 before anything reads it; never a value too long
for the address columns (a 500 on PostgreSQL, and a leak report that revoked nothing).
Runs on SQLite and, with USETIX_TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from usetix.database.engine import db
from usetix.database.models import ApiToken, AuditEvent, Event

from ..helpers import NONCE_FIELD, bearer, csrf_token_from, issue

pytestmark = pytest.mark.app_config(PROXY_FIX=True, PROXY_FIX_HOPS=1)

NEW_EVENT = {"title": "Launch party", "starts_at": "2026-09-01T18:00:00+02:00",
             "ends_at": "2026-09-01T23:00:00+02:00", "venue": "Rooftop"}
NOT_ADDRESSES = ["203.0.113.9" + "0" * 60, "x" * 80, "fe80::1%" + "eth" * 30, "203.0.113.9:443", "unknown"]
# A valid address the proxy may write in full, and its normal form.
LONG_FORM = ("0000:0000:0000:0000:0000:ffff:203.0.113.200", "::ffff:cb00:71c8")


def via_proxy(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.mark.parametrize("address", NOT_ADDRESSES)
def test_an_api_write_from_a_forwarded_non_address_is_our_400(app, client, orgs, address):
    raw = issue(app, orgs["acme"], "write")
    response = client.post("/admin/events", headers=via_proxy(address, **bearer(raw)), json=NEW_EVENT)
    assert response.status_code == 400
    assert response.json == {"error": "bad_request",
                             "message": "The forwarded client address (X-Forwarded-For) is not an IP address."}
    assert response.headers["Cache-Control"] == "no-store"
    events_before = count(app, Event)
    assert count(app, AuditEvent) == 1  # the token's creation only
    assert client.post("/admin/events", headers=via_proxy(LONG_FORM[0], **bearer(raw)), json=NEW_EVENT
                       ).status_code == 201
    assert count(app, Event) == events_before + 1
    with app.app_context():
        recorded = db.session.scalar(sa.select(AuditEvent.client_address).where(AuditEvent.action != "token.created"))
    assert recorded == LONG_FORM[1]


@pytest.mark.parametrize("address", NOT_ADDRESSES[:2])
def test_a_token_created_from_a_forwarded_non_address_is_our_400_page(app, client, auth, orgs, address):
    assert auth.login().status_code == 302
    form = client.get("/admin/settings/api_tokens/new").text
    data = {"description": "Mailchimp sync", "tier": "read", "csrf_token": csrf_token_from(form),
            "nonce": NONCE_FIELD.search(form).group(1)}
    refused = client.post("/admin/settings/api_tokens", data=data, headers=via_proxy(address))
    assert refused.status_code == 400
    assert refused.mimetype == "text/html" and "X-Forwarded-For" in refused.text
    assert refused.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert count(app, ApiToken) == 0
    # The proxy's own address (no X-Forwarded-For) is the peer's: the session's, and accepted.
    assert client.post("/admin/settings/api_tokens", data=data).status_code == 200
    assert count(app, ApiToken) == 1


@pytest.mark.parametrize("address", NOT_ADDRESSES[:2])
def test_a_leak_report_from_a_forwarded_non_address_is_400_and_the_next_one_revokes(app, client, orgs, address):
    raw = issue(app, orgs["acme"], "read")
    report = {"credentials": [raw]}
    refused = client.post("/admin/credentials/revoke", json=report,
                          headers=via_proxy(address, Accept="application/json"))
    assert refused.status_code == 400
    assert client.get("/admin/account", headers=bearer(raw)).status_code == 200  # not revoked, as it said
    accepted = client.post("/admin/credentials/revoke", json=report, headers=via_proxy(LONG_FORM[0]))
    assert accepted.status_code == 202
    assert client.get("/admin/account", headers=bearer(raw)).status_code == 401
    with app.app_context():
        recorded = db.session.scalar(sa.select(AuditEvent.client_address)
                                     .where(AuditEvent.action == "token.reported_leaked"))
    assert recorded == LONG_FORM[1]


def test_the_proxy_chain_takes_the_entry_of_the_trusted_hop(app, client, orgs):
    """With one proxy, the last entry is the one it wrote: what the client put before it
    is not read, however long."""
    raw = issue(app, orgs["acme"], "write")
    chain = "x" * 80 + ", 198.51.100.7"
    assert client.post("/admin/events", headers=via_proxy(chain, **bearer(raw)), json=NEW_EVENT).status_code == 201
    with app.app_context():
        recorded = db.session.scalar(sa.select(AuditEvent.client_address).where(AuditEvent.action != "token.created"))
    assert recorded == "198.51.100.7"
