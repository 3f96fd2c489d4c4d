"""Spoken robustness bench (#18 item 5): caller requests synthesised with several
voices, recognised the way a call's question turn is, then judged by the flow's
own understanding decision (ivr.domain.flow.understand.decide).

Test set: bench/spoken_requests.csv (text, expected intent or out_of_scope),
written from the intent names and labels only, committed before any change.

Voices (all through a G.711 mu-law round trip at 8 kHz, as a phone leg does):
  flite-slt         the IVR's own voice (clear requests: a confirmation here is needless)
  espeak-us         espeak-ng en-us, 160 wpm
  espeak-us-m3      en-us+m3, 175 wpm
  espeak-us-f2      en-us+f2, 145 wpm
  espeak-gb         en-gb, 160 wpm
  espeak-us-fast    en-us, 200 wpm
  phone-us-noisy    espeak-ng en-us, sox band-pass 300-3400 Hz, white noise at ~20 dB SNR
  phone-flite-noisy flite slt, same degradation

Per voice: heard right (the recognised words match the same intent the written
text does, i.e. the mishearing did not change the match), routed right, routed
WRONG (the bad outcome: an intent the caller did not ask for, without asking),
confirmed (a right or wrong guess asked back: "You want to X, is that right?"),
re-asked, off-topic rejected.

    /work/main/.venv/bin/python bench/spoken.py
    /work/main/.venv/bin/python bench/spoken.py --voices flite-slt,espeak-us --json
    /work/main/.venv/bin/python bench/spoken.py --rows /tmp/rows.json   # per-utterance rows
    /work/main/.venv/bin/python bench/spoken.py --rescore /tmp/rows.json --confirm-asr-below 0
    IVR_WHISPER_WINDOW=short ... # the window a loaded node uses (4x less CPU per decode)

Offline: no Asterisk, the recogniser and matcher the node builds from the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.app import build_recognizer, build_understanding  # noqa: E402
from ivr.config import Settings, load_settings  # noqa: E402
from ivr.domain.flow.config import FlowConfig  # noqa: E402
from ivr.domain.flow.understand import decide  # noqa: E402
from ivr.domain.model import IntentMatch, IntentScore  # noqa: E402
from ivr.domain.prompts import words  # noqa: E402
from ivr.nlu.catalogue import load_catalogue  # noqa: E402
from ivr.speech.audio import ulaw_decode, ulaw_encode  # noqa: E402
from ivr.speech.recognizers import recognize_pcm  # noqa: E402
from ivr.speech.tts import EspeakTts, FliteTts  # noqa: E402

RATE = 8000
OOS = "out_of_scope"
CSV = ROOT / "bench" / "spoken_requests.csv"
AGENT_WORDS_UNLESS_ABOVE = FlowConfig().agent_words_unless_above


def _sox(pcm: bytes, *effects: str) -> bytes:
    fmt = ["-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-c", "1"]
    proc = subprocess.run(["sox", *fmt, "-", *fmt, "-", *effects], input=pcm,
                          capture_output=True, check=True)
    return proc.stdout


def degrade(pcm: bytes, seed: int, snr_db: float = 20.0) -> bytes:
    """Telephone band (300-3400 Hz) and white noise at ``snr_db`` below the speech."""
    band = np.frombuffer(_sox(pcm, "sinc", "300-3400"), dtype=np.int16).astype(np.float64)
    rms = float(np.sqrt(np.mean(band[np.abs(band) > 200] ** 2))) if band.size else 0.0
    noise = np.random.default_rng(seed).normal(0.0, rms / 10 ** (snr_db / 20), band.size)
    return np.clip(band + noise, -32768, 32767).astype(np.int16).tobytes()


def phone(pcm: bytes) -> bytes:
    return ulaw_decode(ulaw_encode(pcm))


Synth = Callable[[str, int], bytes]


def _voices() -> dict[str, Synth]:
    flite = FliteTts("slt")
    us, m3 = EspeakTts({"en": "en-us"}), EspeakTts({"en": "en-us+m3"}, speed_wpm=175)
    f2, gb = EspeakTts({"en": "en-us+f2"}, speed_wpm=145), EspeakTts({"en": "en-gb"})
    fast = EspeakTts({"en": "en-us"}, speed_wpm=200)
    return {
        "flite-slt": lambda t, i: flite.synthesize_pcm(t, "en"),
        "espeak-us": lambda t, i: us.synthesize_pcm(t, "en"),
        "espeak-us-m3": lambda t, i: m3.synthesize_pcm(t, "en"),
        "espeak-us-f2": lambda t, i: f2.synthesize_pcm(t, "en"),
        "espeak-gb": lambda t, i: gb.synthesize_pcm(t, "en"),
        "espeak-us-fast": lambda t, i: fast.synthesize_pcm(t, "en"),
        "phone-us-noisy": lambda t, i: degrade(us.synthesize_pcm(t, "en"), i),
        "phone-flite-noisy": lambda t, i: degrade(flite.synthesize_pcm(t, "en"), i),
    }


@dataclass
class Row:
    voice: str
    text: str
    expected: str
    heard: str
    asr_confidence: float
    best: str | None
    match_confidence: float
    out_of_scope: bool
    clean_best: str | None  # the match of the written text (what a perfect ear gives)
    verdict: str  # route | confirm | reject (the flow's decision)
    decode_ms: float
    agent_words: bool = False  # the flow's "agent" shortcut took it (best = speak_to_agent)


def outcome(r: Row) -> str:
    """right | wrong | confirm_right | confirm_wrong | reask | oos_rejected | oos_routed ..."""
    if r.expected == OOS:
        return {"reject": "oos_rejected", "confirm": "oos_confirmed"}.get(r.verdict, "oos_routed")
    if r.verdict == "reject":
        return "reask"
    right = r.best == r.expected
    if r.verdict == "confirm":
        return "confirm_right" if right else "confirm_wrong"
    return "right" if right else "wrong"


def summarise(rows: list[Row]) -> dict[str, float | int]:
    ins = [r for r in rows if r.expected != OOS]
    oos = [r for r in rows if r.expected == OOS]
    out = [outcome(r) for r in ins]
    n = max(len(ins), 1)

    def pct(k: str) -> float:
        return round(100 * out.count(k) / n, 1)

    clean_right = [r for r in ins if r.clean_best == r.expected]
    return {
        "n": len(ins),
        "n_oos": len(oos),
        "heard_right_pct": round(100 * sum(r.best == r.clean_best for r in ins) / n, 1),
        "routed_right_pct": pct("right"),
        "routed_wrong_pct": pct("wrong"),
        "confirmed_right_pct": pct("confirm_right"),
        "confirmed_wrong_pct": pct("confirm_wrong"),
        "reasked_pct": pct("reask"),
        "right_or_confirmed_pct": round(pct("right") + pct("confirm_right"), 1),
        "needless_confirm": sum(outcome(r) == "confirm_right" and r.clean_best == r.expected
                                for r in clean_right),
        "oos_rejected_pct": round(100 * sum(outcome(r) == "oos_rejected" for r in oos)
                                  / max(len(oos), 1), 1),
        "oos_routed_pct": round(100 * sum(outcome(r) == "oos_routed" for r in oos)
                                / max(len(oos), 1), 1),
        "decode_ms_p50": round(float(np.median([r.decode_ms for r in rows])), 1) if rows else 0.0,
    }


def _agent_words(text: str) -> bool:
    t = f" {' '.join(text.lower().replace(',', ' ').replace('.', ' ').split())} "
    return any(f" {w} " in t for w in words("agent_words", "en"))


def judge(r: Row, cfg: FlowConfig, sensitive: frozenset[str]) -> str:
    """The flow's verdict for one recognised request (re-run on saved rows by --rescore)."""
    if r.agent_words:
        return "route"  # the flow's agent-words shortcut, decided before the matcher
    if not r.heard or r.best is None:
        return "reject"
    m = IntentMatch(ranked=(IntentScore(r.best, r.match_confidence),),
                    out_of_scope=r.out_of_scope)
    return decide(m, cfg, sensitive=r.best in sensitive, asr_confidence=r.asr_confidence)


async def recognise_all(args: argparse.Namespace, settings: Settings) -> list[Row]:
    catalogue, matcher = build_understanding(settings)
    recognizer = build_recognizer(settings)
    phrases = list(catalogue.phrases("en"))
    if args.hotwords == "sorted":
        phrases = sorted(phrases)  # the order before #18 item 5 (only a..au fitted)
    with CSV.open() as f:
        items = [(r["text"], r["expected"]) for r in csv.DictReader(f)]
    if args.limit:
        items = items[: args.limit]
    clean = {t: (await matcher.match(t, "en")).best for t, _ in items}
    voices = _voices()
    chosen = args.voices.split(",") if args.voices else list(voices)
    await recognize_pcm(recognizer, bytes(RATE), RATE, "en", phrases)  # load the model
    rows: list[Row] = []
    for voice in chosen:
        for i, (text, expected) in enumerate(items):
            pcm = phone(voices[voice](text, i))
            t0 = time.perf_counter()
            res = await recognize_pcm(recognizer, pcm, RATE, "en", phrases)
            ms = (time.perf_counter() - t0) * 1000
            m = await matcher.match(res.text, "en") if res.text else None
            best = m.best if m else None
            agent = bool(res.text) and _agent_words(res.text) and (
                best is None or best.confidence < AGENT_WORDS_UNLESS_ABOVE)
            c = clean[text]
            rows.append(Row(voice, text, expected, res.text, res.confidence,
                            "speak_to_agent" if agent else (best.intent if best else None),
                            best.confidence if best else 0.0, bool(m and m.out_of_scope),
                            c.intent if c else None, "", ms, agent))
        if args.rows:  # after each voice: a long run cut short can still be --rescore'd
            Path(args.rows).write_text(  # noqa: ASYNC240 (a bench; nothing else waits)
                json.dumps([asdict(r) for r in rows], indent=1))
    return rows


def run(args: argparse.Namespace) -> dict[str, object]:
    settings = load_settings(env_file=None)
    if args.rescore:
        rows = [Row(**r) for r in json.loads(Path(args.rescore).read_text())]
    else:
        rows = asyncio.run(recognise_all(args, settings))
    trust = settings.confirm_asr_below if args.confirm_asr_below is None \
        else args.confirm_asr_below
    cfg = FlowConfig(confirm_below=settings.confirm_below, reject_below=settings.reject_below,
                     confirm_asr_below=trust)
    sensitive = frozenset(s.name for s in load_catalogue(settings.grammars_dir, ("en",)).specs()
                          if s.sensitive)
    for r in rows:
        r.verdict = judge(r, cfg, sensitive)
    if args.rows:
        Path(args.rows).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    chosen = list(dict.fromkeys(r.voice for r in rows))
    per_voice = {v: summarise([r for r in rows if r.voice == v]) for v in chosen}
    hard = [r for r in rows if r.voice != "flite-slt"]
    return {
        "bench": "spoken",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "requests": len({r.text for r in rows}),
        "rescored_from": args.rescore or None,
        "hotwords": args.hotwords,
        "whisper_window": settings.whisper_window,
        "confirm_below": cfg.confirm_below,
        "reject_below": cfg.reject_below,
        "confirm_asr_below": cfg.confirm_asr_below,
        "per_voice": per_voice,
        "all_hard_voices": summarise(hard),
    }


def print_table(doc: dict[str, object]) -> None:
    print(f"# spoken bench: {doc['requests']} requests, load average {doc['load_avg_1m']}")
    cols = ["heard_right_pct", "routed_right_pct", "routed_wrong_pct", "confirmed_right_pct",
            "confirmed_wrong_pct", "reasked_pct", "right_or_confirmed_pct", "needless_confirm",
            "oos_rejected_pct", "oos_routed_pct", "decode_ms_p50"]
    heads = ["heard", "right", "WRONG", "conf+", "conf-", "reask", "right|conf",
             "needless", "oos rej", "oos routed", "dec p50"]
    print(f"{'voice':<18}" + "".join(f"{h:>11}" for h in heads))
    per_voice = doc["per_voice"]
    assert isinstance(per_voice, dict)
    for v, s in [*per_voice.items(), ("ALL hard voices", doc["all_hard_voices"])]:
        print(f"{v:<18}" + "".join(f"{s[c]:>11}" for c in cols))
    print("heard = the recognised words match the same intent the written text does; "
          "needless = clear requests (written text matched right) asked back")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--voices", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--limit", type=int, default=0, help="first N requests only")
    ap.add_argument("--rows", default="", help="write per-utterance rows (JSON) here")
    ap.add_argument("--rescore", default="", help="judge rows saved by --rows again "
                    "(no synthesis, no recognition): the decision alone")
    ap.add_argument("--confirm-asr-below", type=float, default=None,
                    help="override IVR_CONFIRM_ASR_BELOW (0: the matcher alone, as before)")
    ap.add_argument("--hotwords", choices=("catalogue", "sorted"), default="catalogue",
                    help="the recogniser's vocabulary hint: the catalogue's own order (as "
                    "a call), or sorted alphabetically (as before #18 item 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    for tool in ("flite", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/setup.sh installs it)")
    doc = run(args)
    if args.json:
        print(json.dumps(doc))
    else:
        print_table(doc)


if __name__ == "__main__":
    main()
