"""Fixtures of the web tests: a seeded SQLite database, the real web app, signed-in clients.

The core is ``ivr.testing.web.web_core``: the real SQL adapters, hub and metrics of a
node without the intent matcher, so these tests start in milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from web_helpers import BASE, LEGACY_TOKEN

from ivr.config import Settings, load_settings
from ivr.contact_centre.service import ContactCentre
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing.fake_ami import FakeAmiServer
from ivr.testing.live_centre import fake_centre
from ivr.testing.web import WebCore, add_demo_users, cheap_passwords, web_core
from ivr.web.app import create_web_app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine)
    engine.dispose()
    return replace(load_settings(env_file=None, environ={}), database_url=url,
                   data_dir=tmp_path, api_token=LEGACY_TOKEN)


@pytest.fixture
def core(settings: Settings) -> Iterator[WebCore]:
    built = web_core(settings)
    add_demo_users(built.engine, cheap_passwords())
    yield built
    built.engine.dispose()


@pytest.fixture
def web(core: WebCore) -> FastAPI:
    return create_web_app(core, passwords=cheap_passwords())


@pytest.fixture
async def client(web: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        yield c


@pytest.fixture
async def live(core: WebCore) -> AsyncIterator[tuple[ContactCentre, FakeAmiServer]]:
    """A running ContactCentre on the test database whose Asterisk is a FakeAmiServer."""
    async with fake_centre(core.engine, core.settings) as running:
        yield running


@pytest.fixture
def centre_web(core: WebCore, live: tuple[ContactCentre, FakeAmiServer]) -> FastAPI:
    """The web app of a node with live contact-centre state (``/api/queues`` etc.)."""
    return create_web_app(core, passwords=cheap_passwords(), centre=live[0])


@pytest.fixture
async def centre_client(centre_web: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=centre_web),
                                 base_url=BASE) as c:
        yield c
