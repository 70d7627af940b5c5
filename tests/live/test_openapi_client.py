"""A client generated from the served OpenAPI document, syncing with real gunicorn.

openapi-python-client (an httpx + attrs package generator) reads ``GET /admin/openapi.json``
from the server and writes a package; the test imports it and runs an incremental sync
with its functions and models only: create an event, list page by page following the
``Link`` header's cursors, a conditional GET (304), a PATCH with If-Match (and a stale one:
412), a delete, then ``updated_since`` + ``include_deleted=true`` shows the tombstone, and
the walk's ``meta.sync_cursor`` lists what changed after it.

On PostgreSQL when USETIX_TEST_DATABASE_URL is set, else on an SQLite file.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from ..helpers import issue, seeded_database
from ..servers import gunicorn

pytestmark = pytest.mark.gunicorn

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))
PACKAGE = "usetix_api_client"
EVENTS = 5  # the account's events before the test adds one: three pages of two


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, a Read + Write token) of a gunicorn server with one account."""
    directory = tmp_path_factory.mktemp("openapi-client")
    with seeded_database(directory, "client", events=EVENTS, attendees_per_event=0) as (url, app, org):
        token = issue(app, org, "write", "generated client")
        with gunicorn(url, workers=1) as base:
            yield base, token


@pytest.fixture(scope="module")
def generated(server, tmp_path_factory):
    """The package openapi-python-client generates from the served document, imported."""
    base, _ = server
    directory = tmp_path_factory.mktemp("generated")
    document = requests.get(base + "/admin/openapi.json", timeout=10)
    assert document.status_code == 200
    (directory / "openapi.json").write_bytes(document.content)
    # No post-hooks (they run ruff over the output): the generated code as it is.
    (directory / "config.json").write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    done = subprocess.run(
        [GENERATOR, "generate", "--path", "openapi.json", "--config", "config.json", "--meta", "none",
         "--output-path", PACKAGE, "--fail-on-warning"],
        cwd=directory, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(directory))
    try:
        for module in ("models", "errors"):  # bound on the package as its attributes
            importlib.import_module(f"{PACKAGE}.{module}")
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def api(package, module: str):
    """A generated module: ``api("events.get_event")`` is the package's api/events/get_event.py."""
    return importlib.import_module(f"{package.__name__}.api.{module}")


def json_client(package, base: str, token: str):
    # The document's first rule: without Accept: application/json the API answers like the website.
    return package.AuthenticatedClient(base_url=base, token=token, headers={"Accept": "application/json"},
                                       raise_on_unexpected_status=True, timeout=20)


def next_page(response, url: str) -> dict | None:
    """The query of the Link header's rel="next" target (a relative reference), resolved against ``url``."""
    for link in requests.utils.parse_header_links(response.headers.get("Link", "")):
        if link.get("rel") == "next":
            return {name: values[0] for name, values in parse_qs(urlsplit(urljoin(url, link["url"])).query).items()}
    return None


def every_page(package, client, base: str, **params) -> tuple[list, int, object]:
    """Every item of the event list, the number of pages, and the last page's meta,
    following rel="next" (a cursor) from the first page."""
    list_events = api(package, "events.list_events")
    items, pages = [], 0
    while params is not None:
        response = list_events.sync_detailed(client=client, **params)
        assert response.status_code == 200, response.content
        items += response.parsed.data
        pages += 1
        query = next_page(response, base + "/admin/events")
        params = None if query is None else {"cursor": query["cursor"]}
    return items, pages, response.parsed.meta


def test_a_generated_client_syncs_with_the_api(server, generated):
    base, token = server
    models = generated.models
    client = json_client(generated, base, token)
    since = datetime.now(UTC).replace(microsecond=0)

    created = api(generated, "events.create_event").sync_detailed(
        client=client, idempotency_key=str(uuid.uuid4()),
        body=models.EventCreate(title="Launch party", starts_at=datetime(2026, 9, 1, 16, tzinfo=UTC),
                                ends_at=datetime(2026, 9, 1, 21, tzinfo=UTC), venue="Rooftop"))
    assert created.status_code == 201
    event = created.parsed.data
    assert isinstance(event, models.Event) and event.venue == "Rooftop"
    assert event.status == models.EventStatus.DRAFT
    first_tag = created.headers["ETag"]
    assert urljoin(base + "/admin/events", created.headers["Location"]) == f"{base}/admin/events/{event.id}"

    # Paging: rel="next" until there is none.
    listed, pages, _ = every_page(generated, client, base, per_page=2)
    assert pages == 3 and len(listed) == EVENTS + 1
    assert len({item.id for item in listed}) == EVENTS + 1 and event.id in {item.id for item in listed}

    get_event = api(generated, "events.get_event")
    read = get_event.sync_detailed(event.id, client=client)
    assert read.status_code == 200 and read.headers["ETag"] == first_tag
    assert read.headers["RateLimit-Remaining"].isdigit()  # documented on every authenticated answer
    unchanged = get_event.sync_detailed(event.id, client=client, if_none_match=first_tag)
    assert unchanged.status_code == 304 and unchanged.parsed is None

    update_event = api(generated, "events.update_event")
    patched = update_event.sync_detailed(event.id, client=client, if_match=first_tag,
                                         body=models.EventPatch(venue="Annex"))
    assert patched.status_code == 200 and patched.parsed.data.venue == "Annex"
    second_tag = patched.headers["ETag"]
    assert second_tag != first_tag
    stale = update_event.sync_detailed(event.id, client=client, if_match=first_tag,
                                       body=models.EventPatch(venue="Cellar"))
    assert stale.status_code == 412 and isinstance(stale.parsed, models.Error)
    assert stale.parsed.error == "precondition_failed"

    deleted = api(generated, "events.delete_event").sync_detailed(event.id, client=client, if_match=second_tag)
    assert deleted.status_code == 204
    gone = get_event.sync_detailed(event.id, client=client)
    assert gone.status_code == 404 and gone.parsed.error == "not_found"

    # The incremental sync: what changed since, deletions included, as tombstones.
    changed, _, meta = every_page(generated, client, base, per_page=2, updated_since=since,
                                  include_deleted=models.ListEventsIncludeDeleted.TRUE)
    tombstones = [item for item in changed if isinstance(item, models.Tombstone)]
    assert [(t.id, t.deleted) for t in tombstones] == [(event.id, True)]
    assert not [item for item in changed if isinstance(item, models.Event) and item.id == event.id]
    everything, _, _ = every_page(generated, client, base, per_page=2)
    assert event.id not in {item.id for item in everything}

    # The next sync, from the walk's sync_cursor: what changed after it (recent changes may come again).
    later = api(generated, "events.create_event").sync_detailed(
        client=client, body=models.EventCreate(title="After the sync", starts_at=datetime(2026, 9, 2, 16, tzinfo=UTC),
                                               ends_at=datetime(2026, 9, 2, 21, tzinfo=UTC), venue="Rooftop"))
    assert later.status_code == 201
    synced, _, meta = every_page(generated, client, base, cursor=meta.sync_cursor)
    assert later.parsed.data.id in {item.id for item in synced}
    assert isinstance(meta.sync_cursor, str)


def test_without_accept_a_generated_client_gets_the_websites_redirect(server, generated):
    """The rule the document states first, shown: the same call without the header is the
    dashboard's 302 to /login, which the document does not describe for the operation."""
    base, token = server
    client = generated.AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True, timeout=20)
    with pytest.raises(generated.errors.UnexpectedStatus) as refused:
        api(generated, "events.list_events").sync_detailed(client=client)
    assert refused.value.status_code == 302  # to /login: requests would follow it to a 200 HTML page
    assert b"/login?next=" in refused.value.content and refused.value.content.startswith(b"<!doctype html>")
    answered = api(generated, "account.get_account").sync_detailed(client=json_client(generated, base, token))
    assert answered.status_code == 200 and answered.parsed.data.token.tier == generated.models.TokenInfoTier.WRITE


def test_generated_models_read_an_answer_with_fields_added_later(generated):
    """Answers are open in the document, so a model generated today keeps what a later
    release adds instead of refusing or silently losing it."""
    models = generated.models
    later = {
        "data": {"id": 7, "title": "Launch party", "starts_at": "2026-09-01T16:00:00Z",
                 "ends_at": "2026-09-01T21:00:00Z", "venue": "Rooftop", "status": "published",
                 "created_at": "2026-05-04T09:12:30Z", "updated_at": "2026-05-04T09:12:30Z", "capacity": 300},
        "links": {"self": "/admin/events/7"},
    }
    envelope = models.EventEnvelope.from_dict(later)
    assert envelope.data.id == 7
    assert envelope.data.additional_properties == {"capacity": 300}
    assert envelope.additional_properties == {"links": {"self": "/admin/events/7"}}
    page = models.EventPage.from_dict({"data": [later["data"], {"id": 8, "deleted": True,
                                                                "deleted_at": "2026-05-05T10:00:00Z",
                                                                "reason": "duplicate"}],
                                       "meta": {"page": 1, "per_page": 25, "total": 2, "pages": 1}})
    assert isinstance(page.data[0], models.Event) and isinstance(page.data[1], models.Tombstone)
    assert page.data[1].additional_properties == {"reason": "duplicate"}
    assert page.meta.additional_properties == {"pages": 1}
