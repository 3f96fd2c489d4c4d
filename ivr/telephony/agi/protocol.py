"""AGI wire format -> typed, frozen values (no I/O here).

A FastAGI session starts with ``agi_name: value`` lines ending in a blank
line; every command then gets one response line, ``200 result=1 (data)
endpos=123``, or a multi-line ``520-`` usage block. ``HANGUP`` on its own
line is Asterisk telling us the channel has gone (AGISIGHUP).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

MAX_LINE = 8192  # longer lines are not AGI; refuse them rather than buffer forever
MAX_ENV_LINES = 200


class AgiProtocolError(Exception):
    """The peer did not speak AGI (bad environment line, garbage response)."""


class AgiHangup(Exception):
    """The channel hung up (``HANGUP``, ``511`` or EOF): stop issuing commands."""


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    """The ``agi_*`` variables Asterisk sends when a session starts."""

    request: str = ""  # agi://127.0.0.1:4573/route?x=1
    network_script: str = ""  # route?x=1 (path after the host, without the slash)
    channel: str = ""
    uniqueid: str = ""
    callerid: str = ""
    calleridname: str = ""
    dnid: str = ""
    rdnis: str = ""
    context: str = ""
    extension: str = ""
    priority: str = ""
    language: str = ""
    accountcode: str = ""
    threadid: str = ""
    enhanced: bool = False
    arguments: tuple[str, ...] = ()  # agi_arg_1, agi_arg_2 ... in order
    raw: Mapping[str, str] = field(default_factory=dict)

    @property
    def script(self) -> str:
        """The route name: ``route`` for ``agi://host/route?x=1``."""
        return urlsplit("/" + self.network_script).path.strip("/")

    @property
    def query(self) -> dict[str, str]:
        """Query parameters of the AGI URL (``?lang=nl``)."""
        return dict(parse_qsl(urlsplit("/" + self.network_script).query))


_ENV_FIELDS = {
    "agi_request": "request",
    "agi_network_script": "network_script",
    "agi_channel": "channel",
    "agi_uniqueid": "uniqueid",
    "agi_callerid": "callerid",
    "agi_calleridname": "calleridname",
    "agi_dnid": "dnid",
    "agi_rdnis": "rdnis",
    "agi_context": "context",
    "agi_extension": "extension",
    "agi_priority": "priority",
    "agi_language": "language",
    "agi_accountcode": "accountcode",
    "agi_threadid": "threadid",
}
_ARG = re.compile(r"^agi_arg_(\d+)$")


def parse_environment(lines: Iterable[str]) -> AgiEnvironment:
    """Build the environment from its ``name: value`` lines (blank line excluded)."""
    raw: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.startswith("agi_"):
            # Name only: values carry caller numbers and names, and this ends up in logs.
            raise AgiProtocolError(f"not an AGI environment line: {name[:40]!r}"
                                   f"{' (with a value)' if sep else ''}")
        raw[name.strip()] = value.strip()
    if "agi_request" not in raw and "agi_network_script" not in raw:
        raise AgiProtocolError("AGI environment without agi_request")
    values: dict[str, str] = {attr: raw.get(key, "") for key, attr in _ENV_FIELDS.items()}
    if not values["network_script"] and values["request"].startswith("agi://"):
        # older Asterisk / hand-written clients: derive it from the URL
        values["network_script"] = values["request"].split("/", 3)[3] if values[
            "request"
        ].count("/") >= 3 else ""
    args = sorted(
        ((int(m.group(1)), v) for k, v in raw.items() if (m := _ARG.match(k))),
        key=lambda kv: kv[0],
    )
    # Asterisk sends "unknown" for absent caller IDs: keep the domain's view simple
    for key in ("callerid", "calleridname", "dnid", "rdnis"):
        if values[key].lower() == "unknown":
            values[key] = ""
    return AgiEnvironment(
        **values,
        enhanced=raw.get("agi_enhanced", "0.0") not in ("0", "0.0", ""),
        arguments=tuple(v for _, v in args),
        raw=raw,
    )


@dataclass(frozen=True, slots=True)
class AgiResponse:
    """One command's answer: ``code`` 200 = OK, 510 invalid, 511 dead channel, 520 usage."""

    code: int
    result: str = ""
    data: str = ""  # the text in parentheses, e.g. the value of GET VARIABLE
    extras: Mapping[str, str] = field(default_factory=dict)  # endpos=..., etc.
    raw: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def result_int(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


_RESPONSE = re.compile(r"^(\d{3})[ -](.*)$")
_RESULT = re.compile(r"result=(\S*)")
_DATA = re.compile(r"\((.*)\)")
_EXTRA = re.compile(r"(\w+)=(\S+)")


def parse_response(line: str) -> AgiResponse:
    """Parse the first line of a response (``520-`` blocks are handled by the session)."""
    m = _RESPONSE.match(line.strip())
    if m is None:
        # The start only: a response may carry a channel variable's value (a name).
        raise AgiProtocolError(f"not an AGI response: {line[:12]!r}... ({len(line)} chars)")
    code, rest = int(m.group(1)), m.group(2)
    result = _RESULT.search(rest)
    after = rest[result.end():] if result else rest
    data = _DATA.search(after)
    tail = after[data.end():] if data else after
    extras = {k: v for k, v in _EXTRA.findall(tail)}
    return AgiResponse(
        code=code,
        result=result.group(1) if result else "",
        data=data.group(1) if data else "",
        extras=extras,
        raw=line.rstrip("\r\n"),
    )


def quote(value: str) -> str:
    """Quote an AGI command argument (values with spaces, quotes or backslashes)."""
    cleaned = value.replace("\r", " ").replace("\n", " ")
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'
