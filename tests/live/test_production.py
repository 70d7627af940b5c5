"""gunicorn's logs: one line per request, never a token or a query string."""

from __future__ import annotations

import re

import pytest
import requests
import sqlalchemy as sa

from usetix.database.engine import db
from usetix.database.models import ApiToken

from ..helpers import bearer, issue
from ..servers import gunicorn

# --- Through real gunicorn -------------------------------------------------------------------


@pytest.mark.gunicorn
def test_gunicorn_logs_never_hold_a_token_or_a_query_string(tmp_path, orgs, app):
    """Through real gunicorn with gunicorn.conf.py: the access log and the app's request log
    (stderr) name the path and status, never the token or the query string."""
    raw = issue(app, orgs["acme"], "read")
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id))
    log = tmp_path / "gunicorn.log"
    with gunicorn(app.config["DATABASE_URL"], workers=1, log_path=log, ACCESS_LOG="-") as base:
        ok = requests.get(base + "/admin/events?page=1&secret_in_query=leak-me", headers=bearer(raw), timeout=10)
        # The last character changed (to one it is not), so the checksum fails.
        broken = raw[:-1] + ("x" if raw[-1] != "x" else "y")
        refused = requests.get(base + "/admin/events?token=" + raw, headers=bearer(broken), timeout=10)
    assert (ok.status_code, refused.status_code) == (200, 401)
    text = log.read_text()
    assert raw not in text and raw[:-1] not in text
    assert "leak-me" not in text and "page=1" not in text and "token=usx" not in text
    # gunicorn.conf.py's access log format: '"GET /admin/events HTTP/1.1" 200 <bytes> <n>ms'
    assert re.search(r'"GET /admin/events HTTP/1\.1" 200 \d+ \d+ms', text)
    assert re.search(r'"GET /admin/events HTTP/1\.1" 401 \d+ \d+ms', text)
    # The app's own line, on gunicorn's stderr.
    assert re.search(rf"method=GET path=/admin/events status=200 duration_ms=[\d.]+ "
                     rf"account={orgs['acme'].account_id} token={token_id}\b", text)
    assert "status=401" in text


@pytest.mark.gunicorn
def test_gunicorn_writes_one_line_per_request_by_default(tmp_path, orgs, app):
    """gunicorn.conf.py as shipped: the app's request line (with account and token), and
    no access-log line saying the same again."""
    raw = issue(app, orgs["acme"], "read")
    log = tmp_path / "gunicorn.log"
    with gunicorn(app.config["DATABASE_URL"], workers=1, log_path=log) as base:
        assert requests.get(base + "/admin/events", headers=bearer(raw), timeout=10).status_code == 200
        assert requests.get(base + "/admin/account", headers=bearer("utx_x"), timeout=10).status_code == 401
    lines = log.read_text().splitlines()
    events = [line for line in lines if "/admin/events" in line]
    assert len(events) == 1 and re.search(r"method=GET path=/admin/events status=200 .* account=\d+ token=\d+",
                                          events[0])
    assert len([line for line in lines if "/admin/account" in line]) == 1
