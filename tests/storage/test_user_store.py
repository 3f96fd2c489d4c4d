"""User store and desk queries on both databases (SQLite file and real PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ivr.storage.db import make_engine
from ivr.storage.desk import SqlDeskStore
from ivr.storage.users import SqlUserStore, UserError


def test_users_sessions_and_tokens(db_url: str) -> None:
    """Sessions expire and die with password changes; tokens die when revoked."""
    engine = make_engine(db_url)
    store = SqlUserStore(engine)
    user = store.add_user("Kim", "hash-1", "supervisor")
    assert user.username == "kim" and user.active
    with pytest.raises(UserError):
        store.add_user("kim", "hash-2", "agent")
    with pytest.raises(UserError):
        store.add_user("x", "hash", "root")
    value, csrf = store.create_session(user.id, timedelta(hours=1))
    found = store.session(value)
    assert found is not None and found.csrf == csrf and found.user.role == "supervisor"
    expired, _ = store.create_session(user.id, timedelta(seconds=-1))
    assert store.session(expired) is None and store.purge_expired() == 1
    token = store.create_token("kim", "ci")
    assert store.token_user(token) is not None and store.token_user(token + "x") is None
    assert store.revoke_token("kim", "ci") == 1 and store.token_user(token) is None
    assert store.set_password("kim", "hash-3") and store.session(value) is None
    engine.dispose()


def test_desk_store_probe_backlog_and_wrapup(db_url: str) -> None:
    """The health probe returns the schema revision; wrap-up of an unknown contact is False."""
    engine = make_engine(db_url)
    desk = SqlDeskStore(engine)
    assert desk.probe() is not None
    assert desk.outbox_backlog() == {"pending": 0, "sending": 0}
    assert desk.save_wrapup("no-such-contact", "resolved", None) is False
    assert desk.recent_contacts() == []
    engine.dispose()
