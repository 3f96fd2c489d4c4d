"""pin_failures: wrong PINs per customer across calls (lockout survives restarts)

Revision ID: 0009
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"  # re-chained at merge: callbacks (0007) landed first
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pin_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pin_failures_customer_at", "pin_failures", ["customer_id", "at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_pin_failures_customer_at", table_name="pin_failures")
    op.drop_table("pin_failures")
