"""bindings get a status: an unbind keeps the row (unbound) so the roster cannot re-bind the account on its own;
roster ids of active employees become bindings at once, so notices reach people who never wrote to the bot

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:00:00
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

employees = sa.table('employees', sa.column('id', sa.Integer), sa.column('status', sa.String),
                     sa.column('dingtalk_userid', sa.String), sa.column('wecom_userid', sa.String))
bindings = sa.table('bindings', sa.column('employee_id', sa.Integer), sa.column('platform', sa.String),
                    sa.column('platform_user_id', sa.String), sa.column('created_at', sa.DateTime),
                    sa.column('status', sa.String), sa.column('unbound_why', sa.String))
audit = sa.table('audit_log', sa.column('action', sa.String), sa.column('target_id', sa.Integer),
                 sa.column('detail', sa.Text))


def upgrade() -> None:
    with op.batch_alter_table('bindings') as batch:
        batch.add_column(sa.Column('status', sa.String(length=16), server_default='active', nullable=False))
        batch.add_column(sa.Column('unbound_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('unbound_why', sa.String(length=16), server_default='', nullable=False))
    _bind_roster_ids(op.get_bind())


def _bind_roster_ids(conn: sa.Connection) -> None:
    """Active employees' roster ids with no binding on that platform and no unbind of that account in the
    audit log (an unbind before this revision deleted the row: the log is all that remembers it)."""
    taken = {(p, u) for p, u in conn.execute(sa.select(bindings.c.platform, bindings.c.platform_user_id))}
    has = {(e, p) for e, p in conn.execute(sa.select(bindings.c.employee_id, bindings.c.platform))}
    unbound = {(t, d.split(' ', 1)[0]) for t, d in conn.execute(
        sa.select(audit.c.target_id, audit.c.detail).where(audit.c.action == 'unbind'))}
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = []
    for emp_id, ding, wecom in conn.execute(sa.select(employees.c.id, employees.c.dingtalk_userid,
                                                      employees.c.wecom_userid).where(employees.c.status == 'active')):
        for platform, uid in (('dingtalk', ding), ('wecom', wecom)):
            if not uid or (platform, uid) in taken or (emp_id, platform) in has or (emp_id, f'{platform}:{uid}') in unbound:
                continue
            taken.add((platform, uid))
            rows.append({'employee_id': emp_id, 'platform': platform, 'platform_user_id': uid, 'created_at': now,
                         'status': 'active', 'unbound_why': ''})
    for i in range(0, len(rows), 1000):
        conn.execute(bindings.insert(), rows[i:i + 1000])


def downgrade() -> None:
    op.execute(sa.delete(bindings).where(bindings.c.status != 'active'))
    with op.batch_alter_table('bindings') as batch:
        batch.drop_column('unbound_why')
        batch.drop_column('unbound_at')
        batch.drop_column('status')
