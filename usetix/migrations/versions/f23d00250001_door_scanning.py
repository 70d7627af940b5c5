"""door scanning: a ticket code on every attendee (existing ones get one here), the codes
replaced by a reissue, and the history of every scan (issue 23)

Revision ID: f23d00250001
Revises: e22a11fe0001
Create Date: 2026-12-07 19:00:00.000000

"""
import secrets

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f23d00250001'
down_revision = 'e22a11fe0001'
branch_labels = None
depends_on = None

# usetix/core/ticket_codes.py as it is at this revision (a migration does not import the app).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 24


def new_code():
    number = secrets.randbits(LENGTH * 5)
    return "".join(ALPHABET[(number >> shift) & 31] for shift in range(LENGTH * 5 - 5, -1, -5))


def upgrade():
    with op.batch_alter_table('attendees', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ticket_code', sa.String(length=LENGTH), nullable=True))
    connection = op.get_bind()
    attendees = sa.table('attendees', sa.column('id', sa.Integer), sa.column('ticket_code', sa.String))
    ids = connection.execute(sa.select(attendees.c.id)).scalars().all()
    if ids:
        connection.execute(sa.update(attendees).where(attendees.c.id == sa.bindparam('attendee_id'))
                           .values(ticket_code=sa.bindparam('code')),
                           [{'attendee_id': attendee_id, 'code': new_code()} for attendee_id in ids])
    with op.batch_alter_table('attendees', schema=None) as batch_op:
        batch_op.alter_column('ticket_code', existing_type=sa.String(length=LENGTH), nullable=False)
        batch_op.create_unique_constraint('uq_attendees_account_ticket_code', ['account_id', 'ticket_code'])

    op.create_table('reissued_ticket_codes',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('account_id', sa.Integer(), nullable=False),
                    sa.Column('attendee_id', sa.Integer(), nullable=False),
                    sa.Column('code', sa.String(length=LENGTH), nullable=False),
                    sa.Column('reissued_at', sa.DateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                            name=op.f('fk_reissued_ticket_codes_account_id_accounts')),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_reissued_ticket_codes')),
                    sa.UniqueConstraint('account_id', 'code', name='uq_reissued_ticket_codes_account_code'))
    op.create_table('scans',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('account_id', sa.Integer(), nullable=False),
                    sa.Column('event_id', sa.Integer(), nullable=False),
                    sa.Column('attendee_id', sa.Integer(), nullable=True),
                    sa.Column('token_id', sa.Integer(), nullable=False),
                    sa.Column('result', sa.String(length=20), nullable=False),
                    sa.Column('code_tail', sa.String(length=4), nullable=False),
                    sa.Column('code_digest', sa.String(length=64), nullable=False),
                    sa.Column('nonce', sa.String(length=255), nullable=True),
                    sa.Column('source', sa.String(length=10), nullable=False),
                    sa.Column('scanned_at', sa.DateTime(), nullable=False),
                    sa.Column('received_at', sa.DateTime(), nullable=False),
                    sa.Column('updated_at', sa.DateTime(), nullable=False),
                    sa.Column('checked_in_at', sa.DateTime(), nullable=True),
                    sa.CheckConstraint("result IN ('admitted', 'already_checked_in', 'ticket_reissued', "
                                       "'event_cancelled', 'wrong_event', 'unknown_code')",
                                       name=op.f('ck_scans_result')),
                    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_scans_account_id_accounts')),
                    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], name=op.f('fk_scans_token_id_api_tokens')),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_scans')),
                    sa.UniqueConstraint('account_id', 'nonce', name='uq_scans_account_nonce'),
                    sqlite_autoincrement=True)
    op.create_index('ix_scans_event_id', 'scans', ['event_id', 'id'], unique=False)
    op.create_index('ix_scans_event_result_id', 'scans', ['event_id', 'result', 'id'], unique=False)
    op.create_index('ix_scans_event_updated', 'scans', ['event_id', 'updated_at', 'id'], unique=False)
    op.create_index('ix_scans_attendee_result', 'scans', ['attendee_id', 'result'], unique=False)


def downgrade():
    op.drop_index('ix_scans_attendee_result', table_name='scans')
    op.drop_index('ix_scans_event_updated', table_name='scans')
    op.drop_index('ix_scans_event_result_id', table_name='scans')
    op.drop_index('ix_scans_event_id', table_name='scans')
    op.drop_table('scans')
    op.drop_table('reissued_ticket_codes')
    with op.batch_alter_table('attendees', schema=None) as batch_op:
        batch_op.drop_constraint('uq_attendees_account_ticket_code', type_='unique')
        batch_op.drop_column('ticket_code')
