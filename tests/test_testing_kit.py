"""The shipped testing kit (ivr.testing): one fault switch, the scripted recogniser."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ivr.config import Settings, load_settings
from ivr.domain.ports import IntentCatalogue, IntentMatcher, PortError
from ivr.nlu.catalogue import load_catalogue
from ivr.testing.fakes import FakeDirectory, Faults, InMemoryContactLog, KeywordMatcher
from ivr.testing.recognizers import ScriptedRecognizer


async def test_one_switch_breaks_and_heals_several_fakes() -> None:
    """Fakes sharing a Faults object fail and recover together or one by one."""
    faults = Faults()
    directory, matcher = FakeDirectory(faults=faults), KeywordMatcher(faults=faults)
    contacts = InMemoryContactLog(faults=faults)
    faults.fail("directory")
    with pytest.raises(PortError, match="directory is down"):
        await directory.find_by_number("+31612345678")
    assert (await matcher.match("my order", "en")).best is not None
    faults.fail_all()
    with pytest.raises(PortError):
        await matcher.match("my order", "en")
    faults.heal("matcher")
    assert (await matcher.match("my order", "en")).best is not None
    with pytest.raises(PortError):
        await contacts.get("x")
    faults.heal_all()
    assert await directory.find_by_number("+31612345678") is None


def test_fakes_get_their_own_switch_by_default_and_typos_are_refused() -> None:
    """Without faults= each fake is independent; an unknown port name is an error."""
    a, b = FakeDirectory(), FakeDirectory()
    a.faults.fail("directory")
    assert a.faults.is_down("directory") and not b.faults.is_down("directory")
    with pytest.raises(ValueError, match="unknown port"):
        a.faults.fail("directroy")  # type: ignore[arg-type]


async def test_scripted_recognizer_hears_one_text_per_turn() -> None:
    """Each stream reports speech, an endpoint, then its scripted text; then silence."""
    rec = ScriptedRecognizer(["where is my order"], endpoint_after_frames=3)
    assert rec.supports("nl")
    stream = await rec.open_stream("en", sample_rate=16000, phrases=("order",))
    events = [await stream.feed(b"\0\0" * 320) for _ in range(3)]
    assert events[0].speech_started and [e.endpoint for e in events] == [False, False, True]
    result = await stream.finish()
    assert (result.text, result.confidence) == ("where is my order", 0.9)
    await stream.close()
    silent = await rec.open_stream("en", sample_rate=16000)
    assert not (await silent.feed(b"\0\0" * 320)).speech_started
    assert (await silent.finish()).text == ""
    assert [r.phrases for r in rec.requests] == [("order",), ()]
    assert rec.streams[0].closed


async def test_scripted_recognizer_can_be_down() -> None:
    """faults.fail('recognizer') makes open_stream raise PortError."""
    faults = Faults()
    rec = ScriptedRecognizer(["hello"], faults=faults)
    faults.fail("recognizer")
    with pytest.raises(PortError):
        await rec.open_stream("en", sample_rate=8000)


async def test_shared_understanding_trains_once_and_hands_out_independent_matchers(
        tmp_path: Path) -> None:
    """The session's shared matcher (tests/conftest.py): one training per catalogue
    content; each App gets its own limits, pool and memo over the same models; a
    changed catalogue trains again."""
    from ivr.nlu.matcher import HybridIntentMatcher
    from ivr.testing.shared_models import SharedUnderstanding

    # fresh_view resets the runtime state by name: new matcher state must be sorted
    # into "fitted, shared" or "per matcher, reset" there before this passes.
    assert set(vars(HybridIntentMatcher())) == {
        "_embedder", "_embedders", "_config", "_models",  # fitted: shared
        "limits", "_pool", "_pending", "_lock", "_recent"}  # per matcher
    built: list[HybridIntentMatcher] = []

    def build(settings: Settings) -> tuple[IntentCatalogue, IntentMatcher]:
        m = HybridIntentMatcher().fit(["where is my order", "opening hours", "my bill"],
                                      ["order_status", "opening_hours", "invoice"])
        built.append(m)
        return load_catalogue(settings.grammars_dir, languages=("en",)), m

    (tmp_path / "en.yaml").write_bytes((Path("grammars") / "en.yaml").read_bytes())
    base = replace(load_settings(env_file=None, environ={}), grammars_dir=tmp_path,
                   languages=("en",))
    shared = SharedUnderstanding(build)
    _, one = shared(base)
    _, two = shared(replace(base, nlu_max_pending=3))
    assert shared.trained == 1 and len(built) == 1
    assert isinstance(one, HybridIntentMatcher) and isinstance(two, HybridIntentMatcher)
    assert one is not built[0] and two is not one
    assert two.limits.max_pending == 3 and one.limits.max_pending == base.nlu_max_pending
    try:
        first = await one.match("where is my order", "en")
        assert first.ranked == built[0].predict("where is my order", "en").ranked
        assert two.pending == 0 and one._recent and not two._recent
        one.fit(["hello there", "goodbye now"], ["greet", "bye"])  # retrains only `one`
        assert two.model("en") is built[0].model("en") is not one.model("en")
    finally:
        one.close()
        two.close()
    (tmp_path / "en.yaml").write_text(
        (tmp_path / "en.yaml").read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    shared(base)
    assert shared.trained == 2


def test_shared_whisper_models_load_once_per_arguments_and_never_keep_a_failure() -> None:
    """The session's Whisper stand-in (tests/conftest.py): one load per model and
    options; other options load again; a failed load raises and is retried."""
    from ivr.testing.shared_models import SharedWhisperModels

    calls: list[tuple[str, dict[str, object]]] = []

    def load(path: str, **options: object) -> object:
        calls.append((path, options))
        if path == "broken":
            raise RuntimeError("no model.bin")
        return object()

    shared = SharedWhisperModels(load)
    a = shared("tiny", device="cpu", cpu_threads=1)
    assert shared("tiny", cpu_threads=1, device="cpu") is a and shared.loads == 1
    assert shared("tiny", device="cpu", cpu_threads=2) is not a and shared.loads == 2
    for _ in range(2):
        with pytest.raises(RuntimeError, match="no model"):
            shared("broken", device="cpu")
    assert len(calls) == 4 and shared.loads == 2
