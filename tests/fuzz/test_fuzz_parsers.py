"""Fuzzers for every parser at the edge: only the parser's own, named error may escape.

Bounded (a few hundred examples each, derandomised) so they run in CI in seconds.
A parser that raises anything else (KeyError, IndexError, AttributeError ...) on
bad input would kill the task reading the socket or file: a crash.
"""

from __future__ import annotations

import contextlib
import json
import string
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.config import ConfigError, Settings, load_settings
from ivr.nlu.catalogue import CatalogueError, load_catalogue
from ivr.nlu.evaluation import DatasetError, load_dataset
from ivr.telephony.agi.protocol import (
    AgiProtocolError,
    parse_environment,
    parse_response,
    quote,
)
from ivr.telephony.ami.wire import parse_message
from ivr.telephony.ari.events import EventParseError, parse_event
from ivr.telephony.callerid import parse_caller, region_of

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                        st.text(max_size=20))
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=10)

ARI_TYPES = ["StasisStart", "StasisEnd", "ChannelDtmfReceived", "ChannelHangupRequest",
             "ChannelDestroyed", "ChannelStateChange", "ChannelVarset", "PlaybackStarted",
             "PlaybackFinished", "BridgeDestroyed", "ChannelEnteredBridge", "ChannelLeftBridge",
             "Dial", "Whatever"]
ARI_FIELDS = ["channel", "playback", "bridge", "digit", "duration_ms", "cause", "cause_txt",
              "variable", "value", "args", "replace_channel", "peer", "caller", "forwarded",
              "dialstatus", "dialstring", "application", "timestamp"]
CHANNEL_FIELDS = ["id", "name", "state", "caller", "connected", "dialplan", "language",
                  "channelvars", "creationtime", "accountcode"]

channel_json = st.one_of(json_value, st.fixed_dictionaries(
    {}, optional={k: json_value for k in CHANNEL_FIELDS}))
ari_message = st.one_of(
    json_value,
    st.builds(lambda t, body, ch: {"type": t, **body, "channel": ch},
              st.one_of(st.sampled_from(ARI_TYPES), json_value),
              st.fixed_dictionaries({}, optional={k: json_value for k in ARI_FIELDS}),
              channel_json),
)


@settings(FUZZ, max_examples=120)  # big nested draws: the slowest fuzzer
@given(ari_message)
def test_ari_event_parsing_never_crashes(data: Any) -> None:
    """Any decoded websocket message: a typed or unknown event, or EventParseError."""
    with contextlib.suppress(EventParseError):
        parse_event(data)


@FUZZ
@given(st.text(max_size=300))
def test_ari_event_from_raw_text(text: str) -> None:
    """Raw websocket text through JSON decoding and parsing."""
    try:
        data = json.loads(text)
    except ValueError:
        return
    with contextlib.suppress(EventParseError):
        parse_event(data)


agi_name = st.one_of(st.sampled_from(["agi_request", "agi_network_script", "agi_callerid",
                                      "agi_arg_1", "agi_arg_2", "agi_arg_10", "agi_enhanced",
                                      "agi_dnid", "agi_calleridname"]),
                     st.text(max_size=12))
agi_line = st.one_of(st.builds(lambda n, v: f"{n}: {v}", agi_name, st.text(max_size=40)),
                     st.text(max_size=60))


@FUZZ
@given(st.lists(agi_line, max_size=12))
def test_agi_environment_never_crashes(lines: list[str]) -> None:
    """Any environment block: an AgiEnvironment or AgiProtocolError."""
    with contextlib.suppress(AgiProtocolError):
        parse_environment(lines)


@FUZZ
@given(st.one_of(st.text(max_size=80),
                 st.builds(lambda c, r: f"{c} {r}", st.integers(0, 999), st.text(max_size=60))))
def test_agi_response_never_crashes(line: str) -> None:
    """Any response line: an AgiResponse or AgiProtocolError."""
    with contextlib.suppress(AgiProtocolError):
        parse_response(line)


@FUZZ
@given(st.text(max_size=60))
def test_agi_quote_is_one_argument(value: str) -> None:
    """A quoted argument never carries a line break (it would end the AGI command)."""
    q = quote(value)
    assert "\n" not in q and "\r" not in q and q.startswith('"') and q.endswith('"')


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_ami_message_never_crashes(data: bytes | str) -> None:
    """Any AMI frame parses into a message (unknown lines are kept or skipped)."""
    parse_message(data)


caller_raw = st.one_of(
    st.none(), st.text(max_size=30),
    st.text(alphabet=string.digits + "+-() ", max_size=25),
    st.sampled_from(["anonymous", "unknown", "Restricted", "+31612345678", "0031612345678",
                     "00", "+", "+0", "+999999999999999999999", "sip:123@host", "<1234>",
                     "\"Anna\" <+31612345678>", "0612345678", "112"]))
region = st.one_of(st.sampled_from(["NL", "GB", "US", "ZZ", "", "nl", "XX"]), st.text(max_size=3))


@FUZZ
@given(caller_raw, region, st.one_of(st.none(), caller_raw))
def test_caller_id_parsing_never_crashes(raw: str | None, default_region: str,
                                        dialed: str | None) -> None:
    """Any CLI: a Caller, valid or not, never an exception; a number is E.164."""
    c = parse_caller(raw, default_region, dialed)
    if c.number is not None:
        assert c.number.startswith("+") and c.number[1:].isdigit()
        region_of(c.number)


@FUZZ
@given(st.text(max_size=30))
def test_region_of_never_crashes(number: str) -> None:
    """region_of takes anything a contact record may hold."""
    region_of(number)


setting_names = st.sampled_from(sorted(f"IVR_{f.upper()}" for f in Settings.__dataclass_fields__))
setting_value = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "0", "-1", "1e309", "nan", "inf", "true", "no", "yes", "  ", "x" * 300,
                     "http://", "sqlite://", "postgresql://u:p@h/d", "a,b,,c", "en,nl", "xx",
                     "Europe/Nowhere", "999999999999999999999", "0.5", "-0.0"]))


@FUZZ
@given(st.dictionaries(setting_names, setting_value, max_size=4))
def test_config_loading_never_crashes(environ: dict[str, str]) -> None:
    """Any IVR_* values: Settings, or ConfigError naming the variable."""
    with contextlib.suppress(ConfigError):
        load_settings(env_file=None, environ=environ)


yaml_text = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["", "---", "[]", "{}", "a: b", "intents: []", "intents: {}",
                     "language: en\nintents:\n  x: 1",
                     "language: en\nintents:\n  x:\n    examples: 3",
                     "language: en\nintents:\n  x:\n    examples: [a]\n    scenario: S9",
                     "&a [*a]", "!!python/object:os.system {}", "a: &x 1\nb: *x",
                     "language: en\nintents:\n  x:\n    examples: [a, b]\n    keypad: [1]"]),
    st.builds(lambda v: f"language: en\nintents:\n  order_status:\n    examples: {v}\n",
              st.text(max_size=40)),
)


@FUZZ
@given(yaml_text, yaml_text)
def test_catalogue_yaml_never_crashes(en: str, nl: str) -> None:
    """Any YAML in en.yaml / nl.yaml: a catalogue or CatalogueError with file and line."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "en.yaml").write_text(en, encoding="utf-8")
        (d / "nl.yaml").write_text(nl, encoding="utf-8")
        with contextlib.suppress(CatalogueError):
            load_catalogue(d, ("en", "nl"))


csv_text = st.one_of(
    st.text(max_size=200),
    st.builds(lambda h, rows: h + "\n" + "\n".join(rows),
              st.sampled_from(["text,label", "text,intent", "utterance,label", "a,b", "",
                               "text", "\"text,label"]),
              st.lists(st.text(alphabet=string.printable, max_size=30), max_size=5)))


@FUZZ
@given(csv_text, st.one_of(st.none(), st.text(max_size=8)))
def test_eval_csv_never_crashes(text: str, column: str | None) -> None:
    """Any CSV: (text, label) rows or DatasetError."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "data.csv"
        p.write_text(text, encoding="utf-8")
        with contextlib.suppress(DatasetError):
            load_dataset(p, text_column=column)


@FUZZ
@given(st.one_of(json_value, st.dictionaries(st.sampled_from(["train", "test", "val"]),
                                             json_value, max_size=3)),
       st.lists(st.sampled_from(["train", "test", "oos_test"]), max_size=2))
def test_eval_json_never_crashes(data: Any, splits: list[str]) -> None:
    """Any CLINC-style JSON: (text, label) rows or DatasetError."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "data.json"
        p.write_text(json.dumps(data), encoding="utf-8")
        with contextlib.suppress(DatasetError):
            load_dataset(p, splits)


@FUZZ
@given(st.binary(max_size=100))
def test_eval_binary_never_crashes(blob: bytes) -> None:
    """Bytes that are not UTF-8 at all: DatasetError."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("data.csv", "data.json"):
            p = Path(tmp) / name
            p.write_bytes(blob)
            with contextlib.suppress(DatasetError):
                load_dataset(p, ("train",) if name.endswith("json") else ())


@FUZZ
@given(st.text(max_size=40), st.from_regex(r"\+[1-9][0-9]{9,13}", fullmatch=True),
       st.text(max_size=40))
def test_log_masking_hides_any_e164_number(before: str, number: str, after: str) -> None:
    """A number anywhere in a log line loses all but its prefix and last 3 digits."""
    from ivr.logs import mask_text

    masked = mask_text(f"{before} {number} {after}")
    assert number not in masked
