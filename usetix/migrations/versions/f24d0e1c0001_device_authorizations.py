"""device authorizations: scanners paired with the OAuth 2.0 device grant (RFC 8628), the
token each was issued, and audit records of a pairing before its token exists (issue 24)

Revision ID: f24d0e1c0001
Revises: f23d00250001
Create Date: 2026-12-07 19:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f24d0e1c0001'
down_revision = 'f23d00250001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'device_authorizations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_code_digest', sa.String(length=64), nullable=False),
        sa.Column('user_code', sa.String(length=8), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('scope', sa.String(length=100), nullable=True),
        sa.Column('device_name', sa.String(length=64), nullable=False),
        sa.Column('requested_from', sa.String(length=64), nullable=True),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=10), server_default='pending', nullable=False),
        sa.Column('interval', sa.Integer(), server_default='5', nullable=False),
        sa.Column('last_polled_at', sa.DateTime(), nullable=True),
        sa.Column('account_id', sa.Integer(), nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('event_ids', sa.Text(), nullable=True),
        sa.Column('token_expires_at', sa.DateTime(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'approved', 'denied', 'issued')",
                           name=op.f('ck_device_authorizations_status')),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_device_authorizations_account_id_accounts')),
        sa.ForeignKeyConstraint(['decided_by_id'], ['admins.id'],
                                name=op.f('fk_device_authorizations_decided_by_id_admins')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_device_authorizations')),
        sa.UniqueConstraint('device_code_digest', name=op.f('uq_device_authorizations_device_code_digest')),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_device_authorizations_user_code', 'device_authorizations', ['user_code', 'expires_at'])
    op.create_index(op.f('ix_device_authorizations_account_id'), 'device_authorizations', ['account_id'])
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('device_authorization_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(op.f('uq_api_tokens_device_authorization_id'), ['device_authorization_id'])
        batch_op.create_foreign_key(op.f('fk_api_tokens_device_authorization_id_device_authorizations'),
                                    'device_authorizations', ['device_authorization_id'], ['id'])
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('token_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('token_description', existing_type=sa.String(length=100), nullable=True)
        batch_op.alter_column('token_tier', existing_type=sa.String(length=10), nullable=True)


def downgrade():
    op.execute("DELETE FROM audit_events WHERE token_id IS NULL")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('token_tier', existing_type=sa.String(length=10), nullable=False)
        batch_op.alter_column('token_description', existing_type=sa.String(length=100), nullable=False)
        batch_op.alter_column('token_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_api_tokens_device_authorization_id_device_authorizations'),
                                 type_='foreignkey')
        batch_op.drop_constraint(op.f('uq_api_tokens_device_authorization_id'), type_='unique')
        batch_op.drop_column('device_authorization_id')
    op.drop_index(op.f('ix_device_authorizations_account_id'), table_name='device_authorizations')
    op.drop_index('ix_device_authorizations_user_code', table_name='device_authorizations')
    op.drop_table('device_authorizations')
