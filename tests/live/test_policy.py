"""Rate limits honour RATELIMIT_ENABLED=false on real gunicorn."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests
import sqlalchemy as sa

from usetix import create_app
from usetix.database.engine import db
from usetix.database.models import Admin

from ..databases import scratch_database
from ..helpers import PASSWORD, bearer, issue, make_test_config
from ..servers import gunicorn, prepare_database

JSON = {"Accept": "application/json"}


@pytest.mark.gunicorn
def test_the_api_works_with_ratelimit_enabled_false_on_gunicorn(tmp_path):
    """USETIX_RATELIMIT_ENABLED=false, as an operator behind a rate-limiting gateway sets it:
    every API answer is what it would be, without RateLimit headers and never a 429."""
    with scratch_database(tmp_path, "ratelimit_off") as url:
        prepare_database(url, PASSWORD)
        app = create_app({**make_test_config(tmp_path), "DATABASE_URL": url})
        with app.app_context():
            admin_id = db.session.scalar(sa.select(Admin.id).where(Admin.email == "admin@acme.example"))
        raw = issue(app, SimpleNamespace(admin_id=admin_id), "read")
        with gunicorn(url, workers=2, RATELIMIT_ENABLED="false", API_RATE_LIMIT="2 per minute",
                      API_FAILED_AUTH_LIMIT="2 per minute") as base:
            for _ in range(6):
                response = requests.get(base + "/admin/events", headers=bearer(raw), timeout=10)
                assert response.status_code == 200, response.text
                assert len(response.json()["data"]) > 0
                assert not [name for name in response.headers if name.lower().startswith("ratelimit")]
            for _ in range(6):
                refused = requests.get(base + "/admin/events", headers={**JSON, "Authorization": "Bearer x"},
                                       timeout=10)
                assert refused.status_code == 401
            written = requests.post(base + "/admin/events", headers=bearer(raw), timeout=10)
            assert written.status_code == 401 and written.json()["error"] == "insufficient_scope"
