"""search: the portal facets an index declares

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 15:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing indexes get no declared facets (the portal keeps guessing theirs).
    op.add_column(
        "search_indexes", sa.Column("facets", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
    )


def downgrade() -> None:
    with op.batch_alter_table("search_indexes") as batch:
        batch.drop_column("facets")
