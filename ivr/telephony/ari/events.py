"""ARI events as typed, frozen values, translated at the edge from Asterisk's JSON.

Only the fields the IVR uses are lifted into attributes; everything else stays in
``raw`` for logs. Unknown event types become :class:`UnknownEvent` rather than an
error: Asterisk adds event types between releases and a new one must never
break the reader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """The parts of an ARI Channel object the IVR looks at."""

    id: str
    name: str = ""
    state: str = ""
    caller_number: str = ""
    caller_name: str = ""
    connected_number: str = ""
    exten: str = ""
    context: str = ""
    # the dialplan application it is in: ("Stasis", "ivr,cli_trusted=0") for a caller in
    # the app (a node taking over finds the dead node's callers by it)
    app_name: str = ""
    app_data: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ChannelInfo:
        data = data or {}
        caller = data.get("caller") or {}
        connected = data.get("connected") or {}
        dialplan = data.get("dialplan") or {}
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            state=str(data.get("state", "")),
            caller_number=str(caller.get("number", "") or ""),
            caller_name=str(caller.get("name", "") or ""),
            connected_number=str(connected.get("number", "") or ""),
            exten=str(dialplan.get("exten", "") or ""),
            context=str(dialplan.get("context", "") or ""),
            app_name=str(dialplan.get("app_name", "") or ""),
            app_data=str(dialplan.get("app_data", "") or ""),
        )


@dataclass(frozen=True, slots=True)
class PlaybackInfo:
    """An ARI Playback object; ``target_uri`` is e.g. ``channel:<id>``."""

    id: str
    media_uri: str = ""
    target_uri: str = ""
    state: str = ""

    @property
    def channel_id(self) -> str | None:
        kind, _, target = self.target_uri.partition(":")
        return target if kind == "channel" and target else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PlaybackInfo:
        data = data or {}
        return cls(
            id=str(data.get("id", "")),
            media_uri=str(data.get("media_uri", "")),
            target_uri=str(data.get("target_uri", "")),
            state=str(data.get("state", "")),
        )


@dataclass(frozen=True, slots=True)
class BridgeInfo:
    """An ARI Bridge object."""

    id: str
    bridge_type: str = ""
    channels: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> BridgeInfo:
        data = data or {}
        return cls(
            id=str(data.get("id", "")),
            bridge_type=str(data.get("bridge_type", "")),
            channels=tuple(str(c) for c in data.get("channels") or ()),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AriEvent:
    """Common fields of every event. ``synthetic`` marks events the client made up
    during a resync after a websocket gap (the real one was lost)."""

    type: str
    application: str = ""
    timestamp: str = ""
    synthetic: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def resource_ids(self) -> tuple[str, ...]:
        """Channel/bridge/playback ids this event concerns (used for dispatch)."""
        return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(AriEvent):
    """An event about one channel."""

    channel: ChannelInfo

    def resource_ids(self) -> tuple[str, ...]:
        return (self.channel.id,)


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisStart(ChannelEvent):
    args: tuple[str, ...] = ()
    replace_channel: ChannelInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupRequest(ChannelEvent):
    cause: int = 0
    soft: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroyed(ChannelEvent):
    cause: int = 0
    cause_txt: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChange(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelVarset(AriEvent):
    variable: str
    value: str
    channel: ChannelInfo | None = None  # None for global variables

    def resource_ids(self) -> tuple[str, ...]:
        return (self.channel.id,) if self.channel else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackEvent(AriEvent):
    playback: PlaybackInfo

    def resource_ids(self) -> tuple[str, ...]:
        ch = self.playback.channel_id
        return (self.playback.id, ch) if ch else (self.playback.id,)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeEvent(AriEvent):
    bridge: BridgeInfo

    def resource_ids(self) -> tuple[str, ...]:
        return (self.bridge.id,)


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeDestroyed(BridgeEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEnteredBridge(BridgeEvent):
    channel: ChannelInfo

    def resource_ids(self) -> tuple[str, ...]:
        return (self.bridge.id, self.channel.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeftBridge(BridgeEvent):
    channel: ChannelInfo

    def resource_ids(self) -> tuple[str, ...]:
        return (self.bridge.id, self.channel.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(AriEvent):
    """Progress of a dial; on a subscribed caller it carries the agent leg (``peer``)."""

    peer: ChannelInfo
    caller: ChannelInfo | None = None
    dialstring: str = ""
    dialstatus: str = ""

    def resource_ids(self) -> tuple[str, ...]:
        ids = [self.peer.id]
        if self.caller is not None:
            ids.append(self.caller.id)
        return tuple(ids)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(AriEvent):
    """Any event type this module does not model (kept whole in ``raw``)."""

    def resource_ids(self) -> tuple[str, ...]:
        ids: list[str] = []
        for key in ("channel", "peer", "bridge", "playback"):
            obj = self.raw.get(key)
            if isinstance(obj, Mapping) and obj.get("id"):
                ids.append(str(obj["id"]))
        return tuple(ids)


class EventParseError(ValueError):
    """The websocket delivered something that is not an ARI event."""


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# One builder per modelled event type. A builder returns None when a field the
# type needs is missing; parse_event then keeps the message as an UnknownEvent.
_Builder = Callable[[Mapping[str, Any], dict[str, Any], ChannelInfo | None], AriEvent | None]


def _stasis_start(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    if channel is None:
        return None
    replace = data.get("replace_channel")
    return StasisStart(
        **common,
        channel=channel,
        args=tuple(str(a) for a in data.get("args") or ()),
        replace_channel=ChannelInfo.from_json(replace) if replace else None,
    )


def _stasis_end(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    return StasisEnd(**common, channel=channel) if channel is not None else None


def _dtmf(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    if channel is None:
        return None
    return ChannelDtmfReceived(
        **common,
        channel=channel,
        digit=str(data.get("digit", "")),
        duration_ms=_int(data.get("duration_ms")),
    )


def _hangup_request(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    if channel is None:
        return None
    return ChannelHangupRequest(
        **common, channel=channel, cause=_int(data.get("cause")),
        soft=bool(data.get("soft", False)),
    )


def _destroyed(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    if channel is None:
        return None
    return ChannelDestroyed(
        **common, channel=channel, cause=_int(data.get("cause")),
        cause_txt=str(data.get("cause_txt", "")),
    )


def _state_change(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    return ChannelStateChange(**common, channel=channel) if channel is not None else None


def _varset(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    # Global variables arrive without a channel: still a ChannelVarset.
    return ChannelVarset(
        **common, channel=channel, variable=str(data.get("variable", "")),
        value=str(data.get("value", "")),
    )


def _playback(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    if not data.get("playback"):
        return None
    cls = PlaybackStarted if common["type"] == "PlaybackStarted" else PlaybackFinished
    return cls(**common, playback=PlaybackInfo.from_json(data["playback"]))


def _bridge_destroyed(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    if not data.get("bridge"):
        return None
    return BridgeDestroyed(**common, bridge=BridgeInfo.from_json(data["bridge"]))


def _bridge_membership(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    if not data.get("bridge") or channel is None:
        return None
    cls = ChannelEnteredBridge if common["type"] == "ChannelEnteredBridge" else ChannelLeftBridge
    return cls(**common, bridge=BridgeInfo.from_json(data["bridge"]), channel=channel)


def _dial(
    data: Mapping[str, Any], common: dict[str, Any], channel: ChannelInfo | None
) -> AriEvent | None:
    if not data.get("peer"):
        return None
    caller = data.get("caller")
    return Dial(
        **common,
        peer=ChannelInfo.from_json(data["peer"]),
        caller=ChannelInfo.from_json(caller) if caller else None,
        dialstring=str(data.get("dialstring", "")),
        dialstatus=str(data.get("dialstatus", "")),
    )


_BUILDERS: Mapping[str, _Builder] = {
    "StasisStart": _stasis_start,
    "StasisEnd": _stasis_end,
    "ChannelDtmfReceived": _dtmf,
    "ChannelHangupRequest": _hangup_request,
    "ChannelDestroyed": _destroyed,
    "ChannelStateChange": _state_change,
    "ChannelVarset": _varset,
    "PlaybackStarted": _playback,
    "PlaybackFinished": _playback,
    "BridgeDestroyed": _bridge_destroyed,
    "ChannelEnteredBridge": _bridge_membership,
    "ChannelLeftBridge": _bridge_membership,
    "Dial": _dial,
}


def parse_event(data: Mapping[str, Any]) -> AriEvent:
    """Translate one decoded ARI event into its typed value.

    Raises EventParseError when ``data`` has no ``type``; malformed fields inside a
    known event degrade to defaults instead of failing (the reader must go on).
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
        raise EventParseError("ARI message without a 'type'")
    etype: str = data["type"]
    common: dict[str, Any] = {
        "type": etype,
        "application": str(data.get("application", "")),
        "timestamp": str(data.get("timestamp", "")),
        "raw": data,
    }
    event: AriEvent | None = None
    try:
        channel = ChannelInfo.from_json(data.get("channel")) if data.get("channel") else None
        builder = _BUILDERS.get(etype)
        event = builder(data, common, channel) if builder is not None else None
    except (TypeError, AttributeError):
        # A known type with a mis-shaped body: keep it, untyped, for the logs.
        pass
    return event if event is not None else UnknownEvent(**common)
