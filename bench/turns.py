"""Turn gap of real calls: the caller's last word -> the first audio of the IVR's reply.

    .venv/bin/python bench/turns.py [--calls N] [--together K] [--known] [--answers]
        [--cold-prompt-cache] [--no-prepare] [--json]

Real SIP calls through the Asterisk rig (a Python caller that waits its turn,
Asterisk 22, the ARI node with Whisper, the matcher and SQLite). Each caller asks
one question in its own words (``bench/turn_questions.csv``, written for this
bench: none is a catalogue example, checked at start-up) from a number the CRM
does not know (``--known``: from seeded customers' numbers, so an order question gets
the customer's order; ``--answers``: only the questions answered with data known at
identification, the answers prepared while the caller speaks; ``--no-prepare``: not
prepared, the old way; ``--cold-prompt-cache``: the rig's synthesised prompts, which
survive runs, are deleted first, so each answer's synthesis is paid once in the run).
Callers go in groups of K started together; each group's utterances are led with silence to the same
length, so the K callers stop talking within the same second (the spread is printed).

The gap is measured by the caller at the wire (its last RTP frame of speech ->
the first audible frame from Asterisk), so it includes the endpointer's silence
wait. The synthesised utterances end with ~0.25 s of their own quiet, so the gap
from the caller's last *word* (its last loud frame) is also given
(``last_word_gap_*``): that one is the caller's experience. The node's own
breakdown per turn: silence wait, ASR, understanding (the intent matcher, its
queue included), decision (the rest of the flow: routing, lookups, the contact
record's saves), prompt audio (TTS or cache), playback request; "rest" is what the
wire adds (speech-end detection slack, Asterisk starting the playback, RTP).
``end_of_turn`` counts how each turn's end was decided ("adaptive": the short
silence on a finished transcript; "endpoint: why not" otherwise) and
``early_decode_ms`` is the speculative decode's wall time, which must be back
within the adaptive end's silence to let it fire. A caller whose answer is slow hears
"one moment" first (``acknowledged``): their turn gap is to that prompt, and
``answer_gap_node_*`` gives the answer itself, on the node's clock.

The rig comes from KANAAL_RIG_* like the e2e tests (default: the shared rig).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.cli.demo_cmd import demo_moment
from ivr.cli.voice_call import VoiceCallReport, VoiceCallSpec, voice_node
from ivr.clock import PinnedClock
from ivr.config import load_settings
from ivr.stats import percentile_or_none as pct
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing.rig import rig_from_env
from ivr.testing.sipcaller import read_ulaw_wav, synthesize_utterance

QUESTIONS = Path(__file__).with_name("turn_questions.csv")
# --known: the seeded English-speaking customers' numbers (caller ID identifies them; the
# Whisper model here is English-only), so their order questions are answered with CRM data.
KNOWN_NUMBERS = ("+447700900123", "+31611112222", "+447700900456", "+31655556666")
# --answers: the intents answered with data known at identification (prepared ahead).
DATA_ANSWERS = ("opening_hours", "order_status", "outage_info")


def load_questions() -> list[tuple[str, str]]:
    """(question, expected intent) rows; refuses any that is a catalogue example."""
    import yaml

    with QUESTIONS.open(newline="") as fh:
        rows = [(r["question"].strip(), r["intent"].strip()) for r in csv.DictReader(fh)]
    catalogue = yaml.safe_load(Path("grammars/en.yaml").read_text())
    examples = {e.lower() for spec in catalogue["intents"].values()
                for e in spec.get("examples", ())}
    copied = [q for q, _ in rows if q.lower() in examples]
    if copied:
        raise SystemExit(f"bench questions copied from the catalogue: {copied}")
    return rows


def utterance_s(text: str) -> float:
    return len(read_ulaw_wav(synthesize_utterance(text))) / 8000


def summarise(reports: list[VoiceCallReport], expected: list[str],
              spreads: list[float]) -> dict[str, Any]:
    gaps = [r.turn_gap_ms[0] for r in reports if r.turn_gap_ms]
    word_gaps = [r.last_word_gap_ms[0] for r in reports if r.last_word_gap_ms]
    parts: dict[str, list[float]] = {k: [] for k in (
        "silence_wait", "asr", "understanding", "decision", "tts", "playback_start", "rest",
        "early_decode")}
    ends: dict[str, int] = {}
    answers: list[float] = []
    for r in reports:
        timings = r.timings[:1]
        for t in timings:
            parts["silence_wait"].append(t.silence_wait_ms)
            answers.append(t.silence_wait_ms + t.response_ms)
            parts["asr"].append(t.asr_ms)
            parts["understanding"].append(t.understanding_ms)
            parts["decision"].append(t.decision_ms)
            parts["tts"].append(t.tts_ms)
            parts["playback_start"].append(t.play_ms)
            if t.early_decode_ms is not None:
                parts["early_decode"].append(t.early_decode_ms)
            ends[t.end_of_turn or t.reason] = ends.get(t.end_of_turn or t.reason, 0) + 1
            if r.turn_gap_ms:
                parts["rest"].append(r.turn_gap_ms[0] - t.silence_wait_ms - t.response_ms)
    right = sum(1 for r, want in zip(reports, expected, strict=True)
                if r.contact is not None and r.contact.intent == want)
    return {
        "calls": len(reports), "turns_timed": len(gaps),
        "turn_gap_p50_ms": _r(pct(gaps, 50)), "turn_gap_p95_ms": _r(pct(gaps, 95)),
        "turn_gap_max_ms": _r(max(gaps, default=None)),
        "last_word_gap_p50_ms": _r(pct(word_gaps, 50)),
        "last_word_gap_p95_ms": _r(pct(word_gaps, 95)),
        "end_of_turn": dict(sorted(ends.items(), key=lambda kv: -kv[1])),
        "routed_right": right, "routed_right_share": round(right / len(reports), 3),
        # Calls whose first reply was the "one moment" acknowledgement (IVR_ACK_AFTER_MS):
        # their gap is to that prompt, the answer came after it.
        "acknowledged": sum(1 for r in reports if r.acks),
        # The answer itself, acknowledged or not, on the node's clock: the last speech
        # frame it heard -> the answer's playback request (the wire adds ~50-150 ms).
        "answer_gap_node_p50_ms": _r(pct(answers, 50)),
        "answer_gap_node_p95_ms": _r(pct(answers, 95)),
        "speech_end_spread_max_ms": _r(max(spreads, default=0.0)),
        "breakdown_ms": {k: {"p50": _r(pct(v, 50)), "p95": _r(pct(v, 95))}
                         for k, v in parts.items()},
        # One line per call (its first turn): which turns make the tail, and why.
        "per_call": [_call_row(r) for r in reports],
        "misrouted": [{"said": r.spec.say, "want": want,
                       "heard": r.contact.question if r.contact else None,
                       "intent": r.contact.intent if r.contact else None, "error": r.error}
                      for r, want in zip(reports, expected, strict=True)
                      if r.contact is None or r.contact.intent != want],
    }


def _call_row(r: VoiceCallReport) -> dict[str, Any]:
    t = r.timings[0] if r.timings else None
    return {"intent": r.contact.intent if r.contact else None,
            "turn_gap_ms": _r(r.turn_gap_ms[0]) if r.turn_gap_ms else None,
            "silence_wait_ms": t.silence_wait_ms if t else None,
            "decision_ms": t.decision_ms if t else None, "tts_ms": t.tts_ms if t else None,
            "end_of_turn": (t.end_of_turn or t.reason) if t else None}


def _load() -> list[float]:
    """1/5/15-minute load averages at the end of the run: figures on a shared machine
    are only meaningful next to them."""
    import os

    return [round(x, 2) for x in os.getloadavg()]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def empty_prompt_cache(settings: Any, rig: Any) -> int:
    """Delete the synthesised prompts the rig keeps between runs (its ``dynamic`` prompt
    folder): the next run synthesises every dynamic prompt afresh. The count removed."""
    from ivr.cli.serve_cmd import rig_settings

    removed = 0
    for wav in (rig_settings(settings, rig).prompt_dir / "dynamic").rglob("*"):
        if wav.is_file():
            wav.unlink()
            removed += 1
    return removed


def no_preparation() -> None:
    """Answers are no longer prepared while the caller speaks (the "before" of #14's
    prepared answers): looked up and synthesised when said."""
    from ivr.domain.flow import prepare

    prepare.start = lambda call: None


async def run(calls: int, together: int, *, known: bool = False, answers: bool = False,
              cold_cache: bool = False) -> dict[str, Any]:
    questions = load_questions()
    if answers:
        questions = [q for q in questions if q[1] in DATA_ANSWERS]
    tmp = Path(tempfile.mkdtemp(prefix="kanaal-turns-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=True)
    engine.dispose()
    # IVR_* from the environment apply (e.g. IVR_ADAPTIVE_END_OF_TURN=false for "before").
    settings = replace(load_settings(env_file=None), database_url=url,
                       data_dir=tmp, log_level="WARNING")
    rig = rig_from_env(log=lambda _line: None)
    await asyncio.to_thread(rig.up)
    emptied = empty_prompt_cache(settings, rig) if cold_cache else None
    reports: list[VoiceCallReport] = []
    expected: list[str] = []
    spreads: list[float] = []
    t0 = time.monotonic()
    async with voice_node(settings, rig=rig, clock=PinnedClock(demo_moment()),
                          hangup_after_s=60) as line:
        i = 0
        while i < calls:
            group = [questions[(i + k) % len(questions)] for k in range(min(together, calls - i))]
            longest = max([await asyncio.to_thread(utterance_s, q) for q, _ in group])
            specs = [VoiceCallSpec(say=q, from_number=(
                KNOWN_NUMBERS[(i + k) % len(KNOWN_NUMBERS)] if known else f"+3120888{i + k:04d}"),
                                   pad_to_s=longest + 0.1 if together > 1 else None)
                     for k, (q, _) in enumerate(group)]
            got = await asyncio.gather(*(line.place(s) for s in specs))
            ends = [r.spoke_until[0] for r in got if r.spoke_until]
            spreads.append((max(ends) - min(ends)) * 1000 if ends else 0.0)
            reports += got
            expected += [want for _, want in group]
            i += len(group)
    out = summarise(reports, expected, spreads)
    out.update(together=together, prompt_cache_emptied=emptied, known_callers=known,
               data_answers_only=answers,
               wall_s=round(time.monotonic() - t0, 1),
               adaptive_end_of_turn=settings.adaptive_end_of_turn,
               whisper_window=settings.whisper_window, whisper_batch=settings.whisper_batch,
               ack_after_ms=settings.ack_after_ms, asr_threads=settings.asr_threads,
               warm_prompts=settings.warm_prompts, load_average=_load())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--together", type=int, default=1,
                    help="callers started together, who stop talking in the same second")
    ap.add_argument("--known", action="store_true",
                    help="call from seeded customers' numbers (identified by caller ID)")
    ap.add_argument("--answers", action="store_true",
                    help="only the questions answered with data (opening hours, order, outage)")
    ap.add_argument("--cold-prompt-cache", action="store_true",
                    help="empty the rig's synthesised-prompt cache first (it survives runs)")
    ap.add_argument("--no-prepare", action="store_true",
                    help="do not prepare answers while the caller speaks (the old way)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    if args.calls < 1 or args.together < 1:
        ap.error("--calls and --together must be at least 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.no_prepare:
        no_preparation()
    out = asyncio.run(run(args.calls, args.together, known=args.known, answers=args.answers,
                          cold_cache=args.cold_prompt_cache))
    out["answers_prepared"] = not args.no_prepare
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['calls']} calls, {out['together']} together (speech ends within "
          f"{out['speech_end_spread_max_ms']:.0f} ms of each other); routed right "
          f"{out['routed_right']}/{out['calls']}")
    print(f"acknowledged ('one moment', the answer slower than IVR_ACK_AFTER_MS): "
          f"{out['acknowledged']}/{out['calls']}")
    print(f"turn gap (caller's last word -> first audio of the reply, at the wire): "
          f"p50 {out['turn_gap_p50_ms']} ms, p95 {out['turn_gap_p95_ms']} ms, "
          f"max {out['turn_gap_max_ms']} ms over {out['turns_timed']} turns")
    print(f"from the caller's last word (its speech's own trailing quiet added): "
          f"p50 {out['last_word_gap_p50_ms']} ms, p95 {out['last_word_gap_p95_ms']} ms")
    print("end of turn: " + ", ".join(f"{k} {n}" for k, n in out["end_of_turn"].items()))
    print("breakdown (p50 / p95 ms): " + ", ".join(
        f"{k.replace('_', ' ')} {v['p50']} / {v['p95']}" for k, v in out["breakdown_ms"].items()))
    for m in out["misrouted"]:
        print(f"  misrouted: said {m['said']!r}, heard {m['heard']!r} -> {m['intent']} "
              f"(want {m['want']}){' error ' + m['error'] if m['error'] else ''}")


if __name__ == "__main__":
    main()
