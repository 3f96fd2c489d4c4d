"""The shipped catalogues and the validation of bad catalogue files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ivr.domain.model import Scenario
from ivr.nlu.catalogue import SKILLS, CatalogueError, YamlIntentCatalogue, load_catalogue

GRAMMARS = Path(__file__).resolve().parents[2] / "grammars"

REQUIRED = {
    # name: (scenario, skill or None, answer_ref or None, link_key or None)
    "order_status": ("S1", None, "crm:order_status", None),
    "opening_hours": ("S1", None, "kb:opening_hours", None),
    "outage_info": ("S1", None, "crm:outage", None),
    "tech_support_internet": ("S1", None, "kb:troubleshoot_internet", None),
    "tech_support_device": ("S1", None, "kb:troubleshoot_device", None),
    "invoice_question": ("S4", "billing", None, None),
    "payment_arrears": ("S4", "collections", None, None),
    "address_change": ("S2", None, None, "address_change"),
    "activate_account": ("S2", None, None, "activate_account"),
    "deactivate_account": ("S2", None, None, "deactivate_account"),
    "password_reset": ("S2", None, None, "password_reset"),
    "tech_support_app": ("S3", "tech", None, "chat"),
    "product_question": ("S3", "sales", None, "chat"),
    "report_fault": ("S4", "tech", None, None),
    "cancel_contract": ("S4", "retention", None, None),
    "complaint": ("S4", "complaints", None, None),
    "new_contract": ("S4", "sales", None, None),
    "callback_request": ("S4", "general", None, None),
    "speak_to_agent": ("S4", "general", None, None),
    "report_death": ("S4", "bereavement", None, None),
}


def test_shipped_catalogue_has_required_intents(catalogue: YamlIntentCatalogue) -> None:
    """Every intent the call flow relies on exists with the agreed metadata."""
    assert len(catalogue.intents) >= 25
    for name, (scenario, skill, answer_ref, link_key) in REQUIRED.items():
        spec = catalogue.spec(name)
        assert spec is not None, name
        assert spec.scenario == Scenario(scenario), name
        if skill:
            assert spec.skill == skill, name
        if answer_ref:
            assert spec.answer_ref == answer_ref, name
        if link_key:
            assert spec.link_key == link_key, name
    death = catalogue.spec("report_death")
    assert death is not None and death.sensitive


def test_every_intent_is_complete_in_both_languages(catalogue: YamlIntentCatalogue) -> None:
    """Each intent has >= 15 examples and a label per language and a known skill."""
    for lang in ("en", "nl"):
        counts: dict[str, int] = {}
        for _, intent in catalogue.examples(lang):
            counts[intent] = counts.get(intent, 0) + 1
        assert set(counts) == set(catalogue.intents)
        assert min(counts.values()) >= 15
    for spec in catalogue.specs():
        assert spec.skill in SKILLS
        assert spec.label.get("en") and spec.label.get("nl")


def test_keypad_menu_order(catalogue: YamlIntentCatalogue) -> None:
    """The keypad menu lists 1..9 then 0, with speak_to_agent on 0."""
    menu = catalogue.keypad_menu()
    keys = [s.keypad for s in menu]
    assert keys == [*sorted(k for k in keys if k != "0"), "0"]
    assert len(menu) >= 8
    assert menu[-1].name == "speak_to_agent"
    assert next(s for s in menu if s.keypad == "1").name == "order_status"


def test_phrases_are_distinct_words(catalogue: YamlIntentCatalogue) -> None:
    """The ASR vocabulary hint is a list of distinct lower-case words."""
    words = list(catalogue.phrases("nl"))
    assert len(words) == len(set(words))
    assert "verhuizen" in words and "factuur" in words
    assert all(re.fullmatch(r"[^\W\d_]+(['-][^\W\d_]+)*", w) for w in words)
    assert catalogue.spec("no_such_intent") is None


def _copy(tmp_path: Path) -> Path:
    for lang in ("en", "nl"):
        shutil.copy(GRAMMARS / f"{lang}.yaml", tmp_path / f"{lang}.yaml")
    return tmp_path


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    """Line number of the last line containing ``needle`` (edits duplicate earlier ones)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    hits = [i for i, line in enumerate(lines, start=1) if needle in line]
    assert hits, needle
    return hits[-1]


@pytest.mark.parametrize(
    ("lang", "old", "new", "field", "needle"),
    [
        ("en", "    scenario: S1\n    skill: logistics\n    answer_ref: \"crm:order_status\"",
         "    scenario: S7\n    skill: logistics\n    answer_ref: \"crm:order_status\"",
         "intents.order_status.scenario", "scenario: S7"),
        ("en", "skill: bereavement", "skill: undertakers",
         "intents.report_death.skill", "skill: undertakers"),
        ("en", 'keypad: "2"', 'keypad: "1"', "intents.invoice_question.keypad", 'keypad: "1"'),
        ("en", 'keypad: "2"', 'keypad: "22"', "intents.invoice_question.keypad", 'keypad: "22"'),
        ("en", "sensitive: true", "sensitive: maybe", "intents.report_death.sensitive",
         "sensitive: maybe"),
        ("en", "    label: order status\n", "    label: order status\n    colour: red\n",
         "intents.order_status.colour", "colour: red"),
        ("en", "      - where is my order\n",
         "      - where is my order\n      - Where is  my order\n",
         "intents.order_status.examples[1]", "Where is  my order"),
        ("nl", "  order_status:\n", "  order_status:\n    skill: sales\n",
         "intents.order_status.skill", "skill: sales"),
        ("nl", "  order_status:\n", "  order_statuss:\n", "intents.order_statuss",
         "order_statuss:"),
    ],
)
def test_bad_file_names_file_line_and_field(
    tmp_path: Path, lang: str, old: str, new: str, field: str, needle: str
) -> None:
    """A broken catalogue fails with the file, the line and the field of the problem."""
    directory = _copy(tmp_path)
    path = directory / f"{lang}.yaml"
    _edit(path, old, new)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(directory)
    err = info.value
    assert err.file == str(path)
    assert err.field == field
    assert err.line == _line_of(path, needle)
    assert f"{path}:{err.line}: {field}:" in str(err)


def test_too_few_examples_and_missing_intent(tmp_path: Path) -> None:
    """Fewer than 15 examples, or an intent absent from nl.yaml, are reported."""
    directory = _copy(tmp_path)
    en = directory / "en.yaml"
    # Keep only order_status's first three examples, wherever they sit.
    lines = en.read_text(encoding="utf-8").splitlines(keepends=True)
    first = lines.index("  order_status:\n")
    end = first + 1
    while end < len(lines) and (lines[end].startswith("   ") or not lines[end].strip()):
        end += 1  # the intent's block ends at the next two-space key
    items = [i for i in range(first, end) if lines[i].startswith("      - ")]
    assert len(items) > 15
    drop = set(items[3:])
    en.write_text("".join(ln for i, ln in enumerate(lines) if i not in drop), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"order_status.examples: \d+ examples, at least 15"):
        load_catalogue(directory)

    (tmp_path / "b").mkdir()
    directory2 = _copy(tmp_path / "b")
    nl = directory2 / "nl.yaml"
    text = nl.read_text(encoding="utf-8")
    start = text.index("  report_death:")
    nl.write_text(text[:start], encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"nl.yaml: intents.report_death: missing"):
        load_catalogue(directory2)


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    """Unparseable YAML reports its line; a missing file is named."""
    directory = _copy(tmp_path)
    _edit(directory / "nl.yaml", "  opening_hours:\n", "  opening_hours: [\n")
    with pytest.raises(CatalogueError) as info:
        load_catalogue(directory)
    assert info.value.field == "yaml" and info.value.line is not None
    (directory / "nl.yaml").unlink()
    with pytest.raises(CatalogueError, match=r"nl\.yaml: file: not found"):
        load_catalogue(directory)


def test_s2_without_link_key_is_rejected(tmp_path: Path) -> None:
    """Self-service intents must name the link they send."""
    directory = _copy(tmp_path)
    _edit(directory / "en.yaml", "    link_key: password_reset\n", "")
    with pytest.raises(CatalogueError, match=r"password_reset\.link_key: scenario S2 needs"):
        load_catalogue(directory)


def test_phrases_put_the_telling_words_where_the_recogniser_reads_them(
        catalogue: YamlIntentCatalogue) -> None:
    """Whisper keeps only the first 500 characters of the hint: the label words and the
    examples' frequent content words come first, grammar words not at all (sorted, the
    budget ended at "automatically" and "refund" never reached the recogniser)."""
    from ivr.speech.whisper_engine import _hotwords

    for lang, must in (("en", ("refund", "password", "reset", "outage", "technician")),
                       ("nl", ("terugbetaling", "wachtwoord", "storingen", "monteur"))):
        words = list(catalogue.phrases(lang))  # type: ignore[arg-type]
        hint = _hotwords(words) or ""
        assert len(hint) <= 500 and all(w in hint.split() for w in must), (lang, hint)
        assert set(hint.split()) <= set(words)  # whole words only, never a cut fragment
    en = list(catalogue.phrases("en"))
    assert not {"the", "my", "a", "i'm"} & set(en)
