"""sent_cards: cards with buttons that went out, so a decision can update every copy

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sent_cards',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('subject', sa.String(length=32), nullable=False),
        sa.Column('platform', sa.String(length=16), nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('task_id', sa.String(length=128), nullable=False),
        sa.Column('response_code', sa.String(length=256), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_sent_cards_subject'), 'sent_cards', ['subject'], unique=False)
    op.create_index(op.f('ix_sent_cards_sent_at'), 'sent_cards', ['sent_at'], unique=False)


def downgrade() -> None:
    op.drop_table('sent_cards')
