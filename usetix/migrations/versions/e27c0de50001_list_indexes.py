"""indexes for cursor pages and sync walks: each list's order and its order of change

Revision ID: e27c0de50001
Revises: d19e0a7e0001
Create Date: 2026-12-07 16:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'e27c0de50001'
down_revision = 'd19e0a7e0001'
branch_labels = None
depends_on = None


def upgrade():
    # A cursor page seeks to its position in one of these and reads per_page rows on.
    op.drop_index('ix_events_account_starts', table_name='events')
    op.create_index('ix_events_account_starts', 'events', ['account_id', 'starts_at', 'id'])
    op.create_index('ix_events_account_updated', 'events', ['account_id', 'updated_at', 'id'])
    op.drop_index('ix_attendees_event_id', table_name='attendees')
    # Every attendee query names its event: an index on the account alone only misleads
    # SQLite's planner into reading all of the account's attendees for one event's list.
    op.drop_index('ix_attendees_account_id', table_name='attendees')
    op.create_index('ix_attendees_event_id_id', 'attendees', ['event_id', 'id'])
    op.create_index('ix_attendees_event_updated', 'attendees', ['event_id', 'updated_at', 'id'])
    op.create_index('ix_tombstones_account_type_event_deleted', 'tombstones',
                    ['account_id', 'object_type', 'event_id', 'deleted_at', 'object_id'])


def downgrade():
    op.drop_index('ix_tombstones_account_type_event_deleted', table_name='tombstones')
    op.drop_index('ix_attendees_event_updated', table_name='attendees')
    op.drop_index('ix_attendees_event_id_id', table_name='attendees')
    op.create_index('ix_attendees_account_id', 'attendees', ['account_id'])
    op.create_index('ix_attendees_event_id', 'attendees', ['event_id'])
    op.drop_index('ix_events_account_updated', table_name='events')
    op.drop_index('ix_events_account_starts', table_name='events')
    op.create_index('ix_events_account_starts', 'events', ['account_id', 'starts_at'])
