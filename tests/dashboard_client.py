"""An admin using the dashboard of a real server over plain HTTP (forms, CSRF tokens and all)."""

from __future__ import annotations

import requests

from .helpers import NONCE_FIELD, PASSWORD, TOKEN_VALUE, csrf_token_from


class Dashboard:
    def __init__(self, base: str, email: str = "admin@acme.example", password: str = PASSWORD):
        self.base = base
        self.http = requests.Session()
        page = self.http.get(base + "/login", timeout=10)
        response = self.http.post(base + "/login", data={
            "email": email, "password": password, "csrf_token": csrf_token_from(page.text),
        }, allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text

    def create_token(self, description: str = "Lifecycle test", tier: str = "read", expiration: str = "30",
                     expires_on: str = "") -> str:
        """Settings → API Tokens → Token → Create Token; the new token's value."""
        form = self.http.get(self.base + "/admin/settings/api_tokens/new", timeout=10).text
        response = self.http.post(self.base + "/admin/settings/api_tokens", data={
            "description": description, "tier": tier, "expiration": expiration, "expires_on": expires_on,
            "csrf_token": csrf_token_from(form), "nonce": NONCE_FIELD.search(form).group(1),
        }, timeout=10)
        assert response.status_code == 200, response.text
        return TOKEN_VALUE.search(response.text).group(1)

    def decide_device(self, user_code: str, event_ids: list[int], decision: str = "approve",
                      expiration: str = "30") -> requests.Response:
        """Settings → Devices → Pair a device: type the code, tick the events, press Approve (or Deny)."""
        entry = self.page("/admin/devices/activate")
        confirm = self.http.post(self.base + "/admin/devices/activate", timeout=10, data={
            "user_code": user_code, "csrf_token": csrf_token_from(entry)})
        assert confirm.status_code == 200, confirm.text
        return self.http.post(self.base + "/admin/devices/activate/decision", allow_redirects=False, timeout=10, data={
            "user_code": user_code, "events": [str(event_id) for event_id in event_ids], "expiration": expiration,
            "decision": decision, "csrf_token": csrf_token_from(confirm.text)})

    def page(self, path: str) -> str:
        response = self.http.get(self.base + path, timeout=10)
        assert response.status_code == 200, (path, response.status_code)
        return response.text
