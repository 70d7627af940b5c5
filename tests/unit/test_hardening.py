"""gunicorn.conf.py bounds the request line and headers (gunicorn enforcing them: tests/live/test_hardening.py)."""

from __future__ import annotations

import runpy

from ..servers import ROOT

# --- Numbers and dates outside what the database or datetime can hold ---------------------


# --- Oversized bodies and headers -----------------------------------------------------------


def test_gunicorn_conf_states_the_request_limits():
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert settings["limit_request_line"] <= 4094
    assert settings["limit_request_fields"] <= 100
    assert settings["limit_request_field_size"] <= 8190
