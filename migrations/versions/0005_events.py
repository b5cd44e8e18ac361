"""event log of jobs and generations (server-sent events)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:10:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMINAL = {"jobs": ("succeeded", "failed", "canceled"), "generations": ("succeeded", "failed")}


def upgrade() -> None:
    events = op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_subject_id", "events", ["subject_id", "id"], unique=False)
    # Jobs and generations that ended before the log existed get their end event, so their streams end too.
    connection = op.get_bind()
    now = datetime.now(UTC)
    for table, statuses in TERMINAL.items():
        rows = sa.table(table, sa.column("id"), sa.column("tenant_id"), sa.column("status"))
        ended = connection.execute(
            sa.select(rows.c.id, rows.c.tenant_id, rows.c.status).where(rows.c.status.in_(statuses))
        )
        values = [
            {
                "tenant_id": tenant_id,
                "subject_id": subject_id,
                "type": "end",
                "data": {"status": status},
                "created_at": now,
            }
            for subject_id, tenant_id, status in ended
        ]
        if values:
            op.bulk_insert(events, values)


def downgrade() -> None:
    op.drop_index("ix_events_subject_id", table_name="events")
    op.drop_table("events")
