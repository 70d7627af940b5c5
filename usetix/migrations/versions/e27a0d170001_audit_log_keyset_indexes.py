"""the audit log's pages from a position: an index per filter, in (created_at, id) order

Revision ID: e27a0d170001
Revises: e27c0de50001
Create Date: 2026-12-07 16:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e27a0d170001'
down_revision = 'e27c0de50001'
branch_labels = None
depends_on = None

HAS_ADMIN = sa.text("admin_id IS NOT NULL")


def upgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_account_created')
        batch_op.create_index('ix_audit_events_account_created_id', ['account_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_account_action_created_id', ['account_id', 'action', 'created_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_audit_events_token_created_id', ['token_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_admin_created_id', ['admin_id', 'created_at', 'id'], unique=False,
                              postgresql_where=HAS_ADMIN, sqlite_where=HAS_ADMIN)


def downgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_admin_created_id', postgresql_where=HAS_ADMIN, sqlite_where=HAS_ADMIN)
        batch_op.drop_index('ix_audit_events_token_created_id')
        batch_op.drop_index('ix_audit_events_account_action_created_id')
        batch_op.drop_index('ix_audit_events_account_created_id')
        batch_op.create_index('ix_audit_events_account_created', ['account_id', 'created_at'], unique=False)
