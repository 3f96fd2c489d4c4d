"""Single spoken digits, the way ``ivr transcribe FILE --grammar --phrase zero ... --phrase oh``
hears them: digit error rate and empty results on real human 8 kHz recordings (FSDD).

    .venv/bin/python bench/digits.py [--dir DIR] [--limit N] [--seed S] [--json]

Every clip is streamed in 20 ms packets at 8 kHz, followed by a second of silence,
through the Whisper digit grammar (``recognize_pcm``, the code ``ivr transcribe``
runs). A clip is right when the answer is its digit ("oh" counts as zero); wrong
otherwise; *empty* when nothing came back at all (the worst case: the caller's
answer vanished).

Data: ``--dir`` (default ``$KANAAL_FSDD_HELDOUT``, else /var/cache/kanaal/fsdd: FSDD
clips kept outside the repository, e.g. the indices 0-4 that ../shared lacks, taken
from the public FSDD repository). ``--dir /work/shared/data/speech/fsdd`` measures the
visible clips (the ones to tune on). A missing folder prints why and exits 0 with
``"skipped"`` in the JSON: the data is not part of the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.speech.audio import read_wav  # noqa: E402
from ivr.speech.recognizers import recognize_pcm  # noqa: E402
from ivr.speech.vad import SileroVad  # noqa: E402
from ivr.speech.whisper_engine import WhisperRecognizer  # noqa: E402

RATE = 8000
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PHRASES = [*DIGITS, "oh"]
DEFAULT_DIR = Path(os.environ.get("KANAAL_FSDD_HELDOUT", "/var/cache/kanaal/fsdd"))


def clips(folder: Path, limit: int, seed: int) -> list[Path]:
    """``limit`` clips (0 = all), shuffled with ``seed``, spread over digits and speakers."""
    files = sorted(folder.glob("*_*_*.wav"))
    random.Random(seed).shuffle(files)
    return files[:limit] if limit else files


def digit_of(text: str) -> str | None:
    """The digit a grammar answer names ("oh" is zero); None for empty or several words."""
    words = text.split()
    if len(words) != 1:
        return None
    w = "zero" if words[0] == "oh" else words[0]
    return str(DIGITS.index(w)) if w in DIGITS else None


async def run(files: list[Path]) -> dict[str, object]:
    rec = WhisperRecognizer(languages=("en",), vad=SileroVad())
    await recognize_pcm(rec, bytes(RATE), RATE, "en", PHRASES)  # load the model first
    wrong: list[dict[str, str]] = []
    empty: list[str] = []
    ms: list[float] = []
    t0 = time.perf_counter()
    for f in files:
        pcm = read_wav(f, sample_rate=RATE).pcm16
        result = await recognize_pcm(rec, pcm, RATE, "en", PHRASES)
        ms.append(result.processing_ms)
        if not result.text:
            empty.append(f.name)
        elif digit_of(result.text) != f.name.split("_")[0]:
            wrong.append({"clip": f.name, "heard": result.text})
    n = len(files)
    ms.sort()
    return {
        "clips": n,
        "speakers": sorted({f.name.split("_")[1] for f in files}),
        "errors": len(wrong) + len(empty),
        "digit_error_rate": round((len(wrong) + len(empty)) / n, 4) if n else None,
        "empty": len(empty),
        "wrong": len(wrong),
        "empty_clips": empty,
        "wrong_clips": wrong,
        "after_end_of_speech_ms_p50": round(ms[n // 2]) if n else None,
        "after_end_of_speech_ms_p95": round(ms[min(n - 1, int(n * 0.95))]) if n else None,
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--limit", type=int, default=0, help="clips to take (0 = all)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    files = clips(args.dir, args.limit, args.seed) if args.dir.is_dir() else []
    if not files:
        why = f"no FSDD clips in {args.dir} (not part of the repository; see the docstring)"
        print(json.dumps({"skipped": why}) if args.json else f"SKIPPED: {why}")
        return
    out = asyncio.run(run(files))
    out["dir"] = str(args.dir)
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['clips']} clips from {args.dir} (speakers {', '.join(out['speakers'])})")  # type: ignore[arg-type]
    print(f"digit error {100 * float(out['digit_error_rate'] or 0):.1f} %: "  # type: ignore[arg-type]
          f"{out['wrong']} wrong, {out['empty']} empty")
    for w in out["wrong_clips"]:  # type: ignore[attr-defined]
        print(f"  wrong  {w['clip']}: heard {w['heard']!r}")
    for e in out["empty_clips"]:  # type: ignore[attr-defined]
        print(f"  empty  {e}")
    print(f"after end of speech p50 {out['after_end_of_speech_ms_p50']} ms, "
          f"p95 {out['after_end_of_speech_ms_p95']} ms; load average {out['load_average']}")


if __name__ == "__main__":
    main()
