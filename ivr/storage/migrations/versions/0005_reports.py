"""reports: agent wait/talk times and CSAT on contacts, day/hour report rollups, timeline events

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("queue_wait_s", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("talk_s", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("csat", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("csat_comment", sa.Text(), nullable=True))
        # Repeat contacts: "this number called in the 7 days before" is a range probe.
        batch.create_index("ix_contacts_caller_started", ["caller", "started_at"])
    with op.batch_alter_table("contact_events") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=24), server_default="message",
                                   nullable=False))
    op.create_table(
        "report_rollups",
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("start", "hours", "kind", "key",
                                name=op.f("pk_report_rollups")),
    )
    op.create_table(
        "report_buckets",
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("start", "hours", name=op.f("pk_report_buckets")),
    )


def downgrade() -> None:
    op.drop_table("report_buckets")
    op.drop_table("report_rollups")
    with op.batch_alter_table("contact_events") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_index("ix_contacts_caller_started")
        batch.drop_column("csat_comment")
        batch.drop_column("csat")
        batch.drop_column("talk_s")
        batch.drop_column("queue_wait_s")
