"""The API's limit counted in the default storage (worker-memory://), through the test client."""

from __future__ import annotations

import pytest

from usetix.ratelimit import rate_limits
from usetix.ratelimit.worker_memory import WorkerMemoryStorage

from ..helpers import bearer


@pytest.mark.app_config(RATELIMIT_STORAGE_URL="worker-memory://", API_RATE_LIMIT="3 per minute")
def test_the_api_limit_holds_on_it(app, client, read_token):
    assert isinstance(rate_limits(app).storage, WorkerMemoryStorage)
    for remaining in (2, 1, 0):
        response = client.get("/admin/events", headers=bearer(read_token))
        assert response.status_code == 200
        assert response.headers["RateLimit-Remaining"] == str(remaining)
    response = client.get("/admin/events", headers=bearer(read_token))
    assert response.status_code == 429 and response.json["error"] == "rate_limited"
    assert 0 < int(response.headers["Retry-After"]) <= 60
