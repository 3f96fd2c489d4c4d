"""managed outages: regions, status, source, author; SMS subscribers

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("regions", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("status", sa.String(length=16), server_default="active",
                                      nullable=False))
        batch_op.add_column(sa.Column("source", sa.String(length=16),
                                      server_default="supervisor", nullable=False))
        batch_op.add_column(sa.Column("created_by", sa.String(length=64), server_default="",
                                      nullable=False))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("detail", sa.JSON(), nullable=True))
        batch_op.create_index("ix_outages_status", ["status"], unique=False)
    # Existing (seeded) rows cover their one region.
    outages = sa.table("outages", sa.column("id", sa.Integer()), sa.column("region", sa.String()),
                       sa.column("regions", sa.JSON()))
    conn = op.get_bind()
    for row in conn.execute(sa.select(outages.c.id, outages.c.region)).all():
        conn.execute(outages.update().where(outages.c.id == row.id)
                     .values(regions=[row.region]))
    with op.batch_alter_table("outages", schema=None) as batch_op:
        batch_op.alter_column("regions", existing_type=sa.JSON(), nullable=False)
    op.create_table(
        "outage_subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outage_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["outage_id"], ["outages.id"],
                                name=op.f("fk_outage_subscribers_outage_id_outages"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_subscribers")),
        sa.UniqueConstraint("outage_id", "number",
                            name=op.f("uq_outage_subscribers_outage_number")),
    )


def downgrade() -> None:
    op.drop_table("outage_subscribers")
    with op.batch_alter_table("outages", schema=None) as batch_op:
        batch_op.drop_index("ix_outages_status")
        batch_op.drop_column("detail")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("created_by")
        batch_op.drop_column("source")
        batch_op.drop_column("status")
        batch_op.drop_column("regions")
