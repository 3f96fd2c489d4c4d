"""agents, their skills, load splits; who answered a contact

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("interface", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), server_default="", nullable=False),
        sa.Column("region", sa.String(length=64), server_default="", nullable=False),
        sa.Column("centre", sa.String(length=64), server_default="", nullable=False),
        sa.Column("centre_kind", sa.String(length=8), server_default="own", nullable=False),
        sa.Column("languages", sa.String(length=64), server_default="", nullable=False),
        sa.Column("logged_in", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("paused", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("pause_reason", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "centre_kind IN ('own', 'partner')", name=op.f("ck_agents_centre_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("code", name=op.f("uq_agents_code")),
        sa.UniqueConstraint("interface", name=op.f("uq_agents_interface")),
    )
    op.create_table(
        "agent_skills",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("proficiency", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "proficiency >= 1 AND proficiency <= 5",
            name=op.f("ck_agent_skills_proficiency_range")),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_skills_agent_id_agents"),
            ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agent_id", "skill", name=op.f("pk_agent_skills")),
    )
    op.create_table(
        "load_splits",
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("own_pct", sa.Integer(), nullable=False),
        sa.Column("partner_pct", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "own_pct >= 0 AND partner_pct >= 0 AND own_pct + partner_pct = 100",
            name=op.f("ck_load_splits_sums_to_100")),
        sa.PrimaryKeyConstraint("skill", name=op.f("pk_load_splits")),
    )
    # Batch mode: SQLite cannot add a foreign key in place, so the table is copied.
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("agent_interface", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_contacts_agent_id_agents"), "agents", ["agent_id"], ["id"],
            ondelete="SET NULL")
        # Repeat-caller routing asks "who last answered this customer about this intent".
        batch_op.create_index(
            "ix_contacts_customer_intent", ["customer_id", "intent", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_customer_intent")
        batch_op.drop_constraint(batch_op.f("fk_contacts_agent_id_agents"), type_="foreignkey")
        batch_op.drop_column("agent_interface")
        batch_op.drop_column("agent_id")
    op.drop_table("load_splits")
    op.drop_table("agent_skills")
    op.drop_table("agents")
