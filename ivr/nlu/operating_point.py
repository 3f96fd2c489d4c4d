"""Choose a deployment's rejection point from its own training rows alone.

A new line's intent set rarely comes with out-of-scope examples, and the
calibration the classifier fits holds out examples of intents it *knows*: it
learns how sure the model is when it is right, not how sure it is about a
question nobody trained it for. That is what makes the generic threshold let
too much through on real users' sets (HINT3: two thirds of Powerplay11's test
rows are out of scope). Leave-intents-out cross-validation makes the missing
material from the rows the deployment has: each fold hides a quarter of the
intents from training, so their rows play the off-topic callers the model has
never seen, and a share of every visible intent's rows plays the in-scope
callers. The operating point is the confidence that best serves both
(in-scope right and accepted, hidden intents rejected; equal weight, because
the share of off-topic callers a line will get is not known in advance).

Hidden intents are harder to reject than most real off-topic questions (they
are from the same domain), so the point errs towards rejecting: in the call
flow a rejected caller is asked again and then offered the keypad, never
routed on a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ivr.nlu.matcher import HybridIntentMatcher

Example = tuple[str, str]
MatcherFactory = Callable[[], HybridIntentMatcher]

# Candidate points: between every two neighbouring dev confidences, kept strictly
# inside (0, 1) as set_operating_point needs; small training sets push the
# confidences of right answers close to 1, where a fixed grid is too coarse.
LOWEST, HIGHEST = 0.01, 0.999


class CalibrationError(ValueError):
    """The training rows cannot support a leave-intents-out choice."""


@dataclass(frozen=True, slots=True)
class OperatingPointChoice:
    confidence: float  # the calibrated confidence that becomes the rejection threshold
    in_scope_kept: float  # dev in-scope rows answered right and accepted at that point
    hidden_rejected: float  # rows of hidden intents rejected at that point
    folds: int
    in_scope_rows: int
    hidden_rows: int


def choose_operating_point(
    factory: MatcherFactory,
    train: Sequence[Example],
    *,
    oos_label: str = "oos",
    folds: int = 4,
    dev_share: float = 0.2,
    seed: int = 0,
) -> OperatingPointChoice:
    """Leave-intents-out choice of the rejection point (module docstring).

    Rows labelled ``oos_label`` stay in every fold's training (they are what the
    deployment does have of off-topic material). Each intent is hidden in
    exactly one fold; of the visible intents with at least three rows,
    ``dev_share`` of the rows (at least one) are held out as in-scope dev rows."""
    intents = sorted({lab for _, lab in train if lab != oos_label})
    if folds < 2 or len(intents) < 2 * folds:
        raise CalibrationError(f"need at least {2 * folds} intents for {folds} folds "
                               f"(the data has {len(intents)})")
    rng = np.random.default_rng(seed)
    order = [intents[i] for i in rng.permutation(len(intents))]
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, lab in train:
        by_intent[lab].append(text)
    off_topic = by_intent.pop(oos_label, [])

    kept_conf: list[float] = []  # dev in-scope rows: confidence, -1 where the best is wrong
    hidden_conf: list[float] = []
    for k in range(folds):
        hidden = set(order[k::folds])
        fit_rows: list[Example] = [(t, oos_label) for t in off_topic]
        dev_rows: list[Example] = []
        for lab in intents:
            texts = by_intent[lab]
            if lab in hidden:
                continue
            held = _held_out(len(texts), dev_share, rng)
            dev_rows += [(texts[i], lab) for i in held]
            fit_rows += [(t, lab) for i, t in enumerate(texts) if i not in held]
        matcher = factory()
        matcher.fit([t for t, _ in fit_rows], [lab for _, lab in fit_rows])
        hidden_texts = [t for h in sorted(hidden) for t in by_intent[h]]
        hidden_conf.extend(m.best.confidence if m.best else 0.0
                           for m in matcher.predict_many(hidden_texts))
        for m, (_, lab) in zip(matcher.predict_many([t for t, _ in dev_rows]), dev_rows,
                               strict=True):
            right = m.best is not None and m.best.intent == lab
            kept_conf.append(m.best.confidence if right and m.best else -1.0)
    return _best_point(np.array(kept_conf), np.array(hidden_conf), folds)


def _held_out(n: int, share: float, rng: np.random.Generator) -> set[int]:
    if n < 3:
        return set()
    take = max(1, round(n * share))
    return {int(i) for i in rng.choice(n, size=take, replace=False)}


def _best_point(kept: np.ndarray, hidden: np.ndarray, folds: int) -> OperatingPointChoice:
    if kept.size == 0 or hidden.size == 0:
        raise CalibrationError("no in-scope dev rows or no hidden rows to choose on")
    values = np.unique(np.concatenate([kept, hidden]))
    cuts = np.clip((values[1:] + values[:-1]) / 2.0, LOWEST, HIGHEST)
    best: tuple[float, float, float, float] | None = None
    for t in np.unique(np.concatenate([[LOWEST], cuts])):
        ins = float(np.mean(kept >= t))
        rej = float(np.mean(hidden < t))
        score = 0.5 * (ins + rej)
        # Ties go to the lower point: fewer callers asked again for nothing.
        if best is None or score > best[0] + 1e-12:
            best = (score, float(t), ins, rej)
    assert best is not None
    return OperatingPointChoice(confidence=best[1], in_scope_kept=best[2],
                                hidden_rejected=best[3], folds=folds,
                                in_scope_rows=int(kept.size), hidden_rows=int(hidden.size))
