"""Evaluation harness: read public intent sets, train, and measure.

Formats: CSV with a text column and a label column (``intent``, ``label`` or
``category``), and CLINC150-style JSON (``{"split": [[text, label], ...]}``,
label ``oos`` = out of scope). Figures: accuracy, in-scope accuracy,
out-of-scope recall, macro-F1, per-query latency, training time, peak memory.
"""

from __future__ import annotations

import csv
import json
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ivr.nlu.matcher import HybridIntentMatcher

OOS = "oos"
TEXT_COLUMNS = ("text", "utterance", "sentence", "query")
LABEL_COLUMNS = ("intent", "label", "category")

Example = tuple[str, str]


class DatasetError(ValueError):
    """An evaluation file cannot be read as an intent data set."""


def load_dataset(
    path: Path,
    splits: Sequence[str] = (),
    *,
    text_column: str | None = None,
    label_column: str | None = None,
) -> list[Example]:
    """Read (text, label) pairs from a CSV file or a CLINC-style JSON file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        return _load_clinc(path, splits)
    if splits:
        raise DatasetError(f"{path}: splits apply to JSON files only")
    return _load_csv(path, text_column, label_column)


def with_oos_label(data: Sequence[Example], label: str) -> list[Example]:
    """``data`` with a set's own out-of-scope label (HINT3: ``NO_NODES_DETECTED``) read as
    :data:`OOS`, so it is scored as a rejection, not as one more intent."""
    return [(t, OOS if lab == label else lab) for t, lab in data]


def _load_clinc(path: Path, splits: Sequence[str]) -> list[Example]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object of splits")
    if not splits:
        raise DatasetError(f"{path}: choose splits, available: {', '.join(sorted(data))}")
    out: list[Example] = []
    for split in splits:
        if split not in data:
            raise DatasetError(f"{path}: no split {split!r} (have {', '.join(sorted(data))})")
        if not isinstance(data[split], list):
            # e.g. {"test": null}: found by the fuzzer (TypeError escaped)
            raise DatasetError(f"{path}: split {split!r} is not a list of [text, label] pairs")
        for i, item in enumerate(data[split]):
            if not (isinstance(item, list) and len(item) == 2):
                raise DatasetError(f"{path}: {split}[{i}] is not a [text, label] pair")
            out.append((str(item[0]), str(item[1])))
    return out


def _load_csv(path: Path, text_column: str | None, label_column: str | None) -> list[Example]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            tcol = text_column or next((c for c in TEXT_COLUMNS if c in fields), None)
            lcol = label_column or next((c for c in LABEL_COLUMNS if c in fields), None)
            if tcol is None or tcol not in fields:
                raise DatasetError(f"{path}: no text column (looked for {TEXT_COLUMNS})")
            if lcol is None or lcol not in fields:
                raise DatasetError(f"{path}: no label column (looked for {LABEL_COLUMNS})")
            rows = [((r.get(tcol) or "").strip(), (r.get(lcol) or "").strip()) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read CSV: {exc}") from None
    return [(t, lab) for t, lab in rows if t and lab]


@dataclass(frozen=True, slots=True)
class EvalResult:
    """Figures of one train/test run (or the mean over cross-validation folds)."""

    train_examples: int
    test_examples: int
    intents: int
    # Open label set (an 'oos' label in train or test): a text flagged out of
    # scope counts as the prediction 'oos', so an in-scope text flagged is wrong.
    # Closed set (no 'oos' anywhere, e.g. Banking77): 'oos' is not a label the
    # data has, so the prediction is the best intent and the flag is reported
    # as ``low_confidence`` (what the call flow confirms instead of acting on).
    accuracy: float
    top1_accuracy: float  # best intent only, ignoring rejection (in-scope texts)
    in_scope_accuracy: float
    oos_recall: float | None
    macro_f1: float
    latency_p50_ms: float
    latency_p95_ms: float
    train_seconds: float
    peak_rss_mb: float
    folds: int = 1
    open_set: bool = True
    low_confidence: float = 0.0  # share of in-scope texts flagged low-confidence/out of scope
    confident_accuracy: float = 0.0  # top-1 accuracy on the in-scope texts not flagged

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


MatcherFactory = Callable[[], HybridIntentMatcher]


def evaluate(
    factory: MatcherFactory,
    train: Sequence[Example],
    test: Sequence[Example],
    *,
    latency_samples: int = 300,
    seed: int = 0,
    operating_point: float | None = None,
) -> EvalResult:
    """Train a fresh matcher on ``train`` and measure it on ``test``; with
    ``operating_point``, that calibrated confidence becomes the rejection threshold
    (ivr.nlu.operating_point chooses one from the training rows)."""
    from sklearn.metrics import f1_score

    if not train or not test:
        raise DatasetError("train and test sets must not be empty")
    matcher = factory()
    t0 = time.perf_counter()
    matcher.fit([t for t, _ in train], [lab for _, lab in train])
    train_s = time.perf_counter() - t0
    model = matcher.model("en")
    if operating_point is not None and model is not None:
        model.set_operating_point(operating_point)

    texts = [t for t, _ in test]
    gold = np.array([lab for _, lab in test])
    matches = matcher.predict_many(texts)
    best = np.array([m.best.intent if m.best else OOS for m in matches])
    flagged = np.array([m.out_of_scope for m in matches])
    open_set = bool((gold == OOS).any()) or any(lab == OOS for _, lab in train)
    pred = np.where(flagged, OOS, best) if open_set else best
    ins = gold != OOS
    sure = ins & ~flagged
    in_acc = float(np.mean(pred[ins] == gold[ins])) if ins.any() else 0.0
    top1 = float(np.mean(best[ins] == gold[ins])) if ins.any() else 0.0
    oos_recall = float(np.mean(pred[~ins] == OOS)) if (~ins).any() else None
    labels = sorted(set(gold.tolist()))
    macro = float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0))

    rng = np.random.default_rng(seed)
    sample = rng.choice(len(texts), size=min(latency_samples, len(texts)), replace=False)
    lat: list[float] = []
    for i in sample:
        q0 = time.perf_counter()
        matcher.predict(texts[i])
        lat.append((time.perf_counter() - q0) * 1000.0)
    lat.sort()
    return EvalResult(
        train_examples=len(train),
        test_examples=len(test),
        intents=len({lab for _, lab in train if lab != OOS}),
        accuracy=float(np.mean(pred == gold)),
        top1_accuracy=top1,
        in_scope_accuracy=in_acc,
        oos_recall=oos_recall,
        macro_f1=macro,
        latency_p50_ms=statistics.median(lat),
        latency_p95_ms=lat[min(len(lat) - 1, int(0.95 * len(lat)))],
        train_seconds=train_s,
        peak_rss_mb=peak_rss_mb(),
        open_set=open_set,
        low_confidence=float(np.mean(flagged[ins])) if ins.any() else 0.0,
        confident_accuracy=float(np.mean(best[sure] == gold[sure])) if sure.any() else 0.0,
    )


def cross_validate(
    factory: MatcherFactory,
    data: Sequence[Example],
    folds: int,
    *,
    seed: int = 0,
    latency_samples: int = 300,
) -> EvalResult:
    """Stratified K-fold cross-validation; returns the mean figures over folds."""
    if folds < 2:
        raise DatasetError("--folds must be at least 2")
    from sklearn.model_selection import StratifiedKFold

    labels = np.array([lab for _, lab in data])
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    results: list[EvalResult] = []
    for tr_idx, te_idx in skf.split(np.zeros(len(labels)), labels):
        results.append(
            evaluate(factory, [data[i] for i in tr_idx], [data[i] for i in te_idx],
                     latency_samples=latency_samples, seed=seed)
        )

    def mean(name: str) -> float:
        return float(np.mean([getattr(r, name) for r in results]))

    oos_values = [r.oos_recall for r in results if r.oos_recall is not None]
    return EvalResult(
        train_examples=results[0].train_examples,
        test_examples=results[0].test_examples,
        intents=results[0].intents,
        accuracy=mean("accuracy"),
        top1_accuracy=mean("top1_accuracy"),
        in_scope_accuracy=mean("in_scope_accuracy"),
        oos_recall=float(np.mean(oos_values)) if oos_values else None,
        macro_f1=mean("macro_f1"),
        latency_p50_ms=mean("latency_p50_ms"),
        latency_p95_ms=mean("latency_p95_ms"),
        train_seconds=mean("train_seconds"),
        peak_rss_mb=max(r.peak_rss_mb for r in results),
        folds=folds,
        open_set=any(r.open_set for r in results),
        low_confidence=mean("low_confidence"),
        confident_accuracy=mean("confident_accuracy"),
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def format_result(name: str, r: EvalResult) -> str:
    """Human-readable block of figures."""
    oos = f"{r.oos_recall:.1%}" if r.oos_recall is not None else "n/a"
    fold = f" ({r.folds}-fold CV mean)" if r.folds > 1 else ""
    if r.open_set:
        acc = f"{r.accuracy:.1%}   (top-1, no rejection: {r.top1_accuracy:.1%})"
    else:
        acc = f"{r.accuracy:.1%}   (top-1; no 'oos' label in the data, so nothing is rejected)"
    return "\n".join(
        [
            f"{name}{fold}: {r.train_examples} train / {r.test_examples} test, {r.intents} intents",
            f"  accuracy          {acc}",
            f"  in-scope accuracy {r.in_scope_accuracy:.1%}",
            f"  out-of-scope rec. {oos}",
            f"  macro-F1          {r.macro_f1:.3f}",
            f"  low confidence    {r.low_confidence:.1%} of in-scope texts (the flow confirms "
            f"these); accuracy on the rest {r.confident_accuracy:.1%}",
            f"  latency / query   p50 {r.latency_p50_ms:.2f} ms, p95 {r.latency_p95_ms:.2f} ms",
            f"  training          {r.train_seconds:.1f} s",
            f"  peak memory (RSS) {r.peak_rss_mb:.0f} MB",
        ]
    )
