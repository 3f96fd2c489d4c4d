"""ARI JSON -> typed events."""

from __future__ import annotations

import pytest

from ivr.telephony.ari.events import (
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Dial,
    EventParseError,
    PlaybackFinished,
    StasisStart,
    UnknownEvent,
    parse_event,
)

CH = {"id": "1700.1", "name": "PJSIP/caller-0001", "state": "Ring",
      "caller": {"name": "", "number": "0612345678"},
      "dialplan": {"context": "from-callers", "exten": "100", "priority": 3}}


def test_stasis_start() -> None:
    """StasisStart carries the channel, caller number, dialled exten and args."""
    ev = parse_event({"type": "StasisStart", "application": "ivr", "channel": CH,
                      "args": ["a", 1]})
    assert isinstance(ev, StasisStart)
    assert ev.channel.caller_number == "0612345678" and ev.channel.exten == "100"
    assert ev.args == ("a", "1") and ev.resource_ids() == ("1700.1",)


def test_dtmf_hangup_playback_dial() -> None:
    """DTMF, hang-up request, playback and dial events get typed fields and dispatch ids."""
    dtmf = parse_event({"type": "ChannelDtmfReceived", "channel": CH, "digit": "#",
                        "duration_ms": 120})
    assert isinstance(dtmf, ChannelDtmfReceived) and dtmf.digit == "#"
    hup = parse_event({"type": "ChannelHangupRequest", "channel": CH, "cause": 16})
    assert isinstance(hup, ChannelHangupRequest) and hup.cause == 16
    pb = parse_event({"type": "PlaybackFinished", "playback": {
        "id": "pb1", "media_uri": "sound:x", "target_uri": "channel:1700.1", "state": "done"}})
    assert isinstance(pb, PlaybackFinished) and pb.resource_ids() == ("pb1", "1700.1")
    dial = parse_event({"type": "Dial", "peer": {"id": "agent.2"}, "caller": CH,
                        "dialstatus": "ANSWER"})
    assert isinstance(dial, Dial) and set(dial.resource_ids()) == {"agent.2", "1700.1"}


def test_unknown_and_misshaped_events_are_generic() -> None:
    """Unknown types and known types with a broken body become UnknownEvent."""
    ev = parse_event({"type": "ChannelTalkingStarted", "channel": CH})
    assert isinstance(ev, UnknownEvent) and ev.resource_ids() == ("1700.1",)
    broken = parse_event({"type": "StasisStart", "channel": {"id": "x", "caller": "oops"}})
    assert isinstance(broken, UnknownEvent)
    assert isinstance(parse_event({"type": "ChannelDtmfReceived"}), UnknownEvent)


@pytest.mark.parametrize("data", [{}, {"type": 5}, []])
def test_typeless_message_raises(data: object) -> None:
    """A message without a string type is rejected with EventParseError."""
    with pytest.raises(EventParseError):
        parse_event(data)  # type: ignore[arg-type]
