"""callbacks in time slots: the callback with its contact context and dial lease; places
booked per skill and slot

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("customer_name", sa.String(length=128), server_default="", nullable=False),
        sa.Column("question", sa.Text(), server_default="", nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("transcript", sa.JSON(), nullable=False),
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reason", sa.String(length=128), server_default="", nullable=False),
        sa.Column("slot_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slot_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("cancel_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    op.create_index("ix_callbacks_due", "callbacks", ["status", "next_attempt_at"])
    op.create_index("ix_callbacks_contact_id", "callbacks", ["contact_id"])
    op.create_index("ix_callbacks_skill_slot", "callbacks", ["skill", "slot_start"])
    op.create_table(
        "callback_slots",
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("slot_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("booked", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("booked >= 0", name=op.f("ck_callback_slots_booked_not_negative")),
        sa.PrimaryKeyConstraint("skill", "slot_start", name=op.f("pk_callback_slots")),
    )


def downgrade() -> None:
    op.drop_table("callback_slots")
    op.drop_index("ix_callbacks_skill_slot", table_name="callbacks")
    op.drop_index("ix_callbacks_contact_id", table_name="callbacks")
    op.drop_index("ix_callbacks_due", table_name="callbacks")
    op.drop_table("callbacks")
