"""approval_slots: a rule's cap guarded by unique slots; approval_instances.finished_at

A rule's ``max_per`` cap was a count of earlier awards read before the insert, and concurrent
approvals all passed it (3 awards of a once-a-month rule on PostgreSQL). Each capped award now
takes a unique (employee, rule, period, n) row. ``finished_at`` keeps the approval's finish time,
whose period the cap counts in, for the detail fetch that comes later.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'approval_slots',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('employee_id', ID, nullable=False),
        sa.Column('rule_key', sa.String(length=160), nullable=False),
        sa.Column('period', sa.String(length=16), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('instance_id', ID, nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['employee_id'], ['employees.id']),
        sa.ForeignKeyConstraint(['instance_id'], ['approval_instances.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('employee_id', 'rule_key', 'period', 'n', name='uq_approval_slots'),
    )
    with op.batch_alter_table('approval_slots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approval_slots_instance_id'), ['instance_id'], unique=False)
    with op.batch_alter_table('approval_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('finished_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('approval_instances', schema=None) as batch_op:
        batch_op.drop_column('finished_at')
    op.drop_table('approval_slots')  # its index goes with it (MariaDB refuses to drop an index a foreign key needs)
