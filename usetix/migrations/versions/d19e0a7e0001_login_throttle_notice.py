"""the login-throttle notice: refused logins per admin

Revision ID: d19e0a7e0001
Revises: d19a11fe0001
Create Date: 2026-12-07 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd19e0a7e0001'
down_revision = 'd19a11fe0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('admins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('throttled_logins', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_throttled_login_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('admins', schema=None) as batch_op:
        batch_op.drop_column('last_throttled_login_at')
        batch_op.drop_column('throttled_logins')
