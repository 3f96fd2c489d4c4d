"""Shared fixtures: a real PostgreSQL server (started once per session) and SQLite files."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.testing.postgres import PostgresServer, start_postgres

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL from Debian's packages; fails (not skips) if it cannot start."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database(f"kanaal_test_{next(_db_counter)}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kanaal.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both supported databases, migrated by Alembic to head."""
    from ivr.storage.db import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


@pytest.fixture(scope="session", autouse=True)
def shared_understanding() -> Iterator[object]:
    """Every App this session builds gets the intent matcher trained once per catalogue
    (ivr.testing.shared_models): fitting it took 25-45 s per App on CI."""
    import ivr.app
    from ivr.testing.shared_models import SharedUnderstanding

    shared = SharedUnderstanding(ivr.app.build_understanding)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ivr.app, "build_understanding", shared)
        yield shared


@pytest.fixture(scope="session", autouse=True)
def shared_whisper_models() -> Iterator[object]:
    """Every recogniser this session builds shares one loaded Whisper model per model
    directory and options (ivr.testing.shared_models): ~2 s per node otherwise."""
    import faster_whisper

    from ivr.testing.shared_models import SharedWhisperModels

    shared = SharedWhisperModels(faster_whisper.WhisperModel)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(faster_whisper, "WhisperModel", shared)
        yield shared
