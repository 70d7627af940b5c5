"""The served OpenAPI document under Spectral's recommended OpenAPI ruleset: no error, no warning.

Spectral (@stoplight/spectral-cli, pinned in tools/spectral/package-lock.json) is installed
by ``make test`` (``npm ci --prefix tools/spectral``); the ruleset is
tools/spectral/ruleset.yaml, where each rule switched off says why. Without the install
the test is skipped with the reason, except under CI (``CI=true``) or with
``USETIX_TEST_REQUIRE_SPECTRAL=1``, where a missing Spectral (or Node) is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from usetix import create_app

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "spectral"
SPECTRAL = TOOLS / "node_modules" / ".bin" / "spectral"
RULESET = TOOLS / "ruleset.yaml"


def spectral_or_skip() -> list[str]:
    node = shutil.which("node")
    if node and SPECTRAL.exists():
        return [node, str(SPECTRAL)]
    missing = "Node.js" if not node else f"Spectral ({SPECTRAL.relative_to(TOOLS.parent.parent)})"
    if os.environ.get("USETIX_TEST_REQUIRE_SPECTRAL") or os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{missing} is required here and missing: `make test` installs it (npm ci --prefix tools/spectral)")
    pytest.skip(f"{missing} is not installed: `make test` installs it (npm ci --prefix tools/spectral)")


def test_the_served_document_passes_spectrals_recommended_rules(tmp_path):
    command = spectral_or_skip()
    app = create_app({"TESTING": True, "SECRET_KEY": "spectral-test-secret-key", "DATABASE_URL": "sqlite://"})
    document = tmp_path / "openapi.json"
    document.write_bytes(app.test_client().get("/admin/openapi.json").data)
    done = subprocess.run(
        [*command, "lint", str(document), "--ruleset", str(RULESET), "--format", "json", "--quiet",
         "--fail-severity", "hint"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    # --quiet keeps stdout to the JSON report; an empty report is "[]" (exit status 0).
    problems = json.loads(done.stdout or "null")
    assert problems == [], "\n".join(
        f"{p['severity']} {p['code']} at {'.'.join(map(str, p['path']))}: {p['message']}" for p in problems or [])
    assert done.returncode == 0, done.stderr


def test_the_ruleset_is_the_recommended_one_and_says_why_a_rule_is_off():
    lines = RULESET.read_text().splitlines()
    assert 'extends: ["spectral:oas"]' in lines  # Spectral's recommended OpenAPI rules
    for number, line in enumerate(lines):
        if line.strip().endswith(": off"):
            assert lines[number - 1].strip().startswith("# "), f"rule switched off without a reason: {line.strip()}"
