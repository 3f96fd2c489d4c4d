"""Models a test session loads once instead of once per node it builds.

**The intent matcher.**
Training the production matcher (``ivr.app.build_understanding``: both languages'
classifiers fitted on the catalogue plus the shipped negatives) takes 25-45 s on
the 2-core CI machine, and every e2e test built its own node: several minutes of
the CI budget went on fitting the same models on the same data again. The test
session patches ``build_understanding`` with :class:`SharedUnderstanding`: the
first App per catalogue content trains through the real function; later ones get
a fresh matcher (its own worker pool, pending count and answer memo, the limits
of its settings) over those same fitted models. (Since the fit cache,
``ivr.nlu.fit_cache``, that first App usually loads the models from the machine's
cache in a few seconds rather than fitting them; sharing still saves those
seconds and the memory of a copy per App.)

**Whisper.** Every node's recogniser loaded its own ``faster_whisper.WhisperModel``
(about 2 s at load 4) on its first call; :class:`SharedWhisperModels` hands later
recognisers asking for the same model the one already loaded (CTranslate2 models
serve concurrent decodes; the recogniser's own state, its batcher, grammars and
load tracking, stays per recogniser).

Production code never imports this module (tests/conftest.py installs both).
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.domain.model import LANGUAGES, Language
from ivr.domain.ports import IntentCatalogue, IntentMatcher
from ivr.nlu.matcher import HybridIntentMatcher, MatcherLimits

Build = Callable[[Settings], tuple[IntentCatalogue, IntentMatcher]]
_Key = tuple[tuple[Language, ...], str, str]


def _key(settings: Settings) -> _Key:
    """What the fitted models depend on beyond the code: the catalogue files' bytes
    (not their path: every test's copy of ``grammars/`` is the same catalogue), the
    languages and the embedding cache."""
    languages = tuple(lang for lang in LANGUAGES if lang in settings.languages)
    digest = hashlib.sha256()
    for lang in languages:
        path = Path(settings.grammars_dir) / f"{lang}.yaml"
        digest.update(lang.encode())
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return languages, digest.hexdigest(), str(settings.embedding_cache)


def fresh_view(template: HybridIntentMatcher, limits: MatcherLimits) -> HybridIntentMatcher:
    """A matcher answering like ``template`` with none of its runtime state: a new
    worker pool (made on first use), nothing pending, an empty answer memo, its own
    model table (a test's ``fit`` does not retrain the template)."""
    blank = HybridIntentMatcher(limits=limits)
    view = copy.copy(template)
    for name in ("_pool", "_pending", "_lock", "_recent"):
        setattr(view, name, getattr(blank, name))
    view.limits = limits
    view._models = dict(template._models)
    return view


class SharedUnderstanding:
    """``build_understanding`` that trains once per catalogue content."""

    def __init__(self, build: Build) -> None:
        self._build = build
        self._fitted: dict[_Key, HybridIntentMatcher] = {}
        self.trained = 0  # how many times the real function ran (tests of this kit)

    def __call__(self, settings: Settings) -> tuple[IntentCatalogue, IntentMatcher]:
        from ivr.app import matcher_limits
        from ivr.nlu.catalogue import load_catalogue

        key = _key(settings)
        template = self._fitted.get(key)
        if template is None:
            catalogue, matcher = self._build(settings)
            self.trained += 1
            if not isinstance(matcher, HybridIntentMatcher):
                return catalogue, matcher  # not ours to share
            self._fitted[key] = template = matcher
        else:
            # The catalogue is cheap and read afresh, as build_understanding does.
            catalogue = load_catalogue(settings.grammars_dir, languages=key[0])
        return catalogue, fresh_view(template, matcher_limits(settings))


class SharedWhisperModels:
    """A stand-in for ``faster_whisper.WhisperModel``: one model per set of arguments
    (a load that fails raises as before and is not remembered)."""

    def __init__(self, load: Callable[..., Any]) -> None:
        self._load = load
        self._loaded: dict[tuple[object, ...], Any] = {}
        self.loads = 0  # real loads (tests of this kit)
        self._lock = threading.Lock()

    def __call__(self, model_size_or_path: str, **options: Any) -> Any:
        key = (model_size_or_path, *sorted(options.items()))
        with self._lock:  # recognisers load from worker threads
            model = self._loaded.get(key)
            if model is None:
                model = self._load(model_size_or_path, **options)
                self.loads += 1
                self._loaded[key] = model
            return model
