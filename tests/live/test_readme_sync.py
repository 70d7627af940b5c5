"""The README's "Syncing a large event" example, run as it is written, against gunicorn with
two workers while writers create, change and delete the event's attendees: once they stop,
one more sync makes the example's copy equal to the server's list."""

from __future__ import annotations

import random
import re
import threading
import time
from pathlib import Path

import pytest
import requests

from ..helpers import bearer, issue, seeded_database
from ..servers import gunicorn

pytestmark = pytest.mark.gunicorn

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The Python block of the README's "Syncing a large event" section."""
    section = README.read_text().split("### Syncing a large event", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_sync_example_keeps_an_equal_copy_while_writers_write(tmp_path):
    with seeded_database(tmp_path, "readme_sync", events=1, attendees_per_event=40) as (url, app, org):
        token = issue(app, org, "write", "readme sync")
        event_id = org.event_ids[0]
        with gunicorn(url, workers=2, RATELIMIT_ENABLED="false") as base:
            path = f"{base}/admin/events/{event_id}/attendees"
            stop = threading.Event()
            failures: list[str] = []

            def writer(seed: int) -> None:
                rng, mine = random.Random(seed), []
                with requests.Session() as session:
                    session.headers.update(bearer(token))
                    while not stop.is_set():
                        roll = rng.random()
                        if roll < 0.4 or not mine:
                            response = session.post(path, json={"name": f"w{seed}", "email": "w@example.com",
                                                                "ticket_type": "General"}, timeout=10)
                            if response.status_code == 201:
                                mine.append(response.json()["data"]["id"])
                        elif roll < 0.8:
                            response = session.patch(f"{path}/{rng.choice(mine)}", timeout=10,
                                                     json={"name": f"w{seed} {rng.random()}"})
                        else:
                            response = session.delete(f"{path}/{mine.pop(rng.randrange(len(mine)))}", timeout=10)
                        if response.status_code not in (200, 201, 204, 503):
                            failures.append(f"{response.status_code} {response.text[:200]}")

            example = readme_example()
            # The example's first part defines sync() and makes the first copy; its last line syncs again.
            setup, again = example.rsplit("\n# ... later, as often as you like:\n", 1)
            namespace = {"token": token, "base": base, "event_id": event_id}
            exec(compile(setup, "README.md", "exec"), namespace)
            writers = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
            for thread in writers:
                thread.start()
            deadline = time.monotonic() + 5
            syncs = 0
            while time.monotonic() < deadline:
                exec(compile(again, "README.md", "exec"), namespace)
                syncs += 1
            stop.set()
            for thread in writers:
                thread.join()
            exec(compile(again, "README.md", "exec"), namespace)
            assert not failures, failures[:3]
            assert syncs > 1
            source, url_ = {}, f"{path}?per_page=100"
            while url_:
                response = requests.get(url_, headers=bearer(token), timeout=10)
                source.update((row["id"], row) for row in response.json()["data"])
                following = response.links.get("next", {}).get("url")
                url_ = following and requests.compat.urljoin(response.url, following)
            assert namespace["attendees"] == source
            assert len(source) > 40 - 10
