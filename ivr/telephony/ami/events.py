"""AMI events as typed, frozen values, translated at the edge from ``Key: Value`` blocks.

Field names follow Asterisk 22's app_queue documentation. Numbers that fail to
parse become 0 and unknown event names become :class:`UnknownEvent`: Asterisk
adds events and fields between releases, and one odd message must never stop the
reader. Events answering a list action (``QueueStatus``) carry its ``action_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypedDict

from ivr.domain.centre import DeviceState
from ivr.telephony.ami.wire import AmiMessage

_NO_VARS: Mapping[str, str] = MappingProxyType({})


def _no_vars() -> Mapping[str, str]:
    return _NO_VARS


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiEvent:
    """Base of every event; ``fields`` keeps the raw headers for logs."""

    name: str
    action_id: str = ""
    fields: Mapping[str, str] = field(default_factory=_no_vars, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(AmiEvent):
    """An event this module does not model (read ``fields``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FullyBooted(AmiEvent):
    """Sent after login once Asterisk has finished starting."""

    status: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListComplete(AmiEvent):
    """The last event of a list action's answer (``QueueStatusComplete`` ...)."""

    list_items: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberEvent(AmiEvent):
    """Fields shared by the QueueMember* events and the QueueStatus ``QueueMember`` reply."""

    queue: str
    member_name: str = ""
    interface: str
    state_interface: str = ""
    membership: str = ""  # dynamic | realtime | static
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: bool = False
    status: DeviceState = DeviceState.UNKNOWN
    paused: bool = False
    paused_reason: str = ""
    wrapuptime: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberAdded(QueueMemberEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberRemoved(QueueMemberEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberStatus(QueueMemberEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberPenalty(QueueMemberEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberPause(QueueMemberEvent):
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMember(QueueMemberEvent):
    """QueueStatus reply: one per member and queue (``Name``/``Location`` on the wire)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerEvent(AmiEvent):
    """A caller's channel in a queue; ``variables`` from ``ChanVariable`` headers."""

    queue: str
    channel: str = ""
    uniqueid: str
    linkedid: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""
    position: int = 0
    variables: Mapping[str, str] = field(default_factory=_no_vars, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerJoin(QueueCallerEvent):
    count: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerLeave(QueueCallerEvent):
    count: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerAbandon(QueueCallerEvent):
    original_position: int = 0
    hold_time: int = 0  # seconds waited (documented as a timestamp, sent as a duration)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEvent(AmiEvent):
    """Agent* events: caller channel fields plus the member and its ``Dest`` channel."""

    queue: str
    member_name: str = ""
    interface: str
    channel: str = ""
    uniqueid: str = ""
    caller_id_num: str = ""
    dest_channel: str = ""
    dest_uniqueid: str = ""
    variables: Mapping[str, str] = field(default_factory=_no_vars, compare=False)
    dest_variables: Mapping[str, str] = field(default_factory=_no_vars, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCalled(AgentEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRingNoAnswer(AgentEvent):
    ring_time: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConnect(AgentEvent):
    ring_time: int = 0
    hold_time: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentComplete(AgentEvent):
    hold_time: int = 0
    talk_time: int = 0
    reason: str = ""  # caller | agent | transfer


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDump(AgentEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueParams(AmiEvent):
    """QueueStatus reply: one per queue."""

    queue: str
    max: int = 0
    strategy: str = ""
    calls: int = 0
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    service_level: int = 0
    weight: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry(AmiEvent):
    """QueueStatus reply: one per waiting caller, in queue order."""

    queue: str
    position: int = 0
    channel: str = ""
    uniqueid: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""
    wait: int = 0  # seconds in the queue so far
    priority: int = 0


# ------------------------------------------------------------------ parsing
def _int(m: AmiMessage, key: str) -> int:
    try:
        return int(m.get(key, "0") or 0)
    except ValueError:
        return 0


def _flag(m: AmiMessage, key: str) -> bool:
    return m.get(key, "0").strip().lower() in ("1", "true", "yes")


def _device(m: AmiMessage) -> DeviceState:
    try:
        return DeviceState(_int(m, "Status"))
    except ValueError:
        return DeviceState.UNKNOWN


def _vars(m: AmiMessage, key: str) -> Mapping[str, str]:
    values = m.get_all(key)
    if not values:
        return _NO_VARS
    pairs = (v.partition("=") for v in values)
    return MappingProxyType({k: val for k, _, val in pairs})


class _BaseKw(TypedDict):
    name: str
    action_id: str
    fields: Mapping[str, str]


class _MemberKw(_BaseKw):
    queue: str
    member_name: str
    interface: str
    state_interface: str
    membership: str
    penalty: int
    calls_taken: int
    last_call: int
    last_pause: int
    login_time: int
    in_call: bool
    status: DeviceState
    paused: bool
    paused_reason: str
    wrapuptime: int


class _CallerKw(_BaseKw):
    queue: str
    channel: str
    uniqueid: str
    linkedid: str
    caller_id_num: str
    caller_id_name: str
    position: int
    variables: Mapping[str, str]


class _AgentKw(_BaseKw):
    queue: str
    member_name: str
    interface: str
    channel: str
    uniqueid: str
    caller_id_num: str
    dest_channel: str
    dest_uniqueid: str
    variables: Mapping[str, str]
    dest_variables: Mapping[str, str]


def _base(m: AmiMessage) -> _BaseKw:
    return {"name": m.event, "action_id": m.action_id, "fields": m.fields}


def _member(m: AmiMessage) -> _MemberKw:
    return {
        **_base(m),
        "queue": m.get("Queue"),
        # The QueueStatus reply says Name/Location where events say MemberName/Interface.
        "member_name": m.get("MemberName") or m.get("Name"),
        "interface": m.get("Interface") or m.get("Location"),
        "state_interface": m.get("StateInterface"), "membership": m.get("Membership"),
        "penalty": _int(m, "Penalty"), "calls_taken": _int(m, "CallsTaken"),
        "last_call": _int(m, "LastCall"), "last_pause": _int(m, "LastPause"),
        "login_time": _int(m, "LoginTime"), "in_call": _flag(m, "InCall"),
        "status": _device(m), "paused": _flag(m, "Paused"),
        "paused_reason": m.get("PausedReason"), "wrapuptime": _int(m, "Wrapuptime"),
    }


def _caller(m: AmiMessage) -> _CallerKw:
    return {
        **_base(m),
        "queue": m.get("Queue"), "channel": m.get("Channel"), "uniqueid": m.get("Uniqueid"),
        "linkedid": m.get("Linkedid"), "caller_id_num": m.get("CallerIDNum"),
        "caller_id_name": m.get("CallerIDName"), "position": _int(m, "Position"),
        "variables": _vars(m, "ChanVariable"),
    }


def _agent(m: AmiMessage) -> _AgentKw:
    return {
        **_base(m),
        "queue": m.get("Queue"), "member_name": m.get("MemberName"),
        "interface": m.get("Interface"), "channel": m.get("Channel"),
        "uniqueid": m.get("Uniqueid"), "caller_id_num": m.get("CallerIDNum"),
        "dest_channel": m.get("DestChannel"), "dest_uniqueid": m.get("DestUniqueid"),
        "variables": _vars(m, "ChanVariable"), "dest_variables": _vars(m, "DestChanVariable"),
    }


def _params(m: AmiMessage) -> AmiEvent:
    return QueueParams(
        **_base(m),
        queue=m.get("Queue"), max=_int(m, "Max"), strategy=m.get("Strategy"),
        calls=_int(m, "Calls"), holdtime=_int(m, "Holdtime"), talktime=_int(m, "TalkTime"),
        completed=_int(m, "Completed"), abandoned=_int(m, "Abandoned"),
        service_level=_int(m, "ServiceLevel"), weight=_int(m, "Weight"),
    )


def _entry(m: AmiMessage) -> AmiEvent:
    return QueueEntry(
        **_base(m),
        queue=m.get("Queue"), position=_int(m, "Position"), channel=m.get("Channel"),
        uniqueid=m.get("Uniqueid"),
        # Very old Asterisk said CallerID instead of CallerIDNum.
        caller_id_num=m.get("CallerIDNum") or m.get("CallerID"),
        caller_id_name=m.get("CallerIDName"), wait=_int(m, "Wait"),
        priority=_int(m, "Priority"),
    )


_PARSERS: dict[str, Callable[[AmiMessage], AmiEvent]] = {
    "QueueMemberAdded": lambda m: QueueMemberAdded(**_member(m)),
    "QueueMemberRemoved": lambda m: QueueMemberRemoved(**_member(m)),
    "QueueMemberStatus": lambda m: QueueMemberStatus(**_member(m)),
    "QueueMemberPenalty": lambda m: QueueMemberPenalty(**_member(m)),
    "QueueMemberPause": lambda m: QueueMemberPause(
        **_member(m), reason=m.get("Reason") or m.get("PausedReason")),
    "QueueMember": lambda m: QueueMember(**_member(m)),
    "QueueCallerJoin": lambda m: QueueCallerJoin(**_caller(m), count=_int(m, "Count")),
    "QueueCallerLeave": lambda m: QueueCallerLeave(**_caller(m), count=_int(m, "Count")),
    "QueueCallerAbandon": lambda m: QueueCallerAbandon(
        **_caller(m), original_position=_int(m, "OriginalPosition"),
        hold_time=_int(m, "HoldTime")),
    "AgentCalled": lambda m: AgentCalled(**_agent(m)),
    "AgentRingNoAnswer": lambda m: AgentRingNoAnswer(**_agent(m), ring_time=_int(m, "RingTime")),
    "AgentConnect": lambda m: AgentConnect(
        **_agent(m), ring_time=_int(m, "RingTime"), hold_time=_int(m, "HoldTime")),
    "AgentComplete": lambda m: AgentComplete(
        **_agent(m), hold_time=_int(m, "HoldTime"), talk_time=_int(m, "TalkTime"),
        reason=m.get("Reason")),
    "AgentDump": lambda m: AgentDump(**_agent(m)),
    "QueueParams": _params,
    "QueueEntry": _entry,
    "FullyBooted": lambda m: FullyBooted(**_base(m), status=m.get("Status")),
}


def parse_event(message: AmiMessage) -> AmiEvent:
    """The typed event for a message with an ``Event`` header (never raises)."""
    if message.get("EventList").lower() == "complete" or (
        message.action_id and message.event.endswith("Complete")
    ):
        return ListComplete(**_base(message), list_items=_int(message, "ListItems"))
    parser = _PARSERS.get(message.event)
    if parser is None:
        return UnknownEvent(**_base(message))
    try:
        return parser(message)
    except (TypeError, ValueError):
        return UnknownEvent(**_base(message))
