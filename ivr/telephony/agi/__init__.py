"""FastAGI: an in-house asyncio server for dialplan-driven setups (``AGI(agi://host:4573/route)``)."""

from ivr.telephony.agi.protocol import (
    AgiEnvironment,
    AgiHangup,
    AgiProtocolError,
    AgiResponse,
    parse_environment,
    parse_response,
)
from ivr.telephony.agi.server import AgiHandler, AgiSession, FastAgiServer

__all__ = [
    "AgiEnvironment",
    "AgiHandler",
    "AgiHangup",
    "AgiProtocolError",
    "AgiResponse",
    "AgiSession",
    "FastAgiServer",
    "parse_environment",
    "parse_response",
]
