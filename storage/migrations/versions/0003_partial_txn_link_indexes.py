"""ledger_txns: the reverses/related links indexed only where they are set

Most transactions (awards, holds, expiries) link to nothing, yet each wrote a NULL entry into
both link indexes: two more pages in every commit of the redemption hot path. Partial indexes
(PostgreSQL and SQLite) keep only the rows that link; ``x = :id`` lookups still use them. MariaDB
keeps its plain indexes, which its foreign keys need anyway.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

LINKS = ('reverses_txn_id', 'related_txn_id')


def _rebuild(partial: bool) -> None:
    if op.get_bind().dialect.name == 'mysql':
        return
    for column in LINKS:
        name = f'ix_ledger_txns_{column}'
        where = sa.text(f'{column} IS NOT NULL') if partial else None
        with op.batch_alter_table('ledger_txns', schema=None) as batch_op:
            batch_op.drop_index(name)
        with op.batch_alter_table('ledger_txns', schema=None) as batch_op:
            batch_op.create_index(name, [column], unique=False, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    _rebuild(partial=True)


def downgrade() -> None:
    _rebuild(partial=False)
