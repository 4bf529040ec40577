"""lots: a live-lots FIFO index per wallet; no (expires_at, remaining) index

Redemptions read a wallet's lots earliest-expiry first, ``remaining > 0``. With the old
(account_id, expires_at) index every hold stepped over all the wallet's spent lots; the new
index is partial (live lots only) on PostgreSQL and SQLite, and carries ``id`` for the tie-break.
It is created before the old one is dropped: MariaDB needs an index on account_id for the
foreign key at every moment.

``ix_lots_due`` (expires_at, remaining) goes: ``ix_lots_live`` serves every date-range query,
expiry walks wallets in account order, and an index holding ``remaining`` had an entry moved
by every hold and every expired lot (half of an expiry batch's page writes on SQLite).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

LIVE = sa.text('remaining > 0')


def upgrade() -> None:
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.create_index('ix_lots_fifo', ['account_id', 'expires_at', 'id'], unique=False,
                              sqlite_where=LIVE, postgresql_where=LIVE)
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_index('ix_lots_account')
        batch_op.drop_index('ix_lots_due')


def downgrade() -> None:
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.create_index('ix_lots_account', ['account_id', 'expires_at'], unique=False)
        batch_op.create_index('ix_lots_due', ['expires_at', 'remaining'], unique=False)
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_index('ix_lots_fifo')
