"""Download and unpack Vosk models supplied by the operator (`ivr models fetch`)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx


class ModelFetchError(Exception):
    """Download failed, or the file did not verify (size, checksum, zip integrity)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Where a model zip lives and what it must look like."""

    name: str
    url: str
    size: int | None = None  # bytes, when known
    sha256: str | None = None  # hex, when known


# The official Vosk small models. Sizes/checksums are not pinned here because the
# project could not download them from this build environment to measure them;
# the zip's own CRCs are always verified, and Content-Length when the server sends it.
KNOWN_MODELS: dict[str, ModelSpec] = {
    "vosk-small-en": ModelSpec(
        "vosk-small-en", "https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip"
    ),
    "vosk-small-nl": ModelSpec(
        "vosk-small-nl", "https://alphacephei.com/vosk/models/vosk-model-small-nl-0.22.zip"
    ),
}


def fetch_model(
    spec: ModelSpec,
    dest: Path,
    *,
    client: httpx.Client | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    max_bytes: int = 4 * 1024**3,
) -> Path:
    """Stream ``spec.url`` to disk, verify it and unpack it under ``dest``; return the model dir."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    own = client is None
    http = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0, read=120.0))
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest) as tmp:
        zpath = Path(tmp) / "model.zip"
        try:
            with http.stream("GET", spec.url) as resp:
                if resp.status_code != 200:
                    raise ModelFetchError(f"GET {spec.url}: HTTP {resp.status_code}")
                announced = resp.headers.get("content-length")
                total = int(announced) if announced and announced.isdigit() else None
                got = 0
                with zpath.open("wb") as fh:
                    for block in resp.iter_bytes(1 << 16):
                        got += len(block)
                        if got > max_bytes:
                            raise ModelFetchError(f"{spec.url} is larger than {max_bytes} bytes")
                        digest.update(block)
                        fh.write(block)
                        if progress:
                            progress(got, total)
        except httpx.HTTPError as exc:
            raise ModelFetchError(f"download of {spec.url} failed: {exc}") from exc
        finally:
            if own:
                http.close()
        if total is not None and got != total:
            raise ModelFetchError(f"truncated download: {got} of {total} bytes")
        if spec.size is not None and got != spec.size:
            raise ModelFetchError(f"size mismatch: got {got} bytes, expected {spec.size}")
        if spec.sha256 is not None and digest.hexdigest() != spec.sha256.lower():
            raise ModelFetchError(f"sha256 mismatch: got {digest.hexdigest()}")
        return _unpack(zpath, dest, Path(tmp))


def _unpack(zpath: Path, dest: Path, tmp: Path) -> Path:
    try:
        with zipfile.ZipFile(zpath) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ModelFetchError(f"corrupt zip member {bad}")
            names = zf.namelist()
            for name in names:
                # Refuse absolute paths and "..": a hostile zip must not write outside dest.
                parts = Path(name).parts
                if name.startswith("/") or ".." in parts:
                    raise ModelFetchError(f"unsafe path in zip: {name}")
            tops = {Path(n).parts[0] for n in names if n.strip("/")}
            if len(tops) != 1:
                raise ModelFetchError("expected one top-level model directory in the zip")
            top = tops.pop()
            staging = tmp / "unpacked"
            zf.extractall(staging)
    except zipfile.BadZipFile as exc:
        raise ModelFetchError(f"not a zip file: {exc}") from exc
    model_dir = staging / top
    if not (model_dir / "am").is_dir() and not (model_dir / "conf").is_dir():
        raise ModelFetchError(f"{top} does not look like a Vosk model (no am/ or conf/)")
    final = dest / top
    if final.exists():
        shutil.rmtree(final)
    shutil.move(str(model_dir), final)
    return final
