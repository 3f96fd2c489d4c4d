"""RemoteCentres: the other Asterisks' live views, fresh ones only."""

from __future__ import annotations

from ivr.contact_centre.remote import RemoteCentres


def test_fresh_views_are_kept_by_asterisk_and_stale_ones_dropped() -> None:
    now = [100.0]
    remote = RemoteCentres(expire_s=15, now=lambda: now[0])
    view = {"in_sync": True, "skills": {"billing": {"ready": 1}}, "queues": {}}
    assert remote.deliver(RemoteCentres.message("http://b:8088/ivr", view))
    now[0] = 104.0
    assert remote.deliver(RemoteCentres.message("http://a:8088/ivr", {**view, "queues": {
        "ivr-billing": {"waiting": 2}}}))
    shown = remote.views(exclude="http://a:8088/ivr")  # this node's own is not "other"
    assert shown == [{"asterisk": "http://b:8088/ivr", "age_s": 4.0, **view}]
    now[0] = 116.0  # b's view is 16 s old: a node that stopped must not look current
    assert [v["asterisk"] for v in remote.views()] == ["http://a:8088/ivr"]


def test_other_broadcasts_and_malformed_views_are_not_taken() -> None:
    remote = RemoteCentres()
    assert not remote.deliver({"type": "alert", "alert": {}})
    assert not remote.deliver({"type": "centre_view", "asterisk": 3, "view": {}})
    assert not remote.deliver({"type": "centre_view", "asterisk": "x", "view": "nope"})
    assert not remote.deliver({"session": "s-1", "context": {}})  # a screen-pop
    assert remote.views() == []
