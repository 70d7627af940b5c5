"""Hooks confined to pages (``for_pages_only``): JSON requests skip them, pages run them."""

import pytest

from usetix.routing import Usetix, for_pages_only

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


@pytest.fixture
def hooked_app():
    app = Usetix(__name__)
    ran = []

    @app.route("/thing")
    def thing():
        return {"ran": list(ran)}

    def everywhere():
        ran.append("everywhere")

    def page_before():
        ran.append("page_before")

    def page_after(response):
        response.headers["X-Page-Hook"] = "yes"
        return response

    def page_teardown(exc):
        ran.append("page_teardown")

    app.before_request(everywhere)
    with for_pages_only(app):
        app.before_request(page_before)
        app.after_request(page_after)
        app.teardown_request(page_teardown)
    app.ran = ran
    return app


def test_json_requests_skip_the_hooks_registered_for_pages(hooked_app):
    response = hooked_app.test_client().get("/thing", headers=JSON)
    assert response.status_code == 200
    assert response.get_json() == {"ran": ["everywhere"]}
    assert "X-Page-Hook" not in response.headers  # the response went on unchanged
    assert hooked_app.ran == ["everywhere"]  # no teardown either


def test_page_requests_run_them_in_order(hooked_app):
    response = hooked_app.test_client().get("/thing", headers=HTML)
    assert response.get_json() == {"ran": ["everywhere", "page_before"]}
    assert response.headers["X-Page-Hook"] == "yes"
    assert hooked_app.ran == ["everywhere", "page_before", "page_teardown"]
