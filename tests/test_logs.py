"""Structured logs: session binding per call task, masking of numbers and PINs, JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from ivr.config import ConfigError, load_settings
from ivr.logs import (
    QUIET_LOGGERS,
    JsonFormatter,
    MaskingFilter,
    SessionFilter,
    bind_session,
    configure_logging,
    current_session,
    mask_text,
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    factory = logging.getLogRecordFactory()
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _logger(name: str, *filters: logging.Filter) -> tuple[logging.Logger, ListHandler]:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = ListHandler()
    for f in filters:
        handler.addFilter(f)
    logger.handlers = [handler]
    return logger, handler


@pytest.mark.parametrize(("text", "expected"), [
    ("caller +31201234567 rang", "caller +31******567 rang"),
    ("to whatsapp:+31612345678", "to whatsapp:+31******678"),
    ("cli +31 6 1234 5678 ok", "cli +31******678 ok"),
    ("national 0612345678.", "national 0******678."),
    ("intl 0031201234567", "intl 0*********567"),
    ("pin=1234", "pin=****"),
    ('{"pin": "1234", "x": 1}', '{"pin": "****", "x": 1}'),
    ("{'pin': 98765}", "{'pin': ****}"),
    ("wrong PIN 4321", "wrong PIN ****"),
    ("line 'agi_calleridname: Anna de Vries'", "line 'agi_calleridname: ***'"),
    ("CallerIDName: Bob Smith\r\nUniqueid: 1.2", "CallerIDName: ***\r\nUniqueid: 1.2"),
    ('{"customer_name": "Anna de Vries", "id": 1}', '{"customer_name": "***", "id": 1}'),
    ("ConnectedLineName=Ann Agent,x", "ConnectedLineName=***,x"),
])
def test_mask_text_masks_numbers_and_pins(text: str, expected: str) -> None:
    """Phone numbers keep a prefix and their last 3 digits; PIN digits are starred."""
    assert mask_text(text) == expected


@pytest.mark.parametrize("text", [
    "session 87c89160-4a02-4995-9c78-012345678901",
    "sid AC00000000000000000000000000000000",
    "took 0.0612345678 s at 1712345678.123",
    "2026-11-24T10:30:00 PinnedClock 20 ms",
])
def test_mask_text_leaves_ids_times_and_floats_alone(text: str) -> None:
    """UUIDs, SIDs, channel ids, floats and timestamps are not phone numbers."""
    assert mask_text(text) == text


def test_masking_filter_masks_message_and_args() -> None:
    """Numbers in the template and in args are masked; a PIN split across template and
    arg is masked in the final message."""
    logger, handler = _logger("test.logs.masking", MaskingFilter())
    logger.info("call from %s (fallback 0612345678) pin=%s", "+447700900123", "1234")
    logger.info("caller %s", "+447700900123")
    first, second = handler.records
    message = first.getMessage()
    assert message == "call from +44*******123 (fallback 0******678) pin=****"
    assert "1234" not in message and "+447700900123" not in str(first.args)
    assert second.args == ("+44*******123",)  # string args stay args, masked
    assert second.getMessage() == "caller +44*******123"


def test_json_formatter_emits_one_json_object_with_session() -> None:
    """Each record is one line of valid JSON with ts, level, logger, session, msg, exc."""
    logger, handler = _logger("test.logs.json", SessionFilter(), MaskingFilter())
    with bind_session("sess-42"):
        try:
            raise RuntimeError("no customer for +31201234567")
        except RuntimeError:
            logger.exception("lookup of %s failed", "+31201234567")
    logger.warning("after the call")
    fmt = JsonFormatter()
    lines = [fmt.format(r) for r in handler.records]
    assert all("\n" not in line for line in lines)
    first, second = (json.loads(line) for line in lines)
    assert first["session"] == "sess-42" and second["session"] == "-"
    assert first["level"] == "ERROR" and first["logger"] == "test.logs.json"
    assert first["msg"] == "lookup of +31******567 failed"
    assert "RuntimeError: no customer for +31******567" in first["exc"]
    assert "+31201234567" not in lines[0]
    assert "exc" not in second and second["ts"].endswith("+00:00")


async def test_session_binding_is_per_task() -> None:
    """Two concurrent call tasks each log with their own session id; outside, none."""
    logger, handler = _logger("test.logs.tasks", SessionFilter())

    async def call(session_id: str) -> None:
        bind_session(session_id)  # as StasisApp._call does, at the top of the task
        for i in range(3):
            logger.info("%s step %d", session_id, i)
            await asyncio.sleep(0)  # interleave with the other call

    await asyncio.gather(asyncio.create_task(call("A")), asyncio.create_task(call("B")))
    logger.info("outside")
    seen = [(r.getMessage().split()[0], r.__dict__["session"]) for r in handler.records]
    assert [s for _, s in seen[:-1]] == ["A", "B"] * 3  # really interleaved
    assert all(owner == session for owner, session in seen[:-1])
    assert seen[-1] == ("outside", "-") and current_session() is None


def test_bind_session_as_context_manager_restores_previous() -> None:
    """Calls sharing a task (the text demo) scope their binding with `with`."""
    with bind_session("outer"):
        with bind_session("inner"):
            assert current_session() == "inner"
        assert current_session() == "outer"
    assert current_session() is None


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_json_masks_everything_and_quiets_libraries() -> None:
    """Root handler writes JSON lines; library INFO chatter is dropped; records reaching a
    handler we do not own (uvicorn installs its own) are masked too."""
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    foreign, foreign_handler = _logger("test.logs.foreign")  # no filters at all
    with bind_session("s-1"):
        logging.getLogger("ivr.test").info("SMS to %s", "+31612345678")
        logging.getLogger("httpx").info("HTTP Request: POST http://x")
        logging.getLogger("twilio.http_client").info("-- BEGIN Twilio API Request --")
        logging.getLogger("httpx").warning("slow +31612345678")
        foreign.info("uvicorn-ish pin=1234 from 0612345678")
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["logger"], d["session"], d["msg"]) for d in docs] == [
        ("ivr.test", "s-1", "SMS to +31******678"),
        ("httpx", "s-1", "slow +31******678"),
    ]
    assert foreign_handler.records[0].getMessage() == "uvicorn-ish pin=**** from 0******678"


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_debug_lets_library_logs_through_and_replaces_handler() -> None:
    """At DEBUG the library loggers are not quieted; re-configuring swaps our handler."""
    first = io.StringIO()
    configure_logging("INFO", "text", stream=first)
    out = io.StringIO()
    configure_logging("DEBUG", "text", stream=out)
    logging.getLogger("httpx").info("HTTP Request: GET http://x")
    assert first.getvalue() == ""
    assert out.getvalue().rstrip().endswith("INFO httpx [-] HTTP Request: GET http://x")
    assert sum(h.get_name() == "ivr" for h in logging.getLogger().handlers) == 1


def test_log_format_setting_is_validated() -> None:
    """IVR_LOG_FORMAT accepts text or json and names the variable when wrong."""
    assert load_settings(env_file=None, environ={"IVR_LOG_FORMAT": "json"}).log_format == "json"
    assert load_settings(env_file=None, environ={}).log_format == "text"
    with pytest.raises(ConfigError, match="IVR_LOG_FORMAT='xml'"):
        load_settings(env_file=None, environ={"IVR_LOG_FORMAT": "xml"})
