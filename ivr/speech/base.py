"""Shared pieces of the recogniser adapters: worker-thread calls, limits, text cleanup."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

from ivr.domain.ports import RecognitionResult

T = TypeVar("T")

EMPTY_RESULT = RecognitionResult(text="", confidence=0.0)

SUPPORTED_RATES = (8000, 16000)


class SpeechError(Exception):
    """A recogniser could not be set up (model missing, bad configuration)."""


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Caps that keep one stream's memory and CPU bounded whatever the caller sends."""

    max_stream_s: float = 60.0  # total audio accepted per stream (a 10-minute monologue stops here)
    max_chunk_bytes: int = 64000  # one feed() call; larger chunks are split


async def run_blocking(executor: Executor | None, fn: Callable[..., T], *args: object) -> T:
    """Run blocking decoder work off the event loop (default or a bounded executor)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args))


_PUNCT = re.compile(r"[^\w\s'\-]+", re.UNICODE)


def normalise_phrase(text: str) -> str:
    """Lower-case, strip punctuation and squeeze spaces (grammar entries, WER scoring)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).replace("-", " ").split())


def unique_phrases(phrases: Sequence[str], limit: int = 500) -> list[str]:
    """Normalised, de-duplicated, order-preserving phrase list (capped: grammars grow the graph)."""
    seen: dict[str, None] = {}
    for p in phrases:
        n = normalise_phrase(p)
        if n and n not in seen:
            seen[n] = None
        if len(seen) >= limit:
            break
    return list(seen)


# Closed-vocabulary ("grammar") convention for the Recognizer port's ``phrases``.
# A phrase list is a grammar when it contains GRAMMAR_MARKER, or when every phrase is
# made of digit words only (a "say your number" prompt): recognition is then limited to
# sequences of the listed words. Any other list only biases recognition (intent
# vocabulary). "oh" is a grammar word only when listed (it is also an interjection).
GRAMMAR_MARKER = "<grammar>"
DIGIT_WORDS = frozenset(
    ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
)


def closed_vocabulary(phrases: Sequence[str]) -> tuple[str, ...] | None:
    """Words of a grammar-mode phrase list (order kept), or None for open vocabulary."""
    explicit = any(p.strip() == GRAMMAR_MARKER for p in phrases)
    words: dict[str, None] = {}
    for p in unique_phrases(without_marker(phrases)):
        for w in p.split():
            words.setdefault(w, None)
    if not words:
        return None
    if explicit or all(w in DIGIT_WORDS for w in words):
        return tuple(words)
    return None


def without_marker(phrases: Sequence[str]) -> list[str]:
    """``phrases`` minus GRAMMAR_MARKER (engines that always constrain, e.g. Vosk)."""
    return [p for p in phrases if p.strip() != GRAMMAR_MARKER]
