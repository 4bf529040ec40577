"""gift-card code pools (encrypted at rest) and donation items' charity

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 21:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('items') as batch:
        batch.add_column(sa.Column('charity', sa.String(length=64), server_default='', nullable=False))
    op.create_table(
        'gift_codes',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('sku', sa.String(length=64), nullable=False),
        sa.Column('secret', sa.Text(), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('batch', sa.Integer(), nullable=False),
        sa.Column('added_at', sa.DateTime(), nullable=False),
        sa.Column('added_by', ID, nullable=True),
        sa.Column('order_id', ID, nullable=True),
        sa.Column('issued_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['added_by'], ['employees.id']),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('sku', 'fingerprint'),
    )
    op.create_index('ix_gift_codes_free', 'gift_codes', ['sku', 'order_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_table('gift_codes')
    with op.batch_alter_table('items') as batch:
        batch.drop_column('charity')
