"""Leave-intents-out choice of a deployment's rejection point (ivr.nlu.operating_point)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ivr.cli import cli
from ivr.nlu.catalogue import YamlIntentCatalogue
from ivr.nlu.evaluation import OOS, evaluate
from ivr.nlu.matcher import HybridIntentMatcher
from ivr.nlu.operating_point import CalibrationError, _best_point, choose_operating_point


def _lexical() -> HybridIntentMatcher:
    return HybridIntentMatcher()  # TF-IDF + fuzzy: the fold logic, not the embeddings


def test_the_point_serves_kept_and_hidden_rows_alike() -> None:
    # Right answers at 0.95 and 0.97 (one wrong: -1), hidden intents' rows at 0.3,
    # 0.6 and 0.96. Any point in (0.6, 0.95] keeps 2/3 and rejects 2/3; one in
    # (0.96, 0.97] keeps 1/3 and rejects all: the same score, and the lower point
    # asks fewer callers again for nothing.
    choice = _best_point(np.array([0.95, 0.97, -1.0]), np.array([0.3, 0.6, 0.96]), folds=4)
    assert choice.confidence == pytest.approx((0.6 + 0.95) / 2)
    assert (choice.in_scope_kept, choice.hidden_rejected) == pytest.approx((2 / 3, 2 / 3))


def test_every_intent_is_hidden_once(catalogue: YamlIntentCatalogue) -> None:
    train = list(catalogue.examples("en"))
    extra = [("what is the weather in paris", OOS), ("play some jazz", OOS)]
    choice = choose_operating_point(_lexical, train + extra, oos_label=OOS)
    # Each catalogue row is a hidden-intent row in exactly one fold; the off-topic rows
    # are always trained on, never scored.
    assert choice.hidden_rows == len(train)
    assert 0 < choice.in_scope_rows < len(train)
    assert 0.0 < choice.confidence < 1.0
    assert 0.5 * (choice.in_scope_kept + choice.hidden_rejected) > 0.5


def test_too_few_intents_is_a_clear_error() -> None:
    rows = [(f"question {i} about {lab}", lab) for lab in ("a", "b", "c") for i in range(5)]
    with pytest.raises(CalibrationError, match="need at least 8 intents for 4 folds"):
        choose_operating_point(_lexical, rows)


def test_evaluate_applies_the_operating_point(catalogue: YamlIntentCatalogue) -> None:
    train = list(catalogue.examples("en"))
    test = [*train[::7], ("what is the weather in paris", OOS), ("tell me a joke", OOS)]
    loose = evaluate(_lexical, train, test, latency_samples=5, operating_point=0.05)
    strict = evaluate(_lexical, train, test, latency_samples=5, operating_point=0.999)
    assert strict.low_confidence > loose.low_confidence
    assert strict.oos_recall is not None and loose.oos_recall is not None
    assert strict.oos_recall >= loose.oos_recall


def test_cli_eval_calibrate(tmp_path: Path, catalogue: YamlIntentCatalogue) -> None:
    rows = list(catalogue.examples("en"))
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    for path, data in ((train, rows), (test, [*rows[::9], ("play some jazz music", "none")])):
        with path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([("sentence", "label"), *data])
    args = ["intents", "eval", "--train", str(train), "--test", str(test), "--no-embed",
            "--oos-label", "none", "--calibrate"]
    out = CliRunner().invoke(cli, [*args, "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert 0.0 < doc["operating_point"]["confidence"] < 1.0
    assert doc["operating_point"]["hidden_rows"] == len(rows)
    text = CliRunner().invoke(cli, args)
    assert "rejection point" in text.output and "chosen on the train rows" in text.output
    alone = CliRunner().invoke(cli, ["intents", "eval", "--train", str(train), "--calibrate"])
    assert alone.exit_code == 2 and "--calibrate needs --test" in alone.output
