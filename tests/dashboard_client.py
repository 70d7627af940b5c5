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

    def page(self, path: str) -> str:
        response = self.http.get(self.base + path, timeout=10)
        assert response.status_code == 200, (path, response.status_code)
        return response.text
