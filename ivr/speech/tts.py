"""Text-to-speech for prompts: Debian's espeak-ng and flite, output as 8 kHz 16-bit mono WAV.

Asterisk plays ``sound:/abs/path/without/ext`` and picks the ``.wav`` file; 8 kHz
needs no transcoding on a telephone call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ivr.speech.audio import parse_wav, resample_pcm16, trim_leading_silence, write_wav

log = logging.getLogger(__name__)

PROMPT_RATE = 8000
MAX_TEXT_CHARS = 2000  # a runaway answer must not tie up a TTS process for minutes
# In every voice id: prompts cached before leading silence was trimmed are not reused.
LEAD_TAG = "+lead30"


def _prompt_pcm(pcm16: bytes, rate: int) -> bytes:
    """An engine's output as a prompt: 8 kHz, the quiet before the first sound cut to
    30 ms (``trim_leading_silence``: it delayed every answer by ~0.2 s)."""
    return trim_leading_silence(resample_pcm16(pcm16, rate, PROMPT_RATE), PROMPT_RATE)


class TtsError(Exception):
    """The TTS engine is missing or failed."""


class TtsEngine(Protocol):
    """Blocking text -> 8 kHz PCM synthesiser (run it in a worker thread)."""

    @property
    def voice_id(self) -> str:
        """Stable name of the engine and voice(s); part of the answer cache key."""

    def synthesize_pcm(self, text: str, language: str) -> bytes:
        """``text`` spoken in ``language`` as 8 kHz 16-bit mono PCM; TtsError on failure."""


def _run(cmd: list[str], *, stdin: bytes | None = None, timeout: float = 60.0) -> None:
    exe = shutil.which(cmd[0])
    if exe is None:
        raise TtsError(f"{cmd[0]} is not installed (see scripts/apt-packages.txt)")
    proc = subprocess.run(
        [exe, *cmd[1:]], input=stdin, capture_output=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise TtsError(f"{cmd[0]} failed: {proc.stderr.decode(errors='replace')[:300]}")


def _clean_text(text: str) -> str:
    text = " ".join(text.split())[:MAX_TEXT_CHARS]
    if not text:
        raise TtsError("nothing to say")
    return text


@dataclass(frozen=True, slots=True)
class EspeakTts:
    """espeak-ng voices per language (robotic, but covers Dutch)."""

    voices: Mapping[str, str] = field(default_factory=lambda: {"en": "en-us", "nl": "nl"})
    speed_wpm: int = 160

    @property
    def voice_id(self) -> str:
        return ("espeak-ng:" + ",".join(f"{k}={v}" for k, v in sorted(self.voices.items()))
                + LEAD_TAG)

    def synthesize_pcm(self, text: str, language: str) -> bytes:
        text = _clean_text(text)
        voice = self.voices.get(language, language)
        with tempfile.TemporaryDirectory(prefix="ivr-tts-") as tmp:
            out = Path(tmp) / "out.wav"
            # Text goes through stdin so that a leading "-" is never read as a flag.
            _run(
                ["espeak-ng", "-v", voice, "-s", str(self.speed_wpm), "-w", str(out), "--stdin"],
                stdin=text.encode(),
            )
            wav = parse_wav(out.read_bytes())
        return _prompt_pcm(wav.pcm16, wav.sample_rate)


@dataclass(frozen=True, slots=True)
class FliteTts:
    """flite (English only; clearer than espeak-ng for callers and for ASR)."""

    voice: str = "slt"

    @property
    def voice_id(self) -> str:
        return f"flite:{self.voice}{LEAD_TAG}"

    def synthesize_pcm(self, text: str, language: str) -> bytes:
        if language != "en":
            raise TtsError(f"flite speaks English only, not {language!r}")
        text = _clean_text(text)
        with tempfile.TemporaryDirectory(prefix="ivr-tts-") as tmp:
            src, out = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            src.write_text(text)
            _run(["flite", "-voice", self.voice, "-f", str(src), "-o", str(out)])
            wav = parse_wav(out.read_bytes())
        return _prompt_pcm(wav.pcm16, wav.sample_rate)


@dataclass(frozen=True, slots=True)
class LanguageTts:
    """Picks an engine per language (flite for en, espeak-ng for nl by default)."""

    engines: Mapping[str, TtsEngine]

    @property
    def voice_id(self) -> str:
        return "|".join(f"{k}={e.voice_id}" for k, e in sorted(self.engines.items()))

    def synthesize_pcm(self, text: str, language: str) -> bytes:
        engine = self.engines.get(language)
        if engine is None:
            raise TtsError(f"no TTS voice for {language!r}")
        return engine.synthesize_pcm(text, language)


def default_tts() -> LanguageTts:
    """flite (slt) for English, espeak-ng for Dutch."""
    return LanguageTts({"en": FliteTts("slt"), "nl": EspeakTts()})


class PromptSynthesizer:
    """Dynamic answers as cached 8 kHz WAVs, keyed by a hash of text + language + voice."""

    def __init__(self, tts: TtsEngine, cache_dir: Path, *, max_files: int = 5000) -> None:
        self._tts = tts
        self._dir = Path(cache_dir)
        self._max_files = max_files
        self._locks: dict[Path, asyncio.Lock] = {}

    def path_for(self, text: str, language: str) -> Path:
        key = hashlib.sha256(f"{self._tts.voice_id}\0{language}\0{text}".encode()).hexdigest()
        return self._dir / language / f"{key[:24]}.wav"

    async def synthesize(self, text: str, language: str) -> Path:
        """Return the WAV for ``text`` (synthesised in a thread on a cache miss)."""
        path = self.path_for(text, language)
        lock = self._locks.setdefault(path, asyncio.Lock())
        async with lock:  # two calls asking for the same answer synthesise it once
            await asyncio.to_thread(self._write, path, text, language)
        self._locks.pop(path, None)
        return path

    def _write(self, path: Path, text: str, language: str) -> None:
        if path.exists():
            return
        pcm = self._tts.synthesize_pcm(text, language)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        write_wav(tmp, pcm, PROMPT_RATE)
        tmp.replace(path)  # atomic: Asterisk never sees a half-written file
        self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        files = sorted(folder.glob("*.wav"), key=lambda p: p.stat().st_mtime)
        for old in files[: max(0, len(files) - self._max_files)]:
            old.unlink(missing_ok=True)


def build_prompt_sounds(
    prompts: Mapping[str, Mapping[str, str]],
    keys: Iterable[str],
    out_dir: Path,
    tts: TtsEngine,
    *,
    languages: Iterable[str] = ("en", "nl"),
    progress: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Render every static prompt to ``out_dir/<lang>/<key>.wav`` (8 kHz mono)."""
    written: list[Path] = []
    for key in keys:
        for lang in languages:
            text = prompts.get(key, {}).get(lang)
            if not text or "{" in text:
                continue  # needs run-time parameters: synthesised per call instead
            path = Path(out_dir) / lang / f"{key}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_wav(path, tts.synthesize_pcm(text, lang), PROMPT_RATE)
            written.append(path)
            if progress:
                progress(path)
    return written
