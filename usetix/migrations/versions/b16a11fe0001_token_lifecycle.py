"""token lifecycle: expiry, usage, leak notices

Revision ID: b16a11fe0001
Revises: 5eaf70c73f78
Create Date: 2026-12-01 08:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b16a11fe0001'
down_revision = '5eaf70c73f78'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_used_address', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_used_agent', sa.String(length=255), nullable=True))
        # Existing rows start at 0 uses: their past requests were never counted.
        batch_op.add_column(sa.Column('use_count', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('admins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leak_notices_dismissed_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('admins', schema=None) as batch_op:
        batch_op.drop_column('leak_notices_dismissed_at')

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('use_count')
        batch_op.drop_column('last_used_agent')
        batch_op.drop_column('last_used_address')
        batch_op.drop_column('expires_at')
