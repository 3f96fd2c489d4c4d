"""Alembic environment: URL comes from the Config built in ivr.storage.db."""

from __future__ import annotations

from alembic import context

from ivr.storage import (
    auth_tables,  # noqa: F401  (users, api tokens, web sessions)
    outbox_tables,  # noqa: F401  (outbox + contact events)
    tables,  # noqa: F401  (registers the tables on the metadata)
)
from ivr.storage.db import make_engine
from ivr.storage.tables import metadata

config = context.config


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(str(config.get_main_option("sqlalchemy.url")))
    with engine.connect() as connection:
        # render_as_batch: SQLite cannot ALTER most things; batch mode copies tables.
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
