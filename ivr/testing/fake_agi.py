"""Asterisk's side of FastAGI, for testing AGI handlers over real TCP without Asterisk.

    srv = FastAgiServer({"route": handler}, port=0)
    await srv.start()
    ast = await FakeAsterisk.connect(srv.port)
    await ast.send(env_block(agi_callerid="+31201234567"))
    await ast.serve(ok_reply)          # answer every command until the server hangs up
    assert ast.commands == ["GET VARIABLE GREETING"]
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

# What Asterisk 22 sends for ``AGI(agi://127.0.0.1:4573/route?lang=nl,first,second)``.
DEFAULT_ENV: Mapping[str, str] = {
    "agi_network": "yes",
    "agi_network_script": "route?lang=nl",
    "agi_request": "agi://127.0.0.1:4573/route?lang=nl",
    "agi_channel": "PJSIP/caller-00000001",
    "agi_language": "en",
    "agi_type": "PJSIP",
    "agi_uniqueid": "1700000000.1",
    "agi_version": "22.10.1",
    "agi_callerid": "+31201234567",
    "agi_calleridname": "unknown",
    "agi_dnid": "601",
    "agi_rdnis": "unknown",
    "agi_context": "agi-entry",
    "agi_extension": "s",
    "agi_priority": "3",
    "agi_enhanced": "0.0",
    "agi_accountcode": "",
    "agi_threadid": "140000",
    "agi_arg_2": "second",
    "agi_arg_1": "first",
}


def env_block(env: Mapping[str, str] | None = None, **over: str) -> bytes:
    """An AGI environment as Asterisk sends it: ``key: value`` lines and a blank line.

    ``env`` replaces :data:`DEFAULT_ENV`; keyword arguments override single variables.
    """
    values = {**(env or DEFAULT_ENV), **over}
    return "".join(f"{k}: {v}\n" for k, v in values.items()).encode() + b"\n"


Reply = Callable[[str], str]


class FakeAsterisk:
    """A raw TCP client speaking Asterisk's side of FastAGI; records every command."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 command_timeout_s: float = 5.0) -> None:
        self.reader, self.writer = reader, writer
        self.commands: list[str] = []
        self.command_timeout_s = command_timeout_s

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> FakeAsterisk:
        """Open a connection to a FastAGI server, as Asterisk does per AGI() call."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        """Write raw bytes (an environment block, a ``200 result=`` line, a HANGUP)."""
        self.writer.write(data)
        await self.writer.drain()

    async def next_command(self) -> str | None:
        """The next command line the server sends; None once it closes the connection."""
        async with asyncio.timeout(self.command_timeout_s):
            line = await self.reader.readline()
        if not line:
            return None
        text = line.decode().rstrip("\n")
        self.commands.append(text)
        return text

    async def serve(self, reply: Reply) -> None:
        """Answer every command with ``reply(command)`` until the server closes."""
        while (cmd := await self.next_command()) is not None:
            await self.send(reply(cmd).encode())

    async def close(self) -> None:
        """Hang up the TCP connection."""
        self.writer.close()
        await self.writer.wait_closed()


def ok_reply(cmd: str) -> str:
    """Asterisk's success answer: ``GET VARIABLE`` finds "hello world", the rest ``result=1``."""
    if cmd.startswith("GET VARIABLE"):
        return "200 result=1 (hello world)\n"
    return "200 result=1\n"


def route_reply(record_dir: Path, audio: bytes | None) -> Reply:
    """Asterisk's side of /route: ``RECORD FILE`` writes ``audio`` into ``record_dir``.

    ``audio=None`` records nothing (the caller said nothing, or the disk is full).
    """

    def reply(cmd: str) -> str:
        if cmd.startswith("RECORD FILE"):
            path = cmd.split()[2]
            if audio is not None:
                (record_dir / (Path(path).name + ".wav")).write_bytes(audio)
            return "200 result=0 endpos=16000\n"
        return "200 result=1\n"

    return reply
