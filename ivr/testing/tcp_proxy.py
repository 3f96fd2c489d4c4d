"""A TCP proxy that a test can kill and bring back: a service dying, seen from a client.

Put it between a client and a real server (Kanaal's AMI client and the rig's
Asterisk). ``kill()`` resets every open connection and stops listening, so new
connections are refused, exactly what a client meets when the service dies or its
host drops off the network; ``revive()`` listens on the same port again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


class KillableProxy:
    """Forward ``127.0.0.1:port`` to ``target``; kill and revive on demand."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self._target = (target_host, target_port)
        self.port = port or _free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.kills = 0

    async def __aenter__(self) -> KillableProxy:
        await self.revive()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()

    @property
    def alive(self) -> bool:
        return self._server is not None

    async def revive(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                      reuse_address=True)

    async def kill(self) -> None:
        """Stop listening and reset every connection (RST, not a polite close)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            self.kills += 1
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    # SO_LINGER 0: close() sends RST, as a dead peer's kernel would
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        self._writers.clear()
        for pump in list(self._pumps):
            pump.cancel()
        if server is not None:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pump(src, dst))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        dst.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
