"""compute: task groups are claimed by their first submitter, so two users cannot both take a new one;
submission ids are forgotten after a while (an index to find the old ones)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import beamlink.service.db.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_groups",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", beamlink.service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_task_groups_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_groups")),
    )
    op.create_index("ix_task_submissions_created", "task_submissions", ["created_at"], unique=False)
    # Every existing group becomes its submitter's. A group holding two users' tasks (possible only
    # before groups were checked) goes to one of them.
    op.execute(
        "INSERT INTO task_groups (id, owner_id, created_at) "
        "SELECT task_group_id, MIN(owner_id), MIN(created_at) FROM tasks GROUP BY task_group_id"
    )


def downgrade() -> None:
    op.drop_table("task_groups")
    op.drop_index("ix_task_submissions_created", table_name="task_submissions")
