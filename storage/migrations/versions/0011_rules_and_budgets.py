"""earning rules as versioned data, per-manager budgets

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 22:00:00

The configuration's ``[[rules]]`` are loaded into ``rule_versions`` right after this revision by ``db upgrade``
(or the first start of any process), which also gives earlier approvals and cap slots the new rule ids
(storage/rules.py ``seed_from_config``): the rules live in the configuration, which a migration cannot read.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'rule_versions',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('valid_from', sa.DateTime(), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('platform', sa.String(length=16), nullable=False),
        sa.Column('template', sa.String(length=128), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=True),
        sa.Column('base_points', sa.BigInteger(), nullable=True),
        sa.Column('tiers', sa.String(length=500), nullable=False),
        sa.Column('field', sa.String(length=128), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=False),
        sa.Column('max_count', sa.Integer(), nullable=True),
        sa.Column('max_period', sa.String(length=16), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('changed_by', ID, nullable=True),
        sa.Column('changed_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['changed_by'], ['employees.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('rule_id', 'version'),
    )
    op.create_index(op.f('ix_rule_versions_rule_id'), 'rule_versions', ['rule_id'], unique=False)
    op.create_table(
        'manager_budgets',
        sa.Column('employee_id', ID, autoincrement=False, nullable=False),
        sa.Column('monthly', sa.BigInteger(), nullable=True),
        sa.Column('rollover', sa.Boolean(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('updated_by', ID, nullable=True),
        sa.ForeignKeyConstraint(['employee_id'], ['employees.id']),
        sa.ForeignKeyConstraint(['updated_by'], ['employees.id']),
        sa.PrimaryKeyConstraint('employee_id'),
    )
    with op.batch_alter_table('approval_instances') as batch:
        batch.add_column(sa.Column('rule_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('rule_version', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('approval_instances') as batch:
        batch.drop_column('rule_version')
        batch.drop_column('rule_id')
    op.drop_table('manager_budgets')
    op.drop_table('rule_versions')
