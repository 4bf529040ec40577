"""earned_totals: per-employee earned points by local day, week, month, quarter and year

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 22:10:00

Filled from the ledger right after this revision by ``db upgrade`` (``flask rebuild-totals`` does it by hand,
resumably): the periods are local, and the time zone is in the configuration, which a migration cannot read.
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'earned_totals',
        sa.Column('period', sa.String(length=12), nullable=False),
        sa.Column('employee_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False,
                  nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['employee_id'], ['employees.id']),
        sa.PrimaryKeyConstraint('period', 'employee_id'),
    )
    op.create_index('ix_earned_totals_board', 'earned_totals', ['period', 'points', 'employee_id'], unique=False)
    op.create_index('ix_employees_status', 'employees', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_employees_status', 'employees')
    op.drop_table('earned_totals')
