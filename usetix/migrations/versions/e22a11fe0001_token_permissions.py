"""token permissions: per-resource permissions and an event restriction on each token,
kept in the audit records of the token service (issue 22)

Revision ID: e22a11fe0001
Revises: e27a0d170001
Create Date: 2026-12-07 16:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e22a11fe0001'
down_revision = 'e27a0d170001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('events_permission', sa.String(length=5), server_default='read', nullable=False))
        batch_op.add_column(sa.Column('attendees_permission', sa.String(length=5), server_default='read',
                                      nullable=False))
        batch_op.add_column(sa.Column('check_in_permission', sa.String(length=5), server_default='none',
                                      nullable=False))
        batch_op.add_column(sa.Column('event_ids', sa.Text(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_api_tokens_events_permission'),
                                         "events_permission IN ('none', 'read', 'write')")
        batch_op.create_check_constraint(op.f('ck_api_tokens_attendees_permission'),
                                         "attendees_permission IN ('none', 'read', 'write')")
        batch_op.create_check_constraint(op.f('ck_api_tokens_check_in_permission'),
                                         "check_in_permission IN ('none', 'write')")
    # Existing tokens keep what they could do: a read token is the read preset (the
    # columns' defaults), a write token the write preset.
    op.execute("UPDATE api_tokens SET events_permission = 'write', attendees_permission = 'write', "
               "check_in_permission = 'write' WHERE tier = 'write'")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_permissions', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('token_event_ids', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('token_event_ids')
        batch_op.drop_column('token_permissions')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_api_tokens_check_in_permission'), type_='check')
        batch_op.drop_constraint(op.f('ck_api_tokens_attendees_permission'), type_='check')
        batch_op.drop_constraint(op.f('ck_api_tokens_events_permission'), type_='check')
        batch_op.drop_column('event_ids')
        batch_op.drop_column('check_in_permission')
        batch_op.drop_column('attendees_permission')
        batch_op.drop_column('events_permission')
