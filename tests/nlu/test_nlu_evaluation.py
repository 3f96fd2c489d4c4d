"""The evaluation harness and the `ivr intents` command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import cli
from ivr.nlu.catalogue import YamlIntentCatalogue
from ivr.nlu.evaluation import (
    DatasetError,
    cross_validate,
    evaluate,
    format_result,
    load_dataset,
)
from ivr.nlu.matcher import HybridIntentMatcher

GRAMMARS = Path(__file__).resolve().parents[2] / "grammars"
DATA = Path(__file__).parent / "data"


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def clinc_file(tmp_path: Path, catalogue: YamlIntentCatalogue) -> Path:
    """A CLINC-style JSON built from our English catalogue and paraphrases."""
    train = [[t, i] for t, i in catalogue.examples("en")]
    with (DATA / "paraphrases_en.csv").open(encoding="utf-8") as fh:
        test = [[r["text"], r["intent"]] for r in csv.DictReader(fh)]
    oos = ["what is the weather in paris", "play some jazz", "how tall is mount everest",
           "translate hello into french", "set an alarm for seven", "tell me a joke",
           "who wrote hamlet", "what is two plus two"]
    data = {"train": train, "val": test, "oos_train": [[t, "oos"] for t in oos[:4]],
            "oos_val": [[t, "oos"] for t in oos[4:]]}
    path = tmp_path / "mini_clinc.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_csv_columns_are_detected(tmp_path: Path) -> None:
    """text/category (banking77) and utterance/intent/category (bitext) both load."""
    a = _write_csv(tmp_path / "a.csv", ["text", "category"], [["hi there", "greet"]])
    assert load_dataset(a) == [("hi there", "greet")]
    b = _write_csv(tmp_path / "b.csv", ["utterance", "intent", "category"],
                   [["cancel my order", "cancel_order", "ORDER"], ["", "x", "y"]])
    assert load_dataset(b) == [("cancel my order", "cancel_order")]
    assert load_dataset(b, label_column="category") == [("cancel my order", "ORDER")]


def test_bad_datasets_give_clear_errors(tmp_path: Path, clinc_file: Path) -> None:
    """Missing columns, splits or files raise DatasetError naming the problem."""
    bad = _write_csv(tmp_path / "bad.csv", ["foo", "bar"], [["a", "b"]])
    with pytest.raises(DatasetError, match="no text column"):
        load_dataset(bad)
    with pytest.raises(DatasetError, match="no split 'test'"):
        load_dataset(clinc_file, ["test"])
    with pytest.raises(DatasetError, match="choose splits"):
        load_dataset(clinc_file)
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nope.csv")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_dataset(broken, ["train"])


def test_evaluate_reports_all_figures(clinc_file: Path) -> None:
    """Accuracy, in-scope accuracy, OOS recall, macro-F1, latency and time are measured."""
    train = load_dataset(clinc_file, ["train", "oos_train"])
    test = load_dataset(clinc_file, ["val", "oos_val"])
    result = evaluate(lambda: HybridIntentMatcher(), train, test, latency_samples=50)
    assert result.train_examples == len(train) and result.test_examples == len(test)
    assert result.intents == 27
    assert 0.75 <= result.in_scope_accuracy <= 1.0
    assert result.oos_recall is not None and result.oos_recall >= 0.5
    assert 0.0 < result.macro_f1 <= 1.0
    assert 0.0 < result.latency_p50_ms <= result.latency_p95_ms
    assert result.train_seconds > 0 and result.peak_rss_mb > 10
    assert result.open_set and 0.0 <= result.low_confidence <= 1.0
    text = format_result("mini", result)
    assert "in-scope accuracy" in text and "p95" in text and "low confidence" in text


def test_cross_validation_without_test_set(catalogue: YamlIntentCatalogue) -> None:
    """K-fold CV trains K times and reports the mean; no OOS recall without OOS data."""
    data = catalogue.examples("nl")
    result = cross_validate(lambda: HybridIntentMatcher(), data, 3, latency_samples=20)
    assert result.folds == 3
    assert result.oos_recall is None
    assert result.top1_accuracy >= 0.6  # lexical only, 2/3 of the examples per fold
    # No 'oos' label anywhere: a low-confidence flag is not an 'oos' prediction.
    assert not result.open_set
    assert result.accuracy == pytest.approx(result.top1_accuracy)
    assert 0.0 < result.low_confidence < 0.5
    assert result.confident_accuracy >= result.top1_accuracy
    with pytest.raises(DatasetError):
        cross_validate(lambda: HybridIntentMatcher(), data, 1)


def test_cli_eval_json(clinc_file: Path) -> None:
    """`ivr intents eval --json` prints the figures as JSON."""
    result = CliRunner().invoke(cli, [
        "intents", "eval", "--train", str(clinc_file), "--train-split", "train,oos_train",
        "--test", str(clinc_file), "--test-split", "val,oos_val", "--json", "--no-embed",
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["intents"] == 27 and figures["embedder"] is None
    assert {"accuracy", "in_scope_accuracy", "oos_recall", "macro_f1", "latency_p95_ms",
            "train_seconds", "peak_rss_mb"} <= set(figures)


def test_cli_eval_cross_validation_text(tmp_path: Path, catalogue: YamlIntentCatalogue) -> None:
    """Without --test the command cross-validates and prints a readable block."""
    path = _write_csv(tmp_path / "cat.csv", ["text", "label"],
                      [[t, i] for t, i in catalogue.examples("en")])
    result = CliRunner().invoke(cli, ["intents", "eval", "--train", str(path), "--folds", "2",
                                      "--no-embed"])
    assert result.exit_code == 0, result.output
    assert "2-fold CV mean" in result.output and "macro-F1" in result.output


def test_cli_eval_bad_split_exits_nonzero(clinc_file: Path) -> None:
    """A wrong split name is an error message and exit code 2, not a traceback."""
    result = CliRunner().invoke(cli, ["intents", "eval", "--train", str(clinc_file),
                                      "--train-split", "nope", "--no-embed"])
    assert result.exit_code == 2
    assert "no split 'nope'" in result.output


def test_cli_check_ok_and_failing(tmp_path: Path) -> None:
    """`ivr intents check` summarises good catalogues and fails with file:line on bad ones."""
    ok = CliRunner().invoke(cli, ["intents", "check", "--dir", str(GRAMMARS)])
    assert ok.exit_code == 0, ok.output
    assert "27 intents" in ok.output and "0  speak_to_agent" in ok.output
    for lang in ("en", "nl"):
        text = (GRAMMARS / f"{lang}.yaml").read_text(encoding="utf-8")
        if lang == "nl":
            text = text.replace("  refund:\n    label: terugbetaling\n",
                                "  refund:\n    label: terugbetaling\n    sensitive: yes\n")
        (tmp_path / f"{lang}.yaml").write_text(text, encoding="utf-8")
    bad = CliRunner().invoke(cli, ["intents", "check", "--dir", str(tmp_path)])
    assert bad.exit_code == 1
    assert "nl.yaml:" in bad.output and "intents.refund.sensitive" in bad.output


def test_cli_match_lexical() -> None:
    """`ivr intents match` prints the ranking for one phrase."""
    result = CliRunner().invoke(cli, ["intents", "match", "ik ga verhuizen", "--lang", "nl",
                                      "--dir", str(GRAMMARS), "--no-embed"])
    assert result.exit_code == 0, result.output
    assert "in scope" in result.output
    assert result.output.splitlines()[1].split()[-1] == "address_change"


def test_cli_eval_reads_a_sets_own_out_of_scope_label(
        tmp_path: Path, catalogue: YamlIntentCatalogue) -> None:
    """HINT3 marks out-of-scope rows NO_NODES_DETECTED: with --oos-label they are scored
    as rejections (open set, an OOS recall), not as a 28th intent nobody trained."""
    rows = [[t, i] for t, i in catalogue.examples("en")]
    train = _write_csv(tmp_path / "train.csv", ["sentence", "label"], rows)
    test = _write_csv(tmp_path / "test.csv", ["sentence", "label"], [
        *rows[::7], ["what is the capital of peru", "NO_NODES_DETECTED"],
        ["play some jazz music", "NO_NODES_DETECTED"]])
    args = ["intents", "eval", "--train", str(train), "--test", str(test), "--json",
            "--no-embed"]
    plain = json.loads(CliRunner().invoke(cli, args).output)
    assert plain["intents"] == 27 and plain["oos_recall"] is None  # a label, not OOS
    labelled = json.loads(CliRunner().invoke(
        cli, [*args, "--oos-label", "NO_NODES_DETECTED"]).output)
    assert labelled["open_set"] and labelled["oos_recall"] is not None
