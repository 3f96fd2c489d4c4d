"""`ivr call --say`: --lang greets an unknown caller in that language and --at pins the
node's clock, as they do on the text channel (both were ignored with --say)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from ivr.cli.call_cmd import _parse_at
from ivr.cli.voice_call import voice_call_plan
from ivr.config import load_settings


def test_lang_and_at_reach_the_voice_node() -> None:
    base = replace(load_settings(env_file=None), default_language="en")
    at = _parse_at("2026-11-28T23:30")
    settings, spec, clock = voice_call_plan(base, say="waar is mijn bestelling",
                                            from_number=None, lang="nl", dtmf=None, at=at)
    assert settings.default_language == "nl" and spec.lang == "nl"
    assert clock is not None and clock.now() == at
    assert clock.now().astimezone(UTC) == datetime(2026, 11, 28, 22, 30, tzinfo=UTC)


def test_without_options_the_node_keeps_its_settings_and_clock() -> None:
    base = replace(load_settings(env_file=None), default_language="nl")
    settings, spec, clock = voice_call_plan(base, say="hello", from_number="+31201234567",
                                            lang=None, dtmf="#")
    assert settings.default_language == "nl"  # the node's own default, not forced to en
    assert spec.lang == "en" and spec.dtmf == "#" and clock is None
