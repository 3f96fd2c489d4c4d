"""Asterisk Manager Interface: an in-house asyncio client and typed app_queue events."""

from ivr.telephony.ami.client import (
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiError,
    AmiListResult,
    AmiNotConnected,
    AmiResponse,
    AmiSubscription,
    AmiTimeout,
    Backoff,
    QueueStatusResult,
)
from ivr.telephony.ami.events import AmiEvent, parse_event
from ivr.telephony.ami.wire import AmiMessage, encode_action, parse_message

__all__ = [
    "AmiActionError",
    "AmiAuthError",
    "AmiClient",
    "AmiError",
    "AmiEvent",
    "AmiListResult",
    "AmiMessage",
    "AmiNotConnected",
    "AmiResponse",
    "AmiSubscription",
    "AmiTimeout",
    "Backoff",
    "QueueStatusResult",
    "encode_action",
    "parse_event",
    "parse_message",
]
