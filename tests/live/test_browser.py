"""The token reveal in a real browser: headless Chromium, driven by Playwright, against
real gunicorn.

The countdown, the copy button and the confirmation step are behaviour of a page, so
they are tested where a page runs. Playwright drives the system's Chromium (Debian's
``chromium`` package): its own browser download cannot work here. Without a Chromium the
tests are skipped with the reason, unless USETIX_TEST_REQUIRE_BROWSER=1 (CI) makes that
a failure. USETIX_TEST_SCREENSHOTS=DIR saves a screenshot of each page into DIR, to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager

import pytest
import requests

from ..databases import scratch_database
from ..helpers import PASSWORD, wait_until
from ..servers import gunicorn, prepare_database, self_signed_certificate

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]  # it serves the app with gunicorn

EMAIL = "admin@acme.example"  # an admin of the demo data (usetix seed-demo)
REVEAL_SECONDS = 10
TOKEN_SHAPE = re.compile(r"utx_[0-9A-Za-z]{36}")
# Headless, and nothing that phones home: the machine may have no internet at all.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = os.environ.get("USETIX_TEST_SCREENSHOTS")


def find_chromium() -> str:
    """The system Chromium, or skip (fail when USETIX_TEST_REQUIRE_BROWSER=1)."""
    path = shutil.which("chromium")
    if path is None:
        reason = "no Chromium on PATH (Debian: apt-get install chromium)"
        if os.environ.get("USETIX_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}, and USETIX_TEST_REQUIRE_BROWSER=1 requires one", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def fresh_server(tmp_path_factory):
    """gunicorn with two workers on a fresh database (the suite's kind) made by the CLI."""
    directory = tmp_path_factory.mktemp("browser")
    with scratch_database(directory, "browser") as url:
        prepare_database(url, PASSWORD)
        with gunicorn(url, workers=2, log_path=directory / "gunicorn.log") as base:
            yield base


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module's tests that need no account of their own."""
    with fresh_server(tmp_path_factory) as base:
        yield base


@pytest.fixture
def own_server(tmp_path_factory):
    """A server of the test's own: an account whose token list and audit log are its alone,
    whichever tests ran before."""
    with fresh_server(tmp_path_factory) as base:
        yield base


def screenshot(page, name: str) -> None:
    """Save the whole page as DIR/name.png when USETIX_TEST_SCREENSHOTS=DIR."""
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


def log_in(page, base: str) -> None:
    """Through the login form, from a dashboard page that sends us there."""
    page.goto(base + "/admin/events")
    assert page.url.startswith(base + "/login?next=")
    screenshot(page, "login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/admin/events")


def create_token(page, description: str, tier_label: str) -> None:
    """Settings → API Tokens → Token → description and tier → Create Token."""
    page.get_by_role("link", name="Settings → API Tokens").click()
    page.wait_for_url("**/admin/settings/api_tokens")
    page.get_by_role("link", name="Token", exact=True).click()
    page.wait_for_url("**/admin/settings/api_tokens/new")
    assert page.get_by_label("Read — GET and HEAD only").is_checked()  # the default
    page.get_by_label("Description").fill(description)
    page.get_by_label(tier_label).check()
    screenshot(page, "new-token")
    page.get_by_role("button", name="Create Token").click()
    page.wait_for_selector("#token-value")


def api_get(base: str, path: str, token: str) -> requests.Response:
    return requests.get(base + path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                        timeout=10)


def test_token_lifecycle(browser, own_server):
    """Log in, create a token, copy it, watch the countdown hide it, go back, revoke it."""
    server = own_server
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    log_in(page, server)
    assert page.locator("tr[data-event-id]").count() == 25  # the first page of 32 events
    screenshot(page, "events")
    page.get_by_role("link", name="Settings → API Tokens").click()
    screenshot(page, "token-list-empty")

    create_token(page, "Mailchimp sync", "Read + Write — all methods")
    assert page.locator("#reveal").get_attribute("data-seconds") == str(REVEAL_SECONDS)  # the script's countdown
    # Every change of the countdown, and the page's text at the moment the value leaves it.
    countdown: list[str] = []
    removed: list[str] = []
    page.expose_function("usetixCountdown", lambda text: countdown.append(text))
    page.expose_function("usetixRemoved", lambda text: removed.append(text))
    first = page.evaluate("""() => {
        const counter = document.getElementById("countdown");
        const value = document.getElementById("token-value");
        new MutationObserver(() => window.usetixCountdown(counter.textContent))
            .observe(counter, {childList: true, characterData: true, subtree: true});
        new MutationObserver((changes, observer) => {
            if (!value.isConnected) { observer.disconnect(); window.usetixRemoved(document.body.innerText); }
        }).observe(document.body, {childList: true, subtree: true});
        return Number(counter.textContent);  // read with the observers in place: no tick missed
    }""")
    raw = page.locator("#token-value").inner_text()
    assert TOKEN_SHAPE.fullmatch(raw), raw
    assert page.locator("#countdown").is_visible()
    assert 0 < first <= REVEAL_SECONDS
    assert page.get_by_role("button", name="Copy").is_visible()
    screenshot(page, "reveal")

    # The value works, and is the one shown.
    response = api_get(server, "/admin/account", raw)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["token"]["description"] == "Mailchimp sync"
    assert response.json()["data"]["token"]["tier"] == "write"

    # The copy button puts exactly the value on the clipboard (headless Chromium has a
    # clipboard of its own once the context is granted clipboard-read and -write).
    page.get_by_role("button", name="Copy").click()
    # (Functions, not expressions: the page's CSP forbids eval, and Playwright would use it.)
    page.wait_for_function("() => document.getElementById('copy-status').textContent !== ''")
    assert page.locator("#copy-status").inner_text() == "Copied to the clipboard."
    assert page.evaluate("navigator.clipboard.readText()") == raw
    screenshot(page, "reveal-copied")

    # The visible countdown goes down, second by second, while the value is still shown.
    page.wait_for_function("(limit) => Number(document.getElementById('countdown').textContent) <= limit",
                           arg=first - 2)
    assert page.locator("#countdown").is_visible()
    assert page.locator("#token-value").inner_text() == raw
    page.wait_for_function("() => document.querySelector('.warning strong')?.textContent === '1 second'")

    # At zero the script removes the value, then moves on to the token list (the reveal,
    # being the answer to the form's POST, has the list's URL already).
    with page.expect_navigation(url=server + "/admin/settings/api_tokens", timeout=(REVEAL_SECONDS + 5) * 1000):
        pass
    # The page's last calls to the exposed functions may still be on their way.
    wait_until(lambda: removed and countdown[-1:] == ["0"], interval=0.02,
               pause=lambda seconds: page.wait_for_timeout(seconds * 1000), message="the countdown's last calls")
    numbers = [int(text) for text in countdown]
    assert numbers == list(range(first - 1, -1, -1)), countdown
    assert removed, "the value was never removed from the reveal page"
    assert raw not in removed[0]
    assert "The token is hidden now." in removed[0]

    # The list shows the token without its value; the API call above shows as its last use.
    assert raw not in page.content()
    row = page.locator("tr[data-token-id]")
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[:5] == ["Mailchimp sync", "Read + Write", "Live", "Expires in 30 days", EMAIL]
    assert cells[6] != "Never"  # last used
    screenshot(page, "token-list")

    # The reveal replaced its own history entry: back goes to the form, never the value.
    page.go_back()
    page.wait_for_load_state()
    assert page.url == server + "/admin/settings/api_tokens/new"
    assert page.locator("#token-value").count() == 0
    assert raw not in page.content()
    page.go_forward()
    page.wait_for_load_state()
    assert page.url == server + "/admin/settings/api_tokens"
    assert raw not in page.content()

    # Revoke asks first: dismissing the question keeps the token working.
    questions: list[str] = []

    def answer(accept: bool):
        def handle(dialog):
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handle

    page.once("dialog", answer(False))
    row.get_by_role("button", name="Revoke").click()
    assert questions == ["Revoke “Mailchimp sync”? Requests using it will get 401 at once."]
    assert page.locator("tr[data-token-id]").count() == 1
    assert api_get(server, "/admin/events", raw).status_code == 200

    page.once("dialog", answer(True))
    with page.expect_navigation():
        row.get_by_role("button", name="Revoke").click()
    assert len(questions) == 2
    assert page.url == server + "/admin/settings/api_tokens"
    assert page.get_by_role("status").first.inner_text() == (
        "Token “Mailchimp sync” was revoked. Requests using it now get 401.")
    # Still listed, as revoked, with nothing left to revoke.
    assert row.get_attribute("class") == "token-revoked"
    assert row.locator("td").nth(2).inner_text() == "Revoked"
    assert row.get_by_role("button", name="Revoke").count() == 0
    screenshot(page, "token-revoked")
    response = api_get(server, "/admin/events", raw)
    assert response.status_code == 401
    assert response.json()["error"] == "revoked_token"

    # The audit log has both, newest first, and never the value.
    page.get_by_role("link", name="Audit log").click()
    page.wait_for_url("**/admin/settings/audit_log")
    rows = page.locator("tr[data-audit-id]")
    assert [rows.nth(n).locator("td").nth(2).inner_text() for n in range(rows.count())] == [
        "Revoked token", "Created token"]
    assert raw not in page.content()
    screenshot(page, "audit-log")
    context.close()


def test_reveal_without_script(browser, server):
    """With JavaScript off, the meta refresh alone leaves the reveal after ten seconds."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, server)
    create_token(page, "Analytics job", "Read — GET and HEAD only")
    # What moves the page on without script: a refresh after the countdown's seconds.
    refresh = page.locator('meta[http-equiv="refresh"]').get_attribute("content")
    assert refresh == f"{REVEAL_SECONDS};url=/admin/settings/api_tokens", refresh
    raw = page.locator("#token-value").inner_text()
    assert TOKEN_SHAPE.fullmatch(raw), raw
    assert page.locator("#countdown").inner_text() == str(REVEAL_SECONDS)
    assert api_get(server, "/admin/account", raw).json()["data"]["token"]["tier"] == "read"
    # A copy button would do nothing here, so it stays hidden; the value is selectable.
    assert not page.get_by_role("button", name="Copy").is_visible()
    screenshot(page, "reveal-without-script")

    with page.expect_navigation(url=server + "/admin/settings/api_tokens", timeout=(REVEAL_SECONDS + 5) * 1000):
        pass
    assert raw not in page.content()
    assert page.locator("tr[data-token-id]").locator("td").first.inner_text() == "Analytics job"
    # The refresh loads the reveal's own URL, so it replaces the reveal in the history too.
    page.go_back()
    page.wait_for_load_state()
    assert page.url == server + "/admin/settings/api_tokens/new"
    assert raw not in page.content()
    context.close()


def test_reload_of_the_reveal_shows_the_list(browser, server):
    """Reloading the reveal resubmits the form: no second token, and never the value."""
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server)
    create_token(page, "Reloaded once", "Read — GET and HEAD only")
    raw = page.locator("#token-value").inner_text()
    response = page.reload()  # Chromium resubmits the POST (Playwright confirms the question)
    assert response.request.method == "GET"  # after the server's redirect
    assert page.url == server + "/admin/settings/api_tokens"
    assert raw not in page.content()
    assert page.get_by_role("status").first.inner_text().startswith("That form was already submitted")
    assert page.locator("tr[data-token-id]", has_text="Reloaded once").count() == 1
    context.close()


def test_a_double_click_on_create_token_still_reveals_it(browser, server):
    """On a slow network a double click lands while the first POST is under way. The
    second click must send nothing: the browser would show only the last answer ("already
    submitted"), and the token the first POST made would never be revealed."""
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server)
    page.goto(server + "/admin/settings/api_tokens/new")
    page.get_by_label("Description").fill("Clicked twice")
    network = context.new_cdp_session(page)
    network.send("Network.enable")
    network.send("Network.emulateNetworkConditions",
                 {"offline": False, "latency": 400, "downloadThroughput": -1, "uploadThroughput": -1})
    button = page.get_by_role("button", name="Create Token")
    button.scroll_into_view_if_needed()  # below the expiry choices: the mouse clicks in the viewport
    box = button.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    page.wait_for_timeout(150)  # a human double click, at the speed of a mouse
    page.mouse.click(x, y)
    page.wait_for_selector("#token-value, .flash", timeout=10_000)
    assert page.locator("#token-value").count() == 1, page.locator("main").inner_text()
    raw = page.locator("#token-value").inner_text()
    assert TOKEN_SHAPE.fullmatch(raw)

    network.send("Network.emulateNetworkConditions",
                 {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    page.goto(server + "/admin/settings/api_tokens")
    assert page.locator("tr[data-token-id]", has_text="Clicked twice").count() == 1
    context.close()


def test_log_out_from_the_reveal_page_over_https(browser, tmp_path_factory):
    """Over HTTPS Flask-WTF refuses a form without a same-site Referer, so the reveal page's
    referrer policy must let the header's Log out form send one."""
    directory = tmp_path_factory.mktemp("https")
    tls = self_signed_certificate(directory)
    with scratch_database(directory, "https") as url:
        prepare_database(url, PASSWORD)
        with gunicorn(url, workers=1, log_path=directory / "gunicorn.log", tls=tls,
                      SESSION_COOKIE_SECURE="true") as base:
            assert base.startswith("https://")
            context = browser.new_context(ignore_https_errors=True)  # the throwaway certificate
            page = context.new_page()
            log_in(page, base)
            create_token(page, "Logged out from here", "Read — GET and HEAD only")
            assert page.locator("#token-value").count() == 1
            with page.expect_navigation():
                page.get_by_role("button", name="Log out").click()
            assert page.url == base + "/login", page.locator("main").inner_text()
            assert page.get_by_role("status").first.inner_text() == "You have been logged out."
            page.goto(base + "/admin/events")
            assert page.url.startswith(base + "/login?next=")
            context.close()


def token_facts(page) -> dict[str, str]:
    return dict(zip(page.locator("#token-facts dt").all_inner_texts(),
                    page.locator("#token-facts dd").all_inner_texts()))


def test_expiry_the_token_page_and_the_notice_after_a_leak_report(browser, server):
    """Create a token that expires in 7 days (after a refused custom date), see it on the
    list and its own page, then have it reported leaked from outside: it is revoked, and
    the admin's next page says so until dismissed."""
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server)
    page.goto(server + "/admin/settings/api_tokens/new")
    assert page.get_by_label("30 days", exact=True).is_checked()  # the default
    # The warning shows only while "No expiry" is picked (CSS alone: it works without script).
    warning = page.locator("#no-expiry-warning")
    assert not warning.is_visible()
    page.get_by_label("No expiry", exact=True).check()
    assert warning.is_visible()
    screenshot(page, "new-token-no-expiry")
    page.get_by_label("Custom date", exact=True).check()
    assert not warning.is_visible()

    # A custom date of today is refused with a form error, and nothing is created.
    page.get_by_label("Description").fill("Quarterly export")
    today = page.locator("#expires_on").get_attribute("min")  # tomorrow, as the server says
    page.locator("#expires_on").fill(today)
    assert page.locator("#expires_on").get_attribute("max") is not None
    page.locator("#expires_on").evaluate("(input) => { input.removeAttribute('min'); }")
    page.locator("#expires_on").fill("2000-01-01")
    page.get_by_role("button", name="Create Token").click()
    page.wait_for_selector("p.error")
    assert page.locator("p.error").inner_text().startswith("The expiry date must be tomorrow")
    screenshot(page, "new-token-bad-date")

    page.get_by_label("7 days", exact=True).check()
    page.get_by_role("button", name="Create Token").click()
    page.wait_for_selector("#token-value")
    raw = page.locator("#token-value").inner_text()
    assert page.locator("#token-expiry").inner_text().startswith("Expires in 7 days (")
    screenshot(page, "reveal-with-expiry")
    response = api_get(server, "/admin/account", raw)
    assert response.status_code == 200
    assert response.headers["Usetix-Token-Expiration"] == response.json()["data"]["token"]["expires_at"]

    page.get_by_role("link", name="I have copied it: back to API Tokens").click()
    page.wait_for_url(server + "/admin/settings/api_tokens")
    row = page.locator("tr[data-token-id]", has_text="Quarterly export")
    assert "expiring-soon" in row.get_attribute("class")  # within 7 days: highlighted
    assert row.locator("td").nth(3).inner_text() == "Expires in 7 days"
    assert page.locator("tr[data-token-id]", has_text="Quarterly export").count() == 1  # the refused try made none
    screenshot(page, "token-list-with-expiry")

    row.get_by_role("link", name="Quarterly export").click()
    page.wait_for_url("**/admin/settings/api_tokens/*")
    facts = token_facts(page)
    assert facts["Tier"] == "Read" and facts["Expiry"] == "Expires in 7 days" and facts["Status"] == "Live"
    assert facts["Uses"] == "1" and facts["Last used from"] == "127.0.0.1"
    assert facts["Last used with"].startswith("python-requests/")
    assert page.locator("#token-history tbody tr").all_inner_texts()[0].split("\t")[1] == "Created token"
    screenshot(page, "token-page")

    # Someone finds the token in public and reports it: no login, no token.
    report = requests.post(server + "/admin/credentials/revoke", json={"credentials": [raw]}, timeout=10)
    assert report.status_code == 202
    assert api_get(server, "/admin/events", raw).status_code == 401
    page.reload()
    notice = page.locator("#leak-notice")
    assert notice.is_visible()
    assert "API tokens reported leaked" in notice.inner_text()
    assert notice.get_by_role("link", name="Quarterly export").is_visible()
    facts = token_facts(page)
    assert facts["Status"] == "Revoked"
    assert "Revoked token: reported leaked" in page.locator("#token-history").inner_text()
    screenshot(page, "leak-notice")
    page.get_by_role("link", name="Events", exact=True).click()
    page.wait_for_url(server + "/admin/events")
    assert page.locator("#leak-notice").is_visible()  # on every page, until dismissed
    with page.expect_navigation():
        notice.get_by_role("button", name="Dismiss").click()
    assert page.url == server + "/admin/events"
    assert page.locator("#leak-notice").count() == 0
    page.goto(server + "/admin/settings/audit_log")
    assert page.locator("#leak-notice").count() == 0
    context.close()


def test_a_door_token_made_without_script(browser, own_server):
    """The new-token form without JavaScript: a preset says what it means, Custom takes each
    permission, the events are checkboxes; the token made can do that and no more."""
    server = own_server
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, server)
    page.goto(server + "/admin/settings/api_tokens/new")
    # Each preset says what it allows, in its label.
    assert page.get_by_label("Check-in only").count() == 1
    assert "never lists attendees nor sees their email" in page.locator("fieldset.permissions").inner_text()
    page.get_by_label("Description").fill("Front door")
    page.get_by_label("Custom — choose each permission").check()
    page.locator('input[name="perm_events"][value="read"]').check()
    page.locator('input[name="perm_attendees"][value="none"]').check()
    page.locator('input[name="perm_check_in"][value="write"]').check()
    first_event = page.locator('input[name="events"]').first
    event_id = int(first_event.get_attribute("value"))
    first_event.check()
    screenshot(page, "new-token-custom")
    page.get_by_role("button", name="Create Token").click()
    page.wait_for_selector("#token-value")
    raw = page.locator("#token-value").inner_text()
    token = api_get(server, "/admin/account", raw).json()["data"]["token"]
    assert token["permissions"] == {"events": "read", "attendees": "none", "check_in": "write",
                                    "webhooks": "none"}
    assert token["events"] == [event_id]
    events = api_get(server, "/admin/events", raw).json()["data"]
    assert [event["id"] for event in events] == [event_id]
    refused = api_get(server, f"/admin/events/{event_id}/attendees", raw)
    assert refused.status_code == 403 and refused.json()["required"] == "attendees:read"
    page.goto(server + "/admin/settings/api_tokens")
    row = page.locator("tr[data-token-id]").first
    assert "Check-in only" in row.inner_text() and "1 event only" in row.inner_text()
    screenshot(page, "token-list-permissions")

    # No permission at all: the form says so, and nothing is made.
    page.goto(server + "/admin/settings/api_tokens/new")
    page.get_by_label("Description").fill("Nothing")
    page.get_by_label("Custom — choose each permission").check()
    for name in ("perm_events", "perm_attendees", "perm_check_in"):
        page.locator(f'input[name="{name}"][value="none"]').check()
    page.get_by_role("button", name="Create Token").click()
    page.wait_for_load_state()
    assert "needs at least one permission" in page.locator("fieldset.permissions").inner_text()
    page.goto(server + "/admin/settings/api_tokens")
    assert page.locator("tr[data-token-id]").count() == 1
    context.close()


def ask_for_a_code(base: str, name: str) -> dict:
    """A scanner's device authorization request (RFC 8628 §3.1)."""
    answer = requests.post(base + "/oauth/device_authorization", timeout=10,
                           data={"client_id": "usetix-scanner", "device_name": name})
    assert answer.status_code == 200, answer.text
    return answer.json()


def poll_for_the_token(base: str, codes: dict) -> requests.Response:
    return requests.post(base + "/oauth/token", timeout=10, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": codes["device_code"],
        "client_id": "usetix-scanner"})


def test_pairing_a_scanner_approve_and_deny(browser, own_server):
    """Settings → Devices → Pair a device: the code typed as a person types it, what asks,
    an event to tick (none is a form error), Approve; then a code from the complete URI,
    checked and denied. The pages are the dashboard's (its header, its stylesheet)."""
    server = own_server
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server)
    codes = ask_for_a_code(server, "Door 3")
    page.get_by_role("link", name="Settings → Devices").click()
    page.wait_for_url("**/admin/settings/devices")
    assert "No paired devices" in page.locator("main").inner_text()
    page.get_by_role("link", name="Pair a device").click()
    page.wait_for_url("**/admin/devices/activate")
    assert page.locator("header.topbar nav a[aria-current=page]").inner_text() == "Settings → Devices"
    # The dashboard's stylesheet styles it, as every page: a card with its border.
    assert page.locator("section.card").evaluate("node => getComputedStyle(node).borderStyle") == "solid"
    page.get_by_label("Code shown on the device").fill("  " + codes["user_code"].replace("-", "").lower())
    screenshot(page, "device-code")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("#confirm-code")
    assert page.locator("#confirm-code").inner_text() == codes["user_code"]
    assert page.locator("#device-name").inner_text() == "Door 3"
    assert page.locator("#device-address").inner_text() == "127.0.0.1"
    page.get_by_role("button", name="Approve").click()  # no event ticked
    page.wait_for_load_state()
    assert "Tick at least one event" in page.locator("fieldset.token-events").inner_text()
    assert poll_for_the_token(server, codes).json()["error"] == "authorization_pending"
    first_event = page.locator('input[name="events"]').first
    event_id = int(first_event.get_attribute("value"))
    first_event.check()
    assert page.locator('input[name="expiration"][value="30"]').is_checked()  # the token form's default
    screenshot(page, "device-confirm")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/admin/settings/devices")
    assert "Approved “Door 3”" in page.locator("main").inner_text()
    granted = poll_for_the_token(server, codes)
    assert granted.status_code == 200, granted.text
    page.reload()  # listed once it holds its token
    row = page.locator("#devices tr[data-token-id]")
    assert row.count() == 1 and "Door 3" in row.inner_text() and EMAIL in row.inner_text()
    screenshot(page, "devices")
    token = api_get(server, "/admin/account", granted.json()["access_token"]).json()["data"]["token"]
    assert token["events"] == [event_id]
    assert token["permissions"] == {"events": "read", "attendees": "none", "check_in": "write",
                                    "webhooks": "none"}

    # From the complete URI the code is filled in, and still shown to be checked: deny it.
    denied_codes = ask_for_a_code(server, "Stranger's phone")
    page.goto(server + denied_codes["verification_uri_complete"])
    assert page.locator("#confirm-code").inner_text() == denied_codes["user_code"]
    assert poll_for_the_token(server, denied_codes).json()["error"] == "authorization_pending"
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url("**/admin/settings/devices")
    assert poll_for_the_token(server, denied_codes).json()["error"] == "access_denied"
    assert page.locator("#devices tr[data-token-id]").count() == 1
def test_an_attendees_ticket_and_its_reissue_without_script(browser, server):
    """The door on the dashboard, in a browser that runs no script: an event's counts, an
    attendee's ticket drawn as a QR code (nothing the page's CSP refuses), Reissue."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    log_in(page, server)
    page.locator("table a").first.click()  # the soonest event
    page.wait_for_selector("#check-in-count")
    assert "checked in" in page.locator("#check-in-count").inner_text()
    page.locator("tr[data-attendee-id] a").first.click()
    page.wait_for_selector("svg.ticket-qr")
    box = page.locator("svg.ticket-qr").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] == box["width"]  # drawn, square
    before = page.locator("#ticket-code").inner_text()
    screenshot(page, "attendee-ticket")
    page.get_by_role("button", name="Reissue ticket").click()
    page.wait_for_selector(".flash")
    assert "Reissued the ticket" in page.locator(".flash").first.inner_text()
    after = page.locator("#ticket-code").inner_text()
    assert after != before and len(after.replace(" ", "")) == 24
    assert refused == []
    context.close()
def test_a_webhook_secret_is_revealed_once_like_a_token(browser, own_server):
    """Settings → Webhooks → Add endpoint: the secret shows for ten seconds, counted down,
    then leaves the page, which moves on to the list; the list never shows it."""
    server = own_server
    page = browser.new_context().new_page()
    log_in(page, server)
    page.get_by_role("link", name="Settings → Webhooks").click()
    page.wait_for_url("**/admin/settings/webhooks")
    page.get_by_label("URL").fill("https://hooks.example.com/usetix")
    page.get_by_label("attendee.checked_in").check()
    page.get_by_role("button", name="Add endpoint").click()
    page.wait_for_selector("#token-value")
    secret = page.locator("#token-value").inner_text()
    assert secret.startswith("whsec_")
    screenshot(page, "webhook-secret-reveal")
    with page.expect_navigation(url=server + "/admin/settings/webhooks", timeout=(REVEAL_SECONDS + 5) * 1000):
        pass
    assert secret not in page.content()
    assert page.locator("tr[data-endpoint-id]").count() == 1
    assert "hooks.example.com/usetix" in page.locator("tr[data-endpoint-id]").inner_text()
    page.go_back()  # the reveal replaced its own history entry: back never shows the secret again
    assert secret not in page.content()
