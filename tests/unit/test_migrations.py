"""The migrations form one line of history with one head."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

import usetix

MIGRATIONS = Path(usetix.__file__).parent / "migrations"
# Alembic's own table, and what the models declare.


def test_one_head_and_a_single_line_of_history():
    script = ScriptDirectory(str(MIGRATIONS))
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None  # the initial migration
    assert all(not r.is_merge_point for r in revisions)
