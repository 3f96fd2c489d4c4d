"""A cheap, general check before any model: does the request name anything the
catalogue talks about?

What a recogniser hands over when a caller says nothing useful is made of
hesitations ("uh", "um let me think"), greetings and politeness ("hello",
"thank you"), yes/no, repeated syllables ("blah blah blah", "la la la"),
gibberish, Whisper's silence hallucinations ("thanks for watching") and
background talk. The learned models score such text by whatever few character
n-grams it shares with the examples and can route it with a high confidence
(the re-landed out-of-scope model sent "blah blah blah" to *complaint* at 0.76).

A request carries at least one content word: a word the catalogue's own
examples use that is not a grammar word, hesitation, greeting or light verb
(the shipped ``function_words_<lang>.txt`` lists, written as general lists of
the language, not from any test row). A text with none is out of scope,
whatever the models say. Known words are matched exactly, close to one (a
mis-heard "oder" is "order"), or inside a compound ("internetstoring" holds
"storing"), so recogniser noise on a real request still passes.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable
from pathlib import Path

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
MIN_FUZZY_LEN = 4  # shorter words are too easily one letter away from another
FUZZY_CUTOFF = 85.0  # rapidfuzz ratio: one wrong letter in a 7-letter word is ~86
MIN_PART_LEN = 5  # a known word found inside a longer word (compounds) is this long
PREFIX_LEN = 6  # words longer than MIN_PART_LEN sharing this many first letters are one word


def words(text: str) -> list[str]:
    """Lower-case letter runs (apostrophes split: "what's" -> "what", "s")."""
    return _WORD.findall(text.lower())


def load_function_words(path: Path) -> frozenset[str]:
    """Words from a list file: several a line, '#' starts a comment."""
    out: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        out.update(words(line.split("#", 1)[0]))
    return frozenset(out)


def shipped_function_words(language: str) -> frozenset[str] | None:
    """The content gate's function words for ``language`` (hesitations, greetings,
    grammar words; ivr/nlu/data/function_words_<lang>.txt); None when not shipped."""
    path = Path(__file__).parent / "data" / f"function_words_{language}.txt"
    return load_function_words(path) if path.is_file() else None


class ContentGate:
    """Built from the in-scope training texts and a language's function words."""

    def __init__(self, texts: Iterable[str], function_words: Iterable[str]) -> None:
        self.function = frozenset(w for fw in function_words for w in words(fw))
        vocab = {w for t in texts for w in words(t)}
        # One-letter pieces ("s" of "what's") never carry a request.
        self.content = frozenset(w for w in vocab if w not in self.function and len(w) > 1)
        self._long = sorted(w for w in self.content if len(w) >= MIN_FUZZY_LEN)
        self._parts = [w for w in self._long if len(w) >= MIN_PART_LEN]

    def has_content(self, text: str) -> bool:
        """True when some word of ``text`` is, or is close to, a content word;
        two neighbours written together count too (a recogniser splits words:
        "re fun", "op zeggen")."""
        ws = words(text)
        if any(self._known(w) for w in ws if len(w) > 1 and w not in self.function):
            return True
        # Exactly, or (unless both halves are grammar words) nearly: "eh een"
        # must not become "heen".
        return any(a + b in self.content or (
            not {a, b} <= self.function and self._known(a + b, parts=False))
            for a, b in itertools.pairwise(ws))

    def _known(self, word: str, *, parts: bool = True) -> bool:
        """``word`` is a content word, one letter or so from one, or (``parts``)
        another form of one or a compound holding one."""
        if word in self.content:
            return True
        if len(word) < MIN_FUZZY_LEN:
            return False
        from rapidfuzz import fuzz, process

        if process.extractOne(word, self._long, scorer=fuzz.ratio,
                              score_cutoff=FUZZY_CUTOFF) is not None:
            return True
        if not parts or len(word) <= MIN_PART_LEN:
            return False
        # Another form of a known word ("snelheden", "snelheid") shares its start.
        stem = word[:PREFIX_LEN]
        i = bisect.bisect_left(self._long, stem)
        if i < len(self._long) and self._long[i].startswith(stem):
            return True
        # A compound holding a known word, or the head of a known compound
        # ("storing" of "internetstoring").
        return any(p in word or p.endswith(word) for p in self._parts)
