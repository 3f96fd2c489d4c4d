"""Structured, masked logs: the call's session on every line, phone numbers and PINs masked.

Built on the stdlib ``logging`` rather than structlog or loguru: one less dependency,
and uvicorn, httpx and twilio already log through stdlib ``logging``, so one set of
filters and one formatter cover their records as well as ours.

- ``bind_session(session_id)`` puts the call's session id in a ``ContextVar``. Each
  call runs in its own asyncio task and a task copies the context it was created in,
  so binding at the top of a call task scopes the id to that call (and to whatever it
  runs via ``asyncio.to_thread``, which copies the context too).
- ``SessionFilter`` stamps ``record.session`` (``-`` outside a call).
- ``MaskingFilter`` masks phone numbers and PINs in the message and its args.
  ``configure_logging`` runs it from the log-record factory, i.e. on every record as it
  is created, so handlers we do not own (uvicorn installs its own) see masked text too.
- ``TextFormatter`` (``time level logger [session] message``) and ``JsonFormatter``
  (one JSON object per line), chosen by the ``log_format`` setting.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
NO_SESSION = "-"

# Chatty at INFO (twilio.http_client dumps every request with its phone numbers, httpx
# logs every request line); they log at WARNING and above unless the level is DEBUG.
QUIET_LOGGERS = (
    "httpx", "httpcore", "twilio", "twilio.http_client", "uvicorn.access", "uvicorn.error",
    "websockets", "asyncio", "alembic", "faster_whisper",
)

_session: ContextVar[str | None] = ContextVar("ivr_session", default=None)


# --- session binding ---------------------------------------------------------------


def current_session() -> str | None:
    """The session id bound in this context, or None outside a call."""
    return _session.get()


class SessionBinding:
    """Result of :func:`bind_session`; as a context manager it restores the previous id."""

    def __init__(self, token: Token[str | None]) -> None:
        self._token = token

    def reset(self) -> None:
        """Restore the id bound before (must run in the same context)."""
        _session.reset(self._token)

    def __enter__(self) -> SessionBinding:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.reset()


def bind_session(session_id: str | None) -> SessionBinding:
    """Bind ``session_id`` to the current context, effective immediately.

    At the top of a per-call task a plain call is enough (the task's context dies with
    it); where calls share a task, use ``with bind_session(sid): ...``.
    """
    return SessionBinding(_session.set(session_id))


class SessionFilter(logging.Filter):
    """Adds ``record.session``: the bound session id, or ``-`` outside a call."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "session", None):  # keep one passed via extra=
            record.session = _session.get() or NO_SESSION
        return True


# --- masking -----------------------------------------------------------------------

# E.164 (+31201234567, whatsapp:+31..., "+31 6 1234 5678"): 8 to 15 digits after "+".
_E164 = re.compile(r"(?<![\w+])\+\d(?:[ -]?\d){7,14}(?!\d)")
# National and 00-international forms (0612345678, 06-12345678, 0031...): 9+ digits from
# a leading 0. Not after a word character, "." or "-", so ids, hex, floats and UUID
# groups are left alone.
_NATIONAL = re.compile(r"(?<![\w+.-])0\d(?:[ -]?\d){7,13}(?!\d)")
# pin=1234, "pin": "1234", 'pin': 1234, PIN 1234, pin_code=1234
_PIN = re.compile(r"""(?i)(\bpin(?:_?code)?["']?\s*[:=]?\s*["']?)\d{3,12}(?!\d)""")


# Caller and customer names where they come as key/value (AGI environment lines,
# AMI fields, JSON): agi_calleridname: Anna de Vries, CallerIDName: Anna,
# "customer_name": "Anna", ConnectedLineName=Anna. The value up to the line's end or a
# separator becomes ***. Free text naming someone is not recognisable; such text (what a
# caller said) is not logged.
_NAME = re.compile(
    r"""(?i)(\b(?:agi_)?(?:caller_?id_?name|connected_?line_?name|caller_?name|"""
    r"""customer_?name|calleridname)["']?\s*[:=]\s*["']?)[^"',;\n\r}]+""")


def _mask_number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = [c for c in text if c.isdigit()]
    keep_head = 2 if text.startswith("+") else 1  # "+31" (country code) or "0"
    head = ("+" if text.startswith("+") else "") + "".join(digits[:keep_head])
    return head + "*" * (len(digits) - keep_head - 3) + "".join(digits[-3:])


def mask_text(text: str) -> str:
    """``text`` with phone numbers (all but a prefix and the last 3 digits), PINs and
    caller/customer names given as key/value masked."""
    if "name" in text.lower():
        text = _NAME.sub(r"\1***", text)
    if not any(c.isdigit() for c in text):
        return text
    text = _PIN.sub(r"\1****", text)
    text = _E164.sub(_mask_number, text)
    return _NATIONAL.sub(_mask_number, text)


class MaskingFilter(logging.Filter):
    """Masks phone numbers and PINs in ``record.msg``, its string args and the final message.

    String args are masked in place (they stay args); if the rendered message still
    changes under masking (a number inside a non-string arg, or split across template
    and arg) the record is replaced by its masked rendering.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if isinstance(record.msg, str):
                record.msg = mask_text(record.msg)
            args = record.args
            if isinstance(args, tuple):
                record.args = tuple(mask_text(a) if isinstance(a, str) else a for a in args)
            elif isinstance(args, Mapping):
                record.args = {k: mask_text(v) if isinstance(v, str) else v
                               for k, v in args.items()}
            message = record.getMessage()
            masked = mask_text(message)
            if masked != message:
                record.msg, record.args = masked, ()
        except Exception:  # a broken log call must not raise here; logging reports it later
            pass
        return True


class _MaskingRecordFactory:
    """Wraps the log-record factory so every record is masked as it is created."""

    def __init__(self, inner: Any, masking: MaskingFilter) -> None:
        self.inner = inner
        self.masking = masking

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        self.masking.filter(record)
        return record


# --- formatters --------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """``2026-11-24 10:30:00,123 INFO ivr.telephony.ari.app [session] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(session)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "session"):  # a handler without SessionFilter
            record.session = NO_SESSION
        return super().format(record)

    def formatException(self, ei: Any) -> str:  # stdlib name
        return mask_text(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # stdlib name
        return mask_text(super().formatStack(stack_info))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, session, msg and exc (if any)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "session": getattr(record, "session", None) or NO_SESSION,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = mask_text(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exc"] = mask_text(record.exc_text)
        if record.stack_info:
            doc["stack"] = mask_text(self.formatStack(record.stack_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


# --- set-up ------------------------------------------------------------------------


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to ``sys.stderr`` as it is at emit time (click's test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


def configure_logging(level: str = "INFO", fmt: str = "text", *,
                      stream: TextIO | None = None) -> logging.Handler:
    """Send all logs to stderr (or ``stream``) with session, masking and ``fmt`` format.

    Idempotent: calling it again (the CLI does, once the settings are read) replaces the
    handler it installed before and leaves other handlers (pytest's) alone.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: use {' or '.join(LOG_FORMATS)}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    handler: logging.Handler = (_StderrHandler() if stream is None
                                else logging.StreamHandler(stream))
    handler.set_name("ivr")
    handler.addFilter(SessionFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "ivr"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _MaskingRecordFactory):
        logging.setLogRecordFactory(_MaskingRecordFactory(factory, MaskingFilter()))
    return handler
