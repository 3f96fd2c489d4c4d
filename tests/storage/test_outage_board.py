"""The outage board on SQLite and PostgreSQL: life cycle, what callers hear, subscribers,
the contact history the surge detector learns from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.domain.outages import (
    BadOutage,
    OutageConflict,
    OutageSource,
    OutageStatus,
    UnknownOutage,
    draft,
)
from ivr.storage.db import make_engine
from ivr.storage.outages import OutageChange, SqlOutageBoard
from ivr.storage.repositories import SqlKnowledgeBase

NOW = datetime.now(UTC)


async def test_life_cycle_and_what_callers_hear(db_url: str) -> None:
    """Posted -> heard in each region (case-insensitive); updated; ended -> not heard;
    ending twice is a conflict; an unknown id is not found."""
    engine = make_engine(db_url)
    board, kb = SqlOutageBoard(engine), SqlKnowledgeBase(engine)
    o = board.add_sync(draft(regions=["Utrecht", "amersfoort", "Utrecht"],
                             messages={"en": "No internet.", "nl": "Geen internet."},
                             starts_at=NOW - timedelta(minutes=1), ends_at=None, created_by="sam"))
    assert o.regions == ("Utrecht", "amersfoort") and o.status is OutageStatus.ACTIVE
    assert [x.id for x in await kb.outages("Amersfoort", NOW)] == [o.id]
    assert await kb.outages("Leeds", NOW) == []
    changed = board.update_sync(o.id, OutageChange(messages={"en": "Fixed by 18:00."}))
    assert changed.messages == {"en": "Fixed by 18:00.", "nl": "Geen internet."}
    assert await kb.subscribe_outage(o.id, number="+31302345678", channel="sms",
                                     language="nl", contact_id="c1")
    assert not await kb.subscribe_outage(o.id, number="+31302345678", channel="sms",
                                         language="nl", contact_id="c2")
    assert board.get_sync(o.id).subscribers == 1
    ended = board.end_sync(o.id)
    assert ended.state_at(datetime.now(UTC)) == "ended"
    assert await kb.outages("Utrecht", datetime.now(UTC)) == []
    with pytest.raises(OutageConflict):
        board.end_sync(o.id)
    with pytest.raises(UnknownOutage):
        board.get_sync(o.id + 100)
    engine.dispose()


def test_surge_outage_pending_until_confirmed_and_dismissed_never_heard(
        sqlite_url: str) -> None:
    """A pending (surge) outage is not heard until confirmed; a dismissed one never."""
    from ivr.storage.db import upgrade

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    board = SqlOutageBoard(engine)

    def surge() -> int:
        return board.add_sync(draft(regions=["Arnhem"], messages={"en": "Many calls."},
                                    starts_at=NOW, ends_at=None,
                                    source=OutageSource.SURGE,
                                    status=OutageStatus.PENDING)).id

    a, b = surge(), surge()
    later = NOW + timedelta(seconds=1)
    assert board.heard_sync("Arnhem", later) == []
    board.confirm_sync(a, by="sam")
    assert [o.id for o in board.heard_sync("arnhem", later)] == [a]
    with pytest.raises(OutageConflict):
        board.confirm_sync(a)
    board.dismiss_sync(b, by="sam")
    assert board.get_sync(b).state_at(later) == "dismissed"
    assert [o.id for o in board.list_sync()] == [a]
    assert {o.id for o in board.list_sync(include_ended=True)} == {a, b}
    engine.dispose()


def test_bad_outages_are_refused_with_a_reason() -> None:
    """No region, an unknown language, an end before the start, a naive time."""
    with pytest.raises(BadOutage, match="region"):
        draft(regions=[" , "], messages={"en": "x"}, starts_at=NOW, ends_at=None)
    with pytest.raises(BadOutage, match="language"):
        draft(regions=["X"], messages={"fr": "x"}, starts_at=NOW, ends_at=None)
    with pytest.raises(BadOutage, match="after the start"):
        draft(regions=["X"], messages={"en": "x"}, starts_at=NOW, ends_at=NOW)
    with pytest.raises(BadOutage, match="time zone"):
        draft(regions=["X"], messages={"en": "x"}, starts_at=NOW.replace(tzinfo=None),
              ends_at=None)
