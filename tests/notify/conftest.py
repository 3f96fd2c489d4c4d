"""Fixtures: a real sandbox server, a migrated SQLite file, the webhook app on HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from twilio_helpers import ACCOUNT, TOKEN, Sandbox

from ivr.notify.outbox import OutboxStore
from ivr.storage.db import make_engine
from ivr.testing.twilio_sandbox import ServerThread, create_sandbox_app
from ivr.web.twilio_routes import twilio_router


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    lines: list[str] = []
    app = create_sandbox_app(account_sid=ACCOUNT, auth_token=TOKEN, callback_delay_s=0.02,
                             log=lines.append)
    with ServerThread(app) as srv:
        yield Sandbox(srv.url, lines)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """SQLite file and PostgreSQL (tests/conftest.py), migrated by 0001 + 0002."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> OutboxStore:
    return OutboxStore(engine)


@pytest.fixture
def webhooks(store: OutboxStore) -> Iterator[str]:
    """The webhook router served over real HTTP; yields its base URL (also the public one)."""
    app = FastAPI()
    srv = ServerThread(app).start()
    # The public URL is only known once the port is bound; routes read it at build time.
    app.include_router(twilio_router(store=store, auth_token=TOKEN, public_base_url=srv.url))
    try:
        yield srv.url
    finally:
        srv.stop()
