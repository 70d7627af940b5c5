"""Pairing a scanner end to end on real gunicorn (two workers), with an OAuth client we did
not write: oauthlib's DeviceClient (RFC 8628) builds the token requests and parses the
answers, raising each §3.5 error as it reads it; the device's side follows RFC 8628 §3.4-3.5
(poll; on authorization_pending keep the interval, on slow_down add 5 s to it). An admin
approves through the dashboard's forms. The token checks an attendee in on the approved
event and gets 404 on another; the device then signs itself out (RFC 7009).

Also the README's "Pair a scanner" curl commands, run as they are written."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests
from oauthlib.oauth2 import DeviceClient
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from ..dashboard_client import Dashboard
from ..helpers import bearer, seeded_database
from ..servers import gunicorn

pytestmark = pytest.mark.gunicorn

README = Path(__file__).resolve().parents[2] / "README.md"
CLIENT_ID = "usetix-scanner"


class Scanner:
    """The device: asks for a code (RFC 8628 §3.1, form-encoded), then polls with oauthlib."""

    def __init__(self, base: str, name: str):
        self.base = base
        self.oauth = DeviceClient(CLIENT_ID)
        answer = requests.post(base + "/oauth/device_authorization", timeout=10,
                               data={"client_id": CLIENT_ID, "device_name": name})
        assert answer.status_code == 200, answer.text
        assert answer.headers["Cache-Control"] == "no-store"
        self.authorization = answer.json()
        self.interval = self.authorization["interval"]

    def poll(self) -> str | None:
        """One token request (§3.4); the error code of a refusal, or None once the token is held."""
        body = self.oauth.prepare_request_body(self.authorization["device_code"], include_client_id=True)
        answer = requests.post(self.base + "/oauth/token", data=body, timeout=10,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.headers["Cache-Control"] == "no-store"
        try:
            self.oauth.parse_request_body_response(answer.text, scope=["check_in:write", "events:read"])
        except OAuth2Error as error:
            assert answer.status_code == 400
            if error.error == "slow_down":  # §3.5: this and every later poll waits 5 s more
                self.interval += 5
            return error.error
        assert answer.status_code == 200
        return None

    @property
    def token(self) -> str:
        return self.oauth.access_token


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("device_pairing")
    with seeded_database(directory, "device_pairing") as (url, _, org), gunicorn(url, workers=2) as base:
        yield base, org


def test_a_scanner_pairs_checks_in_on_its_event_only_and_signs_out(server):
    base, org = server
    scanner = Scanner(base, "Door 1 (gunicorn)")
    code = scanner.authorization["user_code"]
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", code)
    assert scanner.authorization["verification_uri"] == "/admin/devices/activate"
    assert scanner.poll() == "authorization_pending"
    assert scanner.poll() == "slow_down"  # polled again at once: faster than the interval
    assert scanner.interval == 10
    admin = Dashboard(base)
    approved = admin.decide_device(code.lower().replace("-", ""), [org.event_ids[0]])
    assert approved.status_code == 302, approved.text
    assert scanner.poll() is None
    assert scanner.token.startswith("utx_")
    assert scanner.oauth.token["token_type"] == "Bearer" and scanner.oauth.token["expires_in"] > 29 * 86400
    assert scanner.poll() == "invalid_grant"  # a device code is good for one token

    attendee_on, attendee_off = org.attendee_ids[0], org.attendee_ids[2]  # the first event's, the second's
    checked = requests.post(f"{base}/admin/events/{org.event_ids[0]}/attendees/{attendee_on}/check_in",
                            headers=bearer(scanner.token), timeout=10)
    assert checked.status_code == 201, checked.text
    elsewhere = requests.post(f"{base}/admin/events/{org.event_ids[1]}/attendees/{attendee_off}/check_in",
                              headers=bearer(scanner.token), timeout=10)
    assert elsewhere.status_code == 404
    devices = admin.page("/admin/settings/devices")
    assert "Door 1 (gunicorn)" in devices and "admin@acme.example" in devices

    signed_out = requests.post(base + "/oauth/revoke", data={"token": scanner.token, "client_id": CLIENT_ID},
                               timeout=10)
    assert signed_out.status_code == 200
    # Revoked for every worker: a few requests reach both.
    for _ in range(4):
        assert requests.get(base + "/admin/events", headers=bearer(scanner.token), timeout=10).status_code == 401


def test_a_denied_scanner_never_gets_a_token(server):
    base, _ = server
    scanner = Scanner(base, "Unknown phone")
    denied = Dashboard(base).decide_device(scanner.authorization["user_code"], [], decision="deny")
    assert denied.status_code == 302
    assert scanner.poll() == "access_denied"
    assert scanner.poll() == "access_denied"
    assert scanner.oauth.access_token is None


def readme_commands() -> list[str]:
    """The bash blocks of the README's "Pair a scanner" section, in order."""
    section = README.read_text().split("### Pair a scanner", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def run(command: str, **env: str) -> dict:
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_readme_pair_a_scanner_commands(server):
    base, org = server
    ask, poll, sign_out = readme_commands()
    env = {"USETIX_URL": base}
    codes = run(ask, **env)
    assert codes["expires_in"] == 600 and codes["interval"] == 5
    env["DEVICE_CODE"] = codes["device_code"]
    assert run(poll, **env)["error"] == "authorization_pending"
    Dashboard(base).decide_device(codes["user_code"], org.event_ids[:1])
    token = run(poll, **env)
    assert token["token_type"] == "Bearer" and token["access_token"].startswith("utx_")
    assert requests.get(base + "/admin/events", headers=bearer(token["access_token"]), timeout=10).status_code == 200
    env["USETIX_TOKEN"] = token["access_token"]
    assert run(sign_out, **env) == {}
    assert requests.get(base + "/admin/events", headers=bearer(token["access_token"]), timeout=10).status_code == 401
