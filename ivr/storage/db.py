"""Engine factory and schema migration entry points (Alembic, run from code)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ivr.domain.ports import PortError

T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL and enforced foreign keys, files get their folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # The DB is used from worker threads (asyncio.to_thread): allow that.
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # No pre-ping: it costs a round trip per checkout; repositories retry once on a
    # connection the server dropped instead (see _SqlAdapter._run).
    kwargs.setdefault("pool_pre_ping", False)
    return create_engine(url, **kwargs)


_READ_TWINS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def read_engine(engine: Engine) -> Engine:
    """The engine for one-statement reads: on PostgreSQL an autocommit twin on the same
    database, made once per engine and disposed with it.

    On PostgreSQL a transaction makes a one-query read three round trips (BEGIN, the
    query, the pool's ROLLBACK on return): the caller-ID lookup's p50 was 1.6-2.5 ms
    against 0.45 ms at 10 M customers on this 2-core machine, and a screen-pop is about
    ten such reads. A separate engine, not ``execution_options`` on the shared one,
    because the shared pool then switches the isolation level on every checkout and
    back on return (p50 0.6-0.9 ms). Only reads that need no snapshot across statements
    belong here. SQLite's transactions cost no round trip, so it keeps the one engine.
    """
    if engine.dialect.name == "sqlite":
        return engine
    twin = _READ_TWINS.get(engine)
    if twin is None:
        twin = create_engine(engine.url, isolation_level="AUTOCOMMIT",
                             pool_reset_on_return=None, pool_pre_ping=False)
        _READ_TWINS[engine] = twin
        # The twin's connections would outlive a disposed engine (tests make many).
        event.listen(engine, "engine_disposed", lambda _conn: twin.dispose())
    return twin


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


class SyncStore:
    """Base of the stores written as ``*_sync`` methods (CLI, tests) with async twins
    for the node: ``_run`` takes one to a thread, ``_guard`` turns any SQLAlchemy error
    into the port's one named error."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except SQLAlchemyError as exc:
            raise PortError(f"database error: {type(exc).__name__}: {exc}".splitlines()[0]
                            ) from exc
