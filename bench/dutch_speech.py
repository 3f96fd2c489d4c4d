"""Dutch requests through the node's recogniser and intent matcher, as a call hears them.

    .venv/bin/python bench/dutch_speech.py [--rate 8000|16000] [--speed WPM] [--phrases] [--json]

Twelve Dutch requests worded afresh (not the catalogue's examples) are spoken by
espeak-ng's Dutch voice (the only Dutch speech on this machine; robotic), converted to
``--rate``, streamed in 20 ms packets through the recogniser the settings build (out of
the box: the bundled multilingual Whisper base for Dutch; ``IVR_WHISPER_MODEL`` or
``IVR_VOSK_MODEL_NL`` take over as in a call), then matched by the Dutch intent matcher.
``--phrases`` biases decoding with the catalogue's vocabulary, as the flow's open
question does. Prints each transcript, the word error rate, how many requests were
routed to the right intent (``routed_right``) and the decode time after end of speech.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.app import build_recognizer, build_understanding  # noqa: E402
from ivr.config import load_settings  # noqa: E402
from ivr.speech.audio import read_wav  # noqa: E402
from ivr.speech.recognizers import recognize_pcm  # noqa: E402

CASES = [
    ("Wanneer zijn jullie open", "opening_hours"),
    ("Waar blijft mijn pakket", "order_status"),
    ("Mijn internet doet het niet", "tech_support_internet"),
    ("Ik wil mijn abonnement opzeggen", "cancel_contract"),
    ("Ik ben verhuisd en heb een nieuw adres", "address_change"),
    ("Ik snap mijn rekening niet", "invoice_question"),
    ("Ik wil graag een medewerker spreken", "speak_to_agent"),
    ("Ik ben mijn wachtwoord vergeten", "password_reset"),
    ("Ik wil mijn geld terug", "refund"),
    ("Is er een storing in mijn buurt", "outage_info"),
    ("Kunnen jullie mij terugbellen", "callback_request"),
    ("Ik wil een klacht indienen", "complaint"),
]


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


def _edits(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def _speak(text: str, rate: int, speed: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "nl.wav"
        subprocess.run(["espeak-ng", "-v", "nl", "-s", str(speed), "-w", str(wav), text],
                       check=True)
        return read_wav(wav, sample_rate=rate).pcm16


async def run(rate: int, speed: int, phrases: bool, echo: bool) -> dict[str, object]:
    settings = load_settings(env_file=None)
    rec = build_recognizer(settings)
    catalogue, matcher = build_understanding(settings)
    vocab = list(catalogue.phrases("nl")) if phrases else []
    await recognize_pcm(rec, _speak("Goedendag", rate, speed), rate, "nl")  # load first
    right, errors, words, after = 0, 0, 0, []
    for text, want in CASES:
        result = await recognize_pcm(rec, _speak(text, rate, speed), rate, "nl", vocab)
        match = await matcher.match(result.text, "nl")
        got = None if match.out_of_scope or not match.ranked else match.ranked[0].intent
        right += got == want
        ref = _words(text)
        errors += _edits(ref, _words(result.text))
        words += len(ref)
        after.append(result.processing_ms)
        if echo:
            mark = "right" if got == want else f"wrong (want {want})"
            print(f"{text!r:42} -> {result.text!r:48} {got or 'out of scope'}: {mark}")
    return {"rate": rate, "speed_wpm": speed, "phrases": phrases, "requests": len(CASES),
            "routed_right": right, "wer": round(errors / words, 3),
            "after_end_of_speech_p50_ms": round(statistics.median(after)),
            "after_end_of_speech_max_ms": round(max(after))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, choices=(8000, 16000), default=8000)
    ap.add_argument("--speed", type=int, default=115, help="espeak-ng words per minute")
    ap.add_argument("--phrases", action="store_true", help="bias with the catalogue words")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    report = asyncio.run(run(args.rate, args.speed, args.phrases, echo=not args.json))
    if args.json:
        print(json.dumps(report))
    else:
        print(f"routed right {report['routed_right']}/{report['requests']}, "
              f"WER {report['wer']:.1%}, after end of speech p50 "
              f"{report['after_end_of_speech_p50_ms']} ms, max "
              f"{report['after_end_of_speech_max_ms']} ms")


if __name__ == "__main__":
    main()
