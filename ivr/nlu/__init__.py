"""Understanding: intent catalogues (grammars/*.yaml) and the hybrid intent matcher.

Entry points: ``catalogue.load_catalogue`` -> ``YamlIntentCatalogue`` (IntentCatalogue
port), ``matcher.default_matcher`` / ``HybridIntentMatcher`` (IntentMatcher port),
``evaluation`` for ``ivr intents eval`` and ``bench/intents.py``.
"""
