"""FilePromptResolver: recorded prompts copied into the folder Asterisk plays from."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.domain.ports import Prompt
from ivr.domain.prompts import render
from ivr.speech.tts import TtsError, default_tts
from ivr.telephony.prompts import FilePromptResolver, warm_up


class NoTts:
    """TtsEngine that must not be used: every prompt here is recorded."""

    voice_id = "none"

    def synthesize_pcm(self, text: str, language: str) -> bytes:
        raise AssertionError(f"synthesised {text!r} although it is recorded")


def resolver(tmp_path: Path, export_name: str = "export") -> tuple[FilePromptResolver, Path]:
    static = tmp_path / "sounds"
    recorded = static / "en" / "ask_question.wav"
    if not recorded.exists():
        recorded.parent.mkdir(parents=True)
        # Big enough that concurrent copies overlap in the worker threads.
        recorded.write_bytes(b"RIFF" + bytes(range(256)) * 8192)
    export = tmp_path / export_name
    return FilePromptResolver(tts=NoTts(), static_dir=static, export_dir=export,
                              asterisk_dir="/var/lib/kanaal/prompts"), export


async def test_recorded_prompt_is_copied_and_played_from_the_export_folder(
    tmp_path: Path,
) -> None:
    """A recorded prompt becomes a sound: URI under the Asterisk path, without extension."""
    prompts, export = resolver(tmp_path)
    uri = await prompts.resolve(Prompt(key="ask_question", text="What is it about?",
                                       language="en"))
    assert uri == "sound:/var/lib/kanaal/prompts/static/en/ask_question"
    copied = export / "static" / "en" / "ask_question.wav"
    assert copied.read_bytes() == (tmp_path / "sounds" / "en" / "ask_question.wav").read_bytes()


async def test_simultaneous_calls_copy_the_same_prompt_without_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 calls resolving one recorded prompt at once all get its URI; no temp-file clash."""
    prompt = Prompt(key="ask_question", text="What is it about?", language="en")
    copies: list[Path] = []
    real_copy = FilePromptResolver._copy

    def counting_copy(src: Path, dst: Path) -> None:
        if not dst.exists():  # a real copy, not a late call finding it done
            copies.append(dst)
        real_copy(src, dst)

    monkeypatch.setattr(FilePromptResolver, "_copy", staticmethod(counting_copy))
    # Several fresh export folders: a clash depends on thread timing, so give it chances.
    for attempt in range(8):
        prompts, export = resolver(tmp_path, f"export-{attempt}")
        uris = await asyncio.gather(*(prompts.resolve(prompt) for _ in range(20)))
        assert set(uris) == {"sound:/var/lib/kanaal/prompts/static/en/ask_question"}
        folder = export / "static" / "en"
        assert sorted(p.name for p in folder.iterdir()) == ["ask_question.wav"]  # no temp left
        assert (folder / "ask_question.wav").read_bytes() == (
            tmp_path / "sounds" / "en" / "ask_question.wav").read_bytes()
    assert len(copies) == 8  # one copy per export folder, not one per call


async def test_a_copy_left_by_an_older_release_is_replaced_once(tmp_path: Path) -> None:
    """The recordings were rebuilt (e.g. an upgrade trimmed their leading silence): a copy
    an earlier node left in the export folder is replaced by the new recording, not played
    for ever; it is compared once per process, not on every prompt."""
    prompts, export = resolver(tmp_path)
    stale = export / "static" / "en" / "ask_question.wav"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"RIFF old recording")
    prompt = Prompt(key="ask_question", text="What is it about?", language="en")
    await prompts.resolve(prompt)
    recording = (tmp_path / "sounds" / "en" / "ask_question.wav").read_bytes()
    assert stale.read_bytes() == recording
    stale.write_bytes(b"RIFF changed behind the node's back")
    await prompts.resolve(prompt)  # checked already: no comparison on every prompt
    assert stale.read_bytes() == b"RIFF changed behind the node's back"
    again, _ = resolver(tmp_path)  # a new process (node) checks again
    await again.resolve(prompt)
    assert stale.read_bytes() == recording


class CountingTts:
    """The real voices (flite for English, espeak-ng for Dutch), counted; a text with
    "broken" in it fails as a TTS error would."""

    def __init__(self) -> None:
        self.inner = default_tts()
        self.voice_id = self.inner.voice_id
        self.texts: list[str] = []

    def synthesize_pcm(self, text: str, language: str) -> bytes:
        self.texts.append(text)
        if "broken" in text:
            raise TtsError("the voice fell over")
        return self.inner.synthesize_pcm(text, language)


async def test_warm_up_makes_each_catalogue_prompt_once_and_skips_a_failure(
    tmp_path: Path,
) -> None:
    """At start-up the catalogue's prompts are synthesised into the cache (a failing one
    is logged and left for when it is said); a second node start finds them all and
    synthesises nothing; saying one afterwards is a cache hit."""
    tts = CountingTts()
    prompts = FilePromptResolver(tts=tts, static_dir=tmp_path / "sounds",
                                 export_dir=tmp_path / "export")
    ahead = [render("transfer", "en", label="billing"),
             render("transfer", "nl", label="facturen"),
             render("answer", "en", text="This one is broken."),
             render("confirm_intent", "en", label="a refund")]
    first = await warm_up(prompts, ahead, duty=1.0)
    assert (first.prompts, first.made, first.failed) == (4, 3, 1)
    assert all(prompts.cached(p) for p in ahead if "broken" not in p.text)
    wavs = sorted((tmp_path / "export" / "dynamic").rglob("*.wav"))
    assert len(wavs) == 3 and all(w.stat().st_size > 8000 for w in wavs)  # real audio
    tts.texts.clear()
    again = await warm_up(prompts, ahead, duty=1.0)
    assert (again.made, again.failed) == (0, 1) and tts.texts == ["This one is broken."]
    tts.texts.clear()
    await prompts.resolve(ahead[0])
    assert tts.texts == []
