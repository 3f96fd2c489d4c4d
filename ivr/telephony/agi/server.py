"""In-house asyncio FastAGI server.

One task per connection (asyncio.start_server); every read has a timeout, so
an empty or stalled connection costs a sleeping task, never the loop
(panoramisk's server froze the loop on an empty TCP connection). Route
handlers are injected: ``FastAgiServer({"route": handler})`` calls
``await handler(session)`` for ``AGI(agi://host:4573/route)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

from ivr.telephony.agi.protocol import (
    MAX_ENV_LINES,
    MAX_LINE,
    AgiEnvironment,
    AgiHangup,
    AgiProtocolError,
    AgiResponse,
    parse_environment,
    parse_response,
    quote,
)

log = logging.getLogger(__name__)

AgiHandler = Callable[["AgiSession"], Awaitable[None]]


class AgiSession:
    """One FastAGI conversation: the environment plus a command channel."""

    def __init__(
        self,
        env: AgiEnvironment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout_s: float = 30.0,
    ) -> None:
        self.env = env
        self._reader, self._writer = reader, writer
        self.command_timeout_s = command_timeout_s
        self.hung_up = False
        self._lock = asyncio.Lock()  # one command in flight: AGI is strictly request/response

    async def command(self, line: str, *, timeout_s: float | None = None) -> AgiResponse:
        """Send one AGI command and return its response.

        Raises AgiHangup once the channel is gone (HANGUP notice, 511, EOF) and
        TimeoutError if Asterisk does not answer within the timeout (RECORD
        FILE and friends need a ``timeout_s`` longer than their own).
        """
        if self.hung_up:
            raise AgiHangup(f"channel gone, not sending {line.split(' ', 1)[0]}")
        if "\n" in line or "\r" in line:
            raise ValueError("an AGI command is one line")
        async with self._lock:
            self._writer.write(line.encode() + b"\n")
            await self._writer.drain()
            async with asyncio.timeout(timeout_s or self.command_timeout_s):
                return await self._read_response()

    async def _read_response(self) -> AgiResponse:
        while True:
            text = await self._readline()
            if text == "HANGUP":
                # AGISIGHUP notice; the response to our command still follows
                self.hung_up = True
                continue
            if not text:
                continue
            if text.startswith("520-"):
                # usage block: "520-Invalid command syntax..." ... "520 End of proper usage."
                usage = [text[4:]]
                while not (nxt := await self._readline()).startswith("520 "):
                    usage.append(nxt)
                return AgiResponse(code=520, data="\n".join(usage), raw=text)
            resp = parse_response(text)
            if resp.code == 511:
                self.hung_up = True
                raise AgiHangup(resp.raw)
            return resp

    async def _readline(self) -> str:
        try:
            raw = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            self.hung_up = True
            raise AgiHangup("connection closed by Asterisk") from exc
        except asyncio.LimitOverrunError as exc:
            raise AgiProtocolError("response line too long") from exc
        return raw.decode(errors="replace").rstrip("\r\n")

    # ---- conveniences (each one command) --------------------------------

    async def set_variable(self, name: str, value: str) -> AgiResponse:
        """``SET VARIABLE``; names with ``__`` are inherited by the agent leg."""
        return await self.command(f"SET VARIABLE {name} {quote(value)}")

    async def get_variable(self, name: str) -> str | None:
        """Value of a channel variable, None when unset."""
        resp = await self.command(f"GET VARIABLE {name}")
        return resp.data if resp.ok and resp.result == "1" else None

    async def answer(self) -> AgiResponse:
        return await self.command("ANSWER")

    async def verbose(self, message: str, level: int = 3) -> AgiResponse:
        return await self.command(f"VERBOSE {quote(message)} {level}")

    async def stream_file(self, sound: str, escape_digits: str = "") -> AgiResponse:
        """Play a sound (path as Asterisk sees it, no extension)."""
        return await self.command(f"STREAM FILE {sound} {quote(escape_digits)}",
                                  timeout_s=self.command_timeout_s + 120)

    async def get_data(self, sound: str, *, timeout_ms: int, max_digits: int) -> AgiResponse:
        """``GET DATA``: play ``sound`` and collect up to ``max_digits`` keys ('#' ends).

        ``result`` holds the digits (empty on a timeout without keys).
        """
        return await self.command(f"GET DATA {sound} {timeout_ms} {max_digits}",
                                  timeout_s=self.command_timeout_s + 120 + timeout_ms / 1000)

    async def record_file(
        self,
        path: str,
        fmt: str = "wav",
        *,
        escape_digits: str = "#",
        max_s: float = 15.0,
        silence_s: int = 2,
        beep: bool = False,
    ) -> AgiResponse:
        """``RECORD FILE`` at ``path`` (as Asterisk sees it, no extension).

        Ends on ``escape_digits``, ``silence_s`` seconds of silence or after
        ``max_s``; result ``-1`` means the caller hung up while recording.
        """
        cmd = f"RECORD FILE {path} {fmt} {quote(escape_digits)} {int(max_s * 1000)}"
        if beep:
            cmd += " BEEP"
        if silence_s > 0:
            cmd += f" s={silence_s}"
        return await self.command(cmd, timeout_s=max_s + self.command_timeout_s)

    async def hangup(self) -> None:
        """Hang up the channel (the dialplan does not continue)."""
        with contextlib.suppress(AgiHangup):
            await self.command("HANGUP")


class FastAgiServer:
    """asyncio FastAGI server dispatching on the AGI URL path (``/route``).

    ``routes`` maps a script name to an async handler. Handler errors and
    protocol errors are logged and end that session only; the dialplan then
    continues after ``AGI()`` (and falls back to a queue).
    """

    def __init__(
        self,
        routes: Mapping[str, AgiHandler],
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        env_timeout_s: float = 5.0,
        command_timeout_s: float = 30.0,
        session_timeout_s: float = 600.0,
    ) -> None:
        self.routes = dict(routes)
        self.host, self._port = host, port
        self.env_timeout_s = env_timeout_s
        self.command_timeout_s = command_timeout_s
        self.session_timeout_s = session_timeout_s
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.sessions_started = 0
        self.sessions_failed = 0

    @property
    def port(self) -> int:
        """Bound port (the real one when constructed with port 0)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        """Start listening."""
        self._stopping = False
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self._port, limit=MAX_LINE, reuse_address=True
        )
        log.info("fastagi listening on %s:%s", self.host, self.port)

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop listening and cancel sessions still running."""
        server, self._server = self._server, None
        self._stopping = True
        if server is not None:
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> FastAgiServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # tracked so stop() can cancel sessions in progress
            self._tasks.add(task)
        try:
            # asyncio.timeout rather than wait_for, which on 3.11 can swallow a cancel
            async with asyncio.timeout(self.session_timeout_s):
                await self._session(reader, writer)
        except (AgiHangup, ConnectionError):
            pass  # caller or Asterisk went away: nothing left to do
        except TimeoutError:
            self.sessions_failed += 1
            log.warning("fastagi session timed out")
        except AgiProtocolError as exc:
            self.sessions_failed += 1
            log.warning("fastagi protocol error: %s", exc)
        except asyncio.CancelledError:
            if self._stopping:
                # stop() cancelled this session: end quietly (Python 3.11's
                # start_server callback would log a cancelled task as an error)
                return
            raise
        except Exception:  # a handler bug must not take the server down
            self.sessions_failed += 1
            log.exception("fastagi handler failed")
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self.env_timeout_s):
            env = await self._read_environment(reader)
        if env is None:
            return  # connected and closed without a word (port probes, health checks)
        self.sessions_started += 1
        session = AgiSession(env, reader, writer, command_timeout_s=self.command_timeout_s)
        handler = self.routes.get(env.script)
        if handler is None:
            log.warning("fastagi: no route for %r", env.script)
            with contextlib.suppress(AgiHangup):
                await session.verbose(f"Kanaal FastAGI: no route {env.script!r}", 1)
            return
        await handler(session)

    async def _read_environment(self, reader: asyncio.StreamReader) -> AgiEnvironment | None:
        lines: list[str] = []
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if not lines and not exc.partial.strip():
                    return None
                raise AgiProtocolError("connection closed inside the AGI environment") from exc
            except asyncio.LimitOverrunError as exc:
                raise AgiProtocolError("AGI environment line too long") from exc
            line = raw.decode(errors="replace").rstrip("\r\n")
            if not line:
                if not lines:
                    continue  # stray blank line before the environment
                return parse_environment(lines)
            lines.append(line)
            if len(lines) > MAX_ENV_LINES:
                raise AgiProtocolError("AGI environment too long")
