"""Recording a token's use never makes the client wait on a held lock, on real gunicorn."""


import pytest

from usetix import create_app
from usetix.database.engine import db

from ..helpers import WriteLock, bearer, make_test_config


@pytest.mark.gunicorn
def test_under_gunicorn_a_held_lock_costs_the_client_nothing(tmp_path):
    """The same, across a real server: the client has its answer before the write waits."""
    import requests

    from ..dashboard_client import Dashboard
    from ..databases import scratch_database
    from ..helpers import PASSWORD
    from ..servers import gunicorn, prepare_database

    with scratch_database(tmp_path, "usage") as url:
        prepare_database(url, PASSWORD)
        # A request that waited for the lock would wait a minute: past the client's timeout.
        with gunicorn(url, workers=1, SQLITE_BUSY_TIMEOUT_MS="60000") as base:
            token = Dashboard(base).create_token()
            app = create_app({**make_test_config(tmp_path), "DATABASE_URL": url})
            with WriteLock(app):
                for _ in range(3):  # answered while the lock is held, each within the client's timeout
                    response = requests.get(base + "/admin/events", headers=bearer(token), timeout=10)
                    assert response.status_code == 200
            with app.app_context():
                db.engine.dispose()
