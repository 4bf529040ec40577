"""catalog in the database: items get name, kind, cost, limits…; per-employee redemption counts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:20:00

The rows of the old ``items`` table held only a sku's stock; ``db upgrade`` fills in the rest from the
configuration's ``[[catalog]]`` once, while no item has a name yet (storage/catalog.py ``seed_from_config``).
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

ITEM_COLUMNS = (
    sa.Column('name', sa.String(length=128), server_default='', nullable=False),
    sa.Column('kind', sa.String(length=16), server_default='goods', nullable=False),
    sa.Column('description', sa.String(length=500), server_default='', nullable=False),
    sa.Column('cost', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('limit_count', sa.Integer(), nullable=True),
    sa.Column('limit_period', sa.String(length=16), server_default='', nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('sort', sa.Integer(), server_default='0', nullable=False),
    sa.Column('leave_days', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table('items') as batch:
        for column in ITEM_COLUMNS:
            batch.add_column(column)
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('limit_key', sa.String(length=16), server_default='', nullable=False))
    op.create_table(
        'redemption_counts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('employee_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('sku', sa.String(length=64), nullable=False),
        sa.Column('period', sa.String(length=16), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['employee_id'], ['employees.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('employee_id', 'sku', 'period'),
    )


def downgrade() -> None:
    op.drop_table('redemption_counts')
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('limit_key')
    with op.batch_alter_table('items') as batch:
        for column in reversed(ITEM_COLUMNS):
            batch.drop_column(column.name)
