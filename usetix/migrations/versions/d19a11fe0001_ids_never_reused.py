"""ids never reused: SQLite tables whose ids reach a client or a tombstone get AUTOINCREMENT;
token expiry in whole seconds

Without it SQLite gives the highest deleted id to the next row, so a syncing client sees a
tombstone and a live object under one id. Each table is rebuilt (Alembic's batch mode) with
its rows, ids included; the sequence starts above the highest id kept or tombstoned.
PostgreSQL's sequences never hand an id out twice: nothing to rebuild there.

Revision ID: d19a11fe0001
Revises: c14a11fe0001
Create Date: 2026-12-07 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd19a11fe0001'
down_revision = "c14a11fe0001"
branch_labels = None
depends_on = None

TABLES = ("events", "attendees", "api_tokens", "audit_events", "tombstones")
# Rows the API deletes leave a tombstone with their id: the sequence starts above those too.
TOMBSTONED = {"events": "event", "attendees": "attendee"}


def _rebuild(autoincrement):
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass
    if autoincrement:
        # Copying the rows set each sequence to the highest id kept; an event or attendee
        # deleted above it (the newest one) has its id in a tombstone, and no new row may get it.
        for table, object_type in TOMBSTONED.items():
            op.execute(f"DELETE FROM sqlite_sequence WHERE name = '{table}'")
            op.execute(f"INSERT INTO sqlite_sequence (name, seq) SELECT '{table}', "
                       f"max(coalesce((SELECT max(id) FROM {table}), 0), coalesce((SELECT max(object_id) "
                       f"FROM tombstones WHERE object_type = '{object_type}'), 0))")


def upgrade():
    _rebuild(True)
    # A token's expiry is a whole second from now on (its header and error message say so);
    # a fraction stored before is dropped, so an older token stops at the second it states.
    if op.get_bind().dialect.name == "sqlite":  # stored as text, "YYYY-MM-DD HH:MM:SS.ffffff"
        op.execute("UPDATE api_tokens SET expires_at = substr(expires_at, 1, 19) || '.000000' "
                   "WHERE expires_at IS NOT NULL")
    else:
        op.execute("UPDATE api_tokens SET expires_at = date_trunc('second', expires_at) "
                   "WHERE expires_at IS NOT NULL")


def downgrade():
    _rebuild(False)
