"""FastAGI /route runs the real CallFlow over an AgiCallChannel (TCP; the test plays Asterisk)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import date
from pathlib import Path

import pytest

from ivr.domain.flow import CallFlow, ContactLogObserver, FlowConfig, FlowPorts
from ivr.domain.model import (
    ContactChannel,
    Language,
    Order,
    Outcome,
    RouteDecision,
    Utterance,
)
from ivr.domain.ports import CallChannel, Prompt
from ivr.domain.routing import SimpleRouter, fallback_decision
from ivr.telephony.agi import FastAgiServer
from ivr.telephony.agi.route import FlowAgi
from ivr.testing.fake_agi import FakeAsterisk, env_block
from ivr.testing.fakes import (
    BOB,
    FakeAgentPool,
    FakeCatalogue,
    FakeDirectory,
    FakeKnowledge,
    FakeLinks,
    FakeMessenger,
    Faults,
    FixedClock,
    InMemoryContactLog,
    KeywordMatcher,
)


class Sounds:
    """Prompt -> sound URI, as the node's FilePromptResolver answers."""

    async def resolve(self, prompt: Prompt) -> str:
        return f"sound:/prompts/{prompt.key}"


class Node:
    """The flow's ports as fakes, a FlowAgi on a free port, and what each caller said."""

    def __init__(self, tmp_path: Path, answers: list[str]) -> None:
        self.faults = Faults()
        self.contacts = InMemoryContactLog()
        self.answers = list(answers)
        self.heard_languages: list[Language] = []
        self.tmp_path = tmp_path
        self.ports = FlowPorts(
            directory=FakeDirectory(customers=[BOB], order_book={
                2: [Order("B777", "processing", date(2026, 11, 28))]}, faults=self.faults),
            knowledge=FakeKnowledge(faults=self.faults), catalogue=FakeCatalogue(),
            matcher=KeywordMatcher(faults=self.faults),
            router=SimpleRouter(FakeAgentPool(faults=self.faults)),
            messenger=FakeMessenger(faults=self.faults), links=FakeLinks(), clock=FixedClock())
        self.route = FlowAgi(
            run_flow=self.run_flow,
            fail_safe=lambda reason, session: fallback_decision(reason, session),
            prompts=Sounds(), transcribe=self.transcribe,
            record_dir_asterisk="/var/spool/asterisk/kanaal", record_dir_local=tmp_path,
            new_session_id=lambda: "sess-1")

    async def run_flow(self, channel: CallChannel, language: Language | None = None) -> None:
        config = FlowConfig(default_language=language or "en")
        await CallFlow(channel, ports=self.ports, config=config,
                       observers=(ContactLogObserver(self.contacts),),
                       contact_channel=ContactChannel.VOICE).run()

    async def transcribe(self, path: Path, language: Language,
                         phrases: Sequence[str]) -> Utterance | None:
        assert path.read_bytes() == b"RIFF-speech"  # noqa: ASYNC240 - tiny test file
        self.heard_languages.append(language)
        text = self.answers.pop(0) if self.answers else ""
        return Utterance(text=text) if text else None

    def reply(self, cmd: str) -> str:
        """Asterisk's answers: RECORD FILE writes a file, GET DATA times out, HANGUP ends."""
        if cmd.startswith("RECORD FILE"):
            name = Path(cmd.split()[2]).name
            (self.tmp_path / f"{name}.wav").write_bytes(b"RIFF-speech")
            return "200 result=0 endpos=16000\n"
        if cmd.startswith("GET DATA"):
            return "200 result= (timeout)\n"
        if cmd.startswith("STREAM FILE"):
            return "200 result=0 endpos=8000\n"
        if cmd == "HANGUP":
            return "200 result=1\n"
        return "200 result=1\n"


@pytest.fixture
async def serve() -> AsyncIterator[list[FastAgiServer]]:
    servers: list[FastAgiServer] = []
    yield servers
    for srv in servers:
        await srv.stop()


async def call(node: Node, servers: list[FastAgiServer], **env: str) -> FakeAsterisk:
    srv = FastAgiServer({"route": node.route}, port=0)
    servers.append(srv)
    await srv.start()
    ast = await FakeAsterisk.connect(srv.port)
    await ast.send(env_block(**env))
    await asyncio.wait_for(ast.serve(node.reply), 10)
    return ast


def variables(ast: FakeAsterisk) -> dict[str, str]:
    return {c.split()[2]: c.split(" ", 3)[3].strip('"') for c in ast.commands
            if c.startswith("SET VARIABLE")}


async def test_agi_caller_is_asked_and_handed_to_the_skilled_queue(serve, tmp_path) -> None:
    """An unknown caller is greeted, asked, understood, and handed to billing with context."""
    node = Node(tmp_path, ["I have a question about my invoice"])
    ast = await call(node, serve, agi_callerid="+31201234567")
    plays = [c.split()[2] for c in ast.commands if c.startswith(("STREAM FILE", "GET DATA"))]
    # Ask first: the invoice question needs an account, so the number is asked after it.
    assert plays[:3] == ["/prompts/greeting", "/prompts/ask_question",
                         "/prompts/ask_customer_no"]
    assert "/prompts/transfer" in plays
    v = variables(ast)
    assert v["__IVR_SESSION"] == "sess-1" and v["__IVR_INTENT"] == "invoice_question"
    assert v["IVR_QUEUE"] == "billing" and v["__IVR_SCENARIO"] == "S4"
    assert "__IVR_FALLBACK" not in v and "HANGUP" not in ast.commands
    assert node.heard_languages == ["nl"]  # ?lang=nl on the AGI URL
    contact = node.contacts.records["sess-1"]
    assert contact.outcome is Outcome.AGENT and contact.question.startswith("I have")
    assert not list(tmp_path.glob("*.wav")), "recordings are removed after the call"


async def test_agi_known_caller_gets_an_automated_answer_and_goodbye(serve, tmp_path) -> None:
    """S1 over AGI: the order status is spoken, 'yes' closes the call with HANGUP, no queue."""
    node = Node(tmp_path, ["where is my order", "yes thanks"])
    ast = await call(node, serve, agi_callerid="+447700900123", agi_network_script="route",
                     agi_request="agi://127.0.0.1/route")
    plays = [c.split()[2] for c in ast.commands if c.startswith("STREAM FILE")]
    assert "/prompts/order_status" in plays and "/prompts/goodbye" in plays
    assert ast.commands[-1] == "HANGUP"
    assert "IVR_QUEUE" not in variables(ast)
    assert node.contacts.records["sess-1"].outcome is Outcome.SELF_SERVED
    assert node.heard_languages == ["en", "en"]


async def test_agi_port_failure_mid_call_goes_to_the_fallback_queue(serve, tmp_path) -> None:
    """The matcher dies mid-call: the caller is told and handed to the Router's fail-safe."""
    node = Node(tmp_path, ["where is my order"])
    node.faults.fail("matcher")
    ast = await call(node, serve)
    v = variables(ast)
    assert v["IVR_QUEUE"] == "general"
    assert any(c.startswith("STREAM FILE /prompts/system_problem") for c in ast.commands)
    assert node.contacts.records["sess-1"].outcome is Outcome.ERROR_TO_AGENT


async def test_agi_flow_that_cannot_run_sets_the_dialplan_fallback(serve, tmp_path) -> None:
    """If the flow itself raises, IVR_FALLBACK and the fail-safe queue are set for the dialplan."""
    node = Node(tmp_path, [])

    async def broken(channel: CallChannel, language: Language | None = None) -> None:
        raise RuntimeError("bug")

    node.route._run_flow = broken  # type: ignore[assignment]
    ast = await call(node, serve)
    v = variables(ast)
    assert v["__IVR_FALLBACK"] == "flow_error" and v["IVR_QUEUE"] == "general"


async def test_agi_caller_hangs_up_while_recording(serve, tmp_path) -> None:
    """RECORD FILE result=-1 (hang-up): the flow stops, no further commands, contact saved."""
    node = Node(tmp_path, ["never heard"])
    srv = FastAgiServer({"route": node.route}, port=0)
    serve.append(srv)
    await srv.start()
    ast = await FakeAsterisk.connect(srv.port)
    await ast.send(env_block(agi_callerid="anonymous"))
    while (cmd := await ast.next_command()) is not None:
        if cmd.startswith("RECORD FILE"):
            await ast.send(b"HANGUP\n200 result=-1 (hangup) endpos=0\n")
            break
        await ast.send(node.reply(cmd).encode())
    assert await ast.next_command() is None
    contact = node.contacts.records["sess-1"]
    assert contact.outcome is Outcome.ABANDONED and contact.dropped_at is not None


def test_fail_safe_decision_is_a_human_queue() -> None:
    """The Router's fail-safe is pure and names the fallback skill."""
    d: RouteDecision = SimpleRouter(FakeAgentPool()).fail_safe("x", session_id="s")
    assert d.queue == "general" and d.session_id == "s" and d.priority == 1
