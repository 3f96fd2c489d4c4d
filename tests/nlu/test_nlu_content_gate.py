"""The content gate: a text without a word the catalogue talks about is out of scope."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivr.nlu.classifier import IntentClassifier
from ivr.nlu.content_gate import ContentGate, load_function_words, shipped_function_words, words

EXAMPLES = ["where is my order", "my invoice is too high", "cancel my contract",
            "ik wil mijn abonnement opzeggen", "er is een internetstoring",
            "i want a refund", "welke snelheid heeft glasvezel"]
FUNCTION = ["i", "my", "is", "a", "the", "where", "want", "uh", "um", "hello", "thank",
            "you", "ik", "wil", "mijn", "er", "een", "op", "zeggen", "blah", "la"]


@pytest.fixture
def gate() -> ContentGate:
    return ContentGate(EXAMPLES, FUNCTION)


@pytest.mark.parametrize("text", [
    "", "uh", "um um um", "hello", "thank you", "blah blah blah", "la la la",
    "qwxz plorf snargle", "what a lovely day", "ik wil", "thanks for watching",
])
def test_texts_without_a_catalogue_word_have_no_content(gate: ContentGate, text: str) -> None:
    """Only grammar words, hesitations, greetings, or words the catalogue never uses."""
    assert not gate.has_content(text)


@pytest.mark.parametrize("text", [
    "order", "uh where is my order", "my invoise",  # one letter mis-heard
    "i want a re fun",  # a word split in two by the recogniser
    "ik wil op zeggen",  # a separable verb written apart: "opzeggen"
    "weer een storing",  # a compound's part: the catalogue has internetstoring
    "welke snelheden",  # another form of a known word
    "cancelled",  # a known word inside a longer one
])
def test_catalogue_words_pass_even_when_misheard(gate: ContentGate, text: str) -> None:
    """Recogniser noise on a real request keeps its content word."""
    assert gate.has_content(text), text


def test_grammar_words_never_join_into_a_content_word() -> None:
    """Two grammar words side by side are not read as a mis-heard catalogue word
    ("eh een" is not "heen")."""
    gate = ContentGate(["ga heen en weer"], ["eh", "een", "ga", "en"])
    assert gate.has_content("heen")
    assert not gate.has_content("eh een")


def test_function_word_lists_ship_for_both_languages() -> None:
    """Both catalogues' languages ship a list; comments and apostrophes are handled."""
    for lang in ("en", "nl"):
        got = shipped_function_words(lang)
        assert got is not None and {"uh", "hallo" if lang == "nl" else "hello"} <= got
        assert not any("#" in w or "'" in w for w in got)
    assert shipped_function_words("xx") is None
    assert words("What's UP, doc?") == ["what", "s", "up", "doc"]


def test_list_file_comments_are_ignored(tmp_path: Path) -> None:
    """A list file: several words a line, '#' comments."""
    path = tmp_path / "fw.txt"
    path.write_text("# a comment with words\nuh um  # hesitations\nhello\n", encoding="utf-8")
    assert load_function_words(path) == {"uh", "um", "hello"}


def test_classifier_gate_caps_the_confidence_below_the_threshold() -> None:
    """With the gate on, a content-free text is out of scope whatever the models say,
    its confidence below the threshold; gate off, the same text is scored as before."""
    rng = np.random.default_rng(7)
    topics = {"a": ["red", "green", "blue"], "b": ["cat", "dog", "cow"]}
    texts, labels = [], []
    for label, vocab in topics.items():
        for _ in range(30):
            texts.append(" ".join(rng.choice(vocab, size=3)))
            labels.append(label)
    clf = IntentClassifier().fit(texts, labels)
    clf.set_operating_point(0.01)
    assert not clf.predict("red dog").out_of_scope
    clf.set_content_gate(["dog", "red"])  # now grammar words: nothing left to match
    gated = clf.predict("red dog")
    assert gated.out_of_scope and gated.ranked[0][1] < clf.config.oos_threshold
    assert not clf.predict("red cow").out_of_scope  # "cow" still carries a request
    clf.set_content_gate(None)
    assert not clf.predict("red dog").out_of_scope
    with pytest.raises(RuntimeError, match="not fitted"):
        IntentClassifier().set_content_gate([])
