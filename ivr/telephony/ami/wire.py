"""AMI wire format: ``Key: Value`` lines ended by CRLF, a blank line ends a message.

The server opens with one banner line (``Asterisk Call Manager/x.y.z``) that is not
followed by a blank line. Headers can repeat (``ChanVariable`` once per channel
variable, ``Variable`` in Originate), so a message keeps every header in wire order
as well as a first-value lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

EOL = "\r\n"
END_OF_MESSAGE = b"\r\n\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"

FieldValue = str | int | float | bool | None
Fields = Mapping[str, FieldValue] | Iterable[tuple[str, FieldValue]]


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message; ``fields`` holds the first value of each header."""

    fields: Mapping[str, str]
    lines: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    def get_all(self, key: str) -> tuple[str, ...]:
        """Every value of a repeated header, in wire order."""
        return tuple(v for k, v in self.lines if k == key)

    @property
    def event(self) -> str:
        return self.fields.get("Event", "")

    @property
    def response(self) -> str:
        return self.fields.get("Response", "")

    @property
    def action_id(self) -> str:
        return self.fields.get("ActionID", "")


def parse_message(data: bytes | str) -> AmiMessage:
    """Parse one message (without or with its terminating blank line)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    fields: dict[str, str] = {}
    lines: list[tuple[str, str]] = []
    for line in text.split(EOL):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            # Old-style Command output comes as bare lines; keep them readable.
            key, value = "Output", line
        value = value[1:] if value.startswith(" ") else value
        lines.append((key, value))
        fields.setdefault(key, value)
    return AmiMessage(fields=fields, lines=tuple(lines))


def _text(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_message(first: tuple[str, str], action_id: str | None, fields: Fields) -> bytes:
    """Serialise a message; None values are left out.

    A line break inside a value would end the header early and let the rest be
    read as extra headers (or a second action), so it is refused.
    """
    items = fields.items() if isinstance(fields, Mapping) else fields
    out = [f"{first[0]}: {first[1]}"]
    if action_id:
        out.append(f"ActionID: {action_id}")
    for key, value in items:
        if value is None:
            continue
        text = _text(value)
        if any(c in key or c in text for c in "\r\n"):
            raise ValueError(f"AMI header {key!r} contains a line break")
        out.append(f"{key}: {text}")
    return (EOL.join(out) + EOL + EOL).encode()


def encode_action(name: str, action_id: str, fields: Fields = ()) -> bytes:
    """``Action: name`` plus ``ActionID`` and the given headers."""
    return encode_message(("Action", name), action_id, fields)
