"""The README's "At the door" curl block, run as it is written (with this server's address,
tokens, event and codes put in its variables), against gunicorn."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from usetix.database.engine import db
from usetix.database.models import Attendee, Scan

from ..helpers import issue, seeded_database
from ..servers import gunicorn

pytestmark = pytest.mark.gunicorn

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block() -> str:
    section = README.read_text().split("## At the door", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def with_values(block: str, **values: str) -> str:
    """The block with its variables' values replaced (each is set once, at its start)."""
    for name, value in values.items():
        block, found = re.subn(rf"^{name}=\S+", f"{name}={value}", block, count=1, flags=re.M)
        assert found, f"the README's block sets no {name}"
    return block


def test_the_readme_door_block_runs_as_written(tmp_path):
    with seeded_database(tmp_path, "readme_door", events=1, attendees_per_event=3) as (url, app, org):
        door = issue(app, org, "check_in", "Door A", event_ids=org.event_ids)
        office = issue(app, org, "write", "Office")
        with app.app_context():
            tickets = db.session.execute(sa.select(Attendee.id, Attendee.ticket_code).order_by(Attendee.id)).all()
        (first_id, first), (second_id, second), (lost_id, lost_code) = tickets
        hyphenated = "-".join(first[i:i + 4] for i in range(0, 24, 4)).lower()  # as a person might type it
        with gunicorn(url, workers=2, RATELIMIT_ENABLED="false") as base:
            script = with_values(readme_block(), API=f"{base}/admin", EVENT=str(org.event_ids[0]),
                                 CODE=hyphenated, OTHER=second, ATTENDEE=str(lost_id))
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                                  timeout=60, check=False,
                                  env={"PATH": "/usr/bin:/bin", "USETIX_DOOR_TOKEN": door,
                                       "USETIX_OFFICE_TOKEN": office})
        assert done.returncode == 0, done.stderr
        out = done.stdout
        # The redeem; the batch's two scans, each sent twice: its scan of the first ticket was
        # made (in September) before the redeem (now), so it takes the check-in over.
        assert out.count('"result":"admitted"') == 1 + 2 + 2
        assert '"error":"already_checked_in"' in out and '"error":"unknown_code"' in out
        assert out.count('"replayed":true') == 2  # the batch sent again
        assert '"checked_in":2,"total":3' in out  # the door display's counts
        with app.app_context():
            results = db.session.execute(sa.select(Scan.result, Scan.attendee_id, Scan.source).order_by(Scan.id)).all()
            new_code = db.session.get(Attendee, lost_id).ticket_code
        assert [tuple(row) for row in results] == [
            ("already_checked_in", first_id, "online"), ("already_checked_in", first_id, "online"),
            ("unknown_code", None, "online"), ("admitted", second_id, "batch"), ("admitted", first_id, "batch")]
        assert new_code != lost_code and f'"ticket_code":"{new_code}"' in out
        assert first not in out.replace(hyphenated, "")  # the door's answers never carry a code
