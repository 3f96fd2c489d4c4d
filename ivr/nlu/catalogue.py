"""Intent catalogues: grammars/<lang>.yaml loaded into validated IntentSpecs.

The files are edited by people, so every problem is reported with the file,
line and field it concerns; nothing half-valid is ever handed to the call flow.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ivr.domain.model import LANGUAGES, IntentSpec, Language, Scenario
from ivr.nlu.content_gate import shipped_function_words

SKILLS: frozenset[str] = frozenset(
    {
        "general",
        "billing",
        "collections",
        "tech",
        "sales",
        "retention",
        "complaints",
        "bereavement",
        "logistics",
    }
)
MIN_EXAMPLES = 15
META_FIELDS = ("scenario", "skill", "answer_ref", "sensitive", "keypad", "link_key")
INTENT_FIELDS = frozenset({*META_FIELDS, "label", "examples"})
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_KEYPAD_RE = re.compile(r"^[0-9]$")
_WORD_RE = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*", re.UNICODE)


class CatalogueError(ValueError):
    """A catalogue file is missing or invalid; the message names file, line and field."""

    def __init__(self, file: Path | str, line: int | None, field: str, problem: str) -> None:
        self.file = str(file)
        self.line = line
        self.field = field
        self.problem = problem
        where = f"{self.file}:{line}" if line is not None else self.file
        super().__init__(f"{where}: {field}: {problem}")


@dataclass(frozen=True, slots=True)
class _Entry:
    """One intent as read from one language file, before cross-file checks."""

    name: str
    line: int
    meta: dict[str, Any]  # only the metadata fields present in this file
    meta_lines: dict[str, int]
    label: str
    examples: tuple[str, ...]


class YamlIntentCatalogue:
    """The validated catalogue for all languages (implements the IntentCatalogue port)."""

    def __init__(
        self,
        specs: Sequence[IntentSpec],
        examples: dict[Language, list[tuple[str, str]]],
    ) -> None:
        self._specs = {s.name: s for s in specs}
        self._examples = examples

    @property
    def intents(self) -> tuple[str, ...]:
        """Intent names in file order."""
        return tuple(self._specs)

    @property
    def languages(self) -> tuple[Language, ...]:
        return tuple(self._examples)

    def spec(self, name: str) -> IntentSpec | None:
        return self._specs.get(name)

    def specs(self) -> tuple[IntentSpec, ...]:
        return tuple(self._specs.values())

    def all_specs(self) -> Sequence[IntentSpec]:
        return self.specs()

    def keypad_menu(self) -> Sequence[IntentSpec]:
        """Intents that have a keypad digit, ordered 1..9 then 0 (as read out in menus)."""
        keyed = [s for s in self._specs.values() if s.keypad is not None]
        return sorted(keyed, key=lambda s: (s.keypad == "0", s.keypad or ""))

    def examples(self, language: Language) -> list[tuple[str, str]]:
        """(text, intent) training pairs of one language."""
        return list(self._examples.get(language, []))

    def phrases(self, language: Language) -> Sequence[str]:
        """Distinct lower-case words of the labels and examples, most telling first: the
        vocabulary hint for the recogniser, which keeps only the head of the list.

        The intents' label words come first, then the examples' other words by how
        often they occur; words that carry no request ("the", "my", "please") are left
        out. Sorted alphabetically, Whisper's 500-character hotword budget held only
        "a" to "automatically": "refund", "password" and "reset" never reached it."""
        function = shipped_function_words(language) or frozenset()
        counts: Counter[str] = Counter()
        for text, _ in self._examples.get(language, []):
            # Contractions ("i'm", "don't") are grammar too.
            counts.update(w for w in _WORD_RE.findall(text.lower())
                          if w not in function and "'" not in w)
        seen: dict[str, None] = {}
        for spec in self._specs.values():
            for word in _WORD_RE.findall(spec.label_for(language).lower()):
                if word not in function:
                    seen.setdefault(word, None)
        for word, _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            seen.setdefault(word, None)
        return list(seen)




def load_catalogue(
    directory: Path, languages: Sequence[Language] = LANGUAGES
) -> YamlIntentCatalogue:
    """Read and validate ``<directory>/<lang>.yaml`` for each language.

    The first language's file is the reference for intent names and metadata;
    the others must list the same intents and may repeat the metadata only
    with identical values. Raises CatalogueError on the first problem found.
    """
    if not languages:
        raise CatalogueError(directory, None, "languages", "no language requested")
    per_lang: dict[Language, tuple[Path, dict[str, _Entry]]] = {}
    for lang in languages:
        path = Path(directory) / f"{lang}.yaml"
        per_lang[lang] = (path, _read_file(path, lang))

    ref_lang = languages[0]
    ref_path, ref_entries = per_lang[ref_lang]
    specs_meta: dict[str, dict[str, Any]] = {}
    for name, entry in ref_entries.items():
        specs_meta[name] = _complete_meta(ref_path, entry)

    for lang in languages[1:]:
        path, entries = per_lang[lang]
        for name, entry in entries.items():
            if name not in ref_entries:
                raise CatalogueError(
                    path, entry.line, f"intents.{name}",
                    f"intent not defined in {ref_path.name}",
                )
            for fld, value in entry.meta.items():
                if value != specs_meta[name][fld]:
                    raise CatalogueError(
                        path, entry.meta_lines[fld], f"intents.{name}.{fld}",
                        f"{value!r} differs from {ref_path.name} "
                        f"({specs_meta[name][fld]!r})",
                    )
        for name, entry in ref_entries.items():
            if name not in entries:
                raise CatalogueError(
                    path, None, f"intents.{name}",
                    f"missing (defined in {ref_path.name} line {entry.line})",
                )

    _check_keypad_unique(ref_path, ref_entries, specs_meta)

    specs: list[IntentSpec] = []
    for name, meta in specs_meta.items():
        labels: dict[str, str] = {lang: per_lang[lang][1][name].label for lang in languages}
        specs.append(
            IntentSpec(
                name=name,
                scenario=Scenario(meta["scenario"]),
                skill=meta["skill"],
                label=labels,
                answer_ref=meta["answer_ref"],
                sensitive=meta["sensitive"],
                keypad=meta["keypad"],
                link_key=meta["link_key"],
            )
        )
    examples: dict[Language, list[tuple[str, str]]] = {
        lang: [(ex, name) for name, e in per_lang[lang][1].items() for ex in e.examples]
        for lang in languages
    }
    return YamlIntentCatalogue(specs, examples)


def _read_file(path: Path, lang: Language) -> dict[str, _Entry]:
    root = _compose(path)
    if not isinstance(root, yaml.MappingNode):
        raise CatalogueError(path, _line(root) if root else 1, "document", "must be a mapping")
    top = _mapping(path, root, "document")
    _check_top_level(path, top, lang)
    intents_node = top["intents"][1]
    if not isinstance(intents_node, yaml.MappingNode):
        raise CatalogueError(path, _line(intents_node), "intents", "must be a mapping of intents")
    entries: dict[str, _Entry] = {}
    for name, (knode, vnode) in _mapping(path, intents_node, "intents").items():
        if not _NAME_RE.match(name):
            raise CatalogueError(
                path, _line(knode), f"intents.{name}", "name must be snake_case ([a-z0-9_])"
            )
        entries[name] = _read_entry(path, name, knode, vnode)
    if not entries:
        raise CatalogueError(path, _line(intents_node), "intents", "no intents defined")
    return entries


def _compose(path: Path) -> yaml.Node | None:
    """The file's YAML node tree (nodes, not values: errors can then name a line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogueError(path, None, "file", "not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(path, None, "file", f"cannot read: {exc}") from None
    try:
        root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise CatalogueError(path, line, "yaml", str(exc.problem or exc)) from None
    except yaml.YAMLError as exc:
        raise CatalogueError(path, None, "yaml", str(exc)) from None
    return root


def _check_top_level(path: Path, top: dict[str, tuple[yaml.Node, Any]], lang: Language) -> None:
    """``language`` (optional, must match the file name) and ``intents``, nothing else."""
    declared = top.get("language")
    if declared is not None:
        value = _scalar(path, declared[1], "language")
        if value != lang:
            raise CatalogueError(
                path, _line(declared[1]), "language", f"{value!r} but file is for {lang!r}"
            )
    if "intents" not in top:
        raise CatalogueError(path, 1, "intents", "missing")
    for key, (knode, _) in top.items():
        if key not in ("language", "intents"):
            raise CatalogueError(path, _line(knode), key, "unknown top-level field")


def _read_entry(path: Path, name: str, knode: yaml.Node, vnode: yaml.Node) -> _Entry:
    base = f"intents.{name}"
    if not isinstance(vnode, yaml.MappingNode):
        raise CatalogueError(path, _line(vnode), base, "must be a mapping")
    fields = _mapping(path, vnode, base)
    for key, (fk, _) in fields.items():
        if key not in INTENT_FIELDS:
            raise CatalogueError(
                path, _line(fk), f"{base}.{key}",
                f"unknown field (allowed: {', '.join(sorted(INTENT_FIELDS))})",
            )
    if "label" not in fields:
        raise CatalogueError(path, _line(knode), f"{base}.label", "missing")
    label = _scalar(path, fields["label"][1], f"{base}.label")
    if not label.strip():
        raise CatalogueError(path, _line(fields["label"][1]), f"{base}.label", "empty")
    if "examples" not in fields:
        raise CatalogueError(path, _line(knode), f"{base}.examples", "missing")
    examples = _read_examples(path, fields["examples"][1], f"{base}.examples")
    meta: dict[str, Any] = {}
    meta_lines: dict[str, int] = {}
    for fld in META_FIELDS:
        if fld in fields:
            vn = fields[fld][1]
            meta[fld] = _meta_value(path, vn, f"{base}.{fld}", fld)
            meta_lines[fld] = _line(vn)
    return _Entry(name, _line(knode), meta, meta_lines, label.strip(), examples)


def _read_examples(path: Path, ex_node: yaml.Node, where: str) -> tuple[str, ...]:
    """Non-empty examples, unique up to case and spacing, at least MIN_EXAMPLES."""
    if not isinstance(ex_node, yaml.SequenceNode):
        raise CatalogueError(path, _line(ex_node), where, "must be a list")
    examples: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(ex_node.value):
        text = _scalar(path, item, f"{where}[{i}]").strip()
        if not text:
            raise CatalogueError(path, _line(item), f"{where}[{i}]", "empty example")
        key = " ".join(text.lower().split())
        if key in seen:
            raise CatalogueError(path, _line(item), f"{where}[{i}]", f"duplicate example {text!r}")
        seen.add(key)
        examples.append(text)
    if len(examples) < MIN_EXAMPLES:
        raise CatalogueError(
            path, _line(ex_node), where,
            f"{len(examples)} examples, at least {MIN_EXAMPLES} required",
        )
    return tuple(examples)

def _meta_value(path: Path, node: yaml.Node, where: str, fld: str) -> Any:
    """Parse and check one metadata value (typed, so errors point at its line)."""
    if not isinstance(node, yaml.ScalarNode):
        raise CatalogueError(path, _line(node), where, "must be a single value")
    # compose() has already resolved implicit tags (bool/int/null/str); construct the value.
    value = yaml.constructor.SafeConstructor().construct_object(node)
    line = _line(node)
    if fld == "scenario":
        allowed = [s.value for s in Scenario]
        if str(value) not in allowed:
            raise CatalogueError(path, line, where, f"{value!r} is not one of {allowed}")
        return str(value)
    if fld == "skill":
        if str(value) not in SKILLS:
            raise CatalogueError(
                path, line, where, f"{value!r} is not a known skill ({', '.join(sorted(SKILLS))})"
            )
        return str(value)
    if fld == "sensitive":
        if not isinstance(value, bool):
            raise CatalogueError(path, line, where, f"{value!r} must be true or false")
        return value
    if value is None:
        return None
    if fld == "keypad":
        # YAML reads an unquoted 1 as an int; accept it, since the meaning is clear.
        text = str(value)
        if not _KEYPAD_RE.match(text):
            raise CatalogueError(path, line, where, f"{value!r} must be one digit 0-9 or null")
        return text
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(path, line, where, f"{value!r} must be a non-empty string or null")
    return value.strip()


def _complete_meta(path: Path, entry: _Entry) -> dict[str, Any]:
    """Reference-file metadata with defaults, checked for scenario-specific needs."""
    base = f"intents.{entry.name}"
    for required in ("scenario", "skill"):
        if required not in entry.meta:
            raise CatalogueError(path, entry.line, f"{base}.{required}", "missing")
    meta = {
        "scenario": entry.meta["scenario"],
        "skill": entry.meta["skill"],
        "answer_ref": entry.meta.get("answer_ref"),
        "sensitive": entry.meta.get("sensitive", False),
        "keypad": entry.meta.get("keypad"),
        "link_key": entry.meta.get("link_key"),
    }
    scenario = Scenario(meta["scenario"])
    if scenario is Scenario.ANSWER and not meta["answer_ref"]:
        raise CatalogueError(
            path, entry.meta_lines["scenario"], f"{base}.answer_ref",
            "scenario S1 (answer) needs an answer_ref",
        )
    if scenario in (Scenario.SELF_SERVICE, Scenario.CHAT) and not meta["link_key"]:
        raise CatalogueError(
            path, entry.meta_lines["scenario"], f"{base}.link_key",
            f"scenario {scenario.value} needs a link_key",
        )
    if meta["sensitive"] and scenario is not Scenario.AGENT:
        raise CatalogueError(
            path, entry.meta_lines["sensitive"], f"{base}.sensitive",
            "sensitive intents must go to a human (scenario S4)",
        )
    return meta


def _check_keypad_unique(
    path: Path, entries: dict[str, _Entry], metas: dict[str, dict[str, Any]]
) -> None:
    owner: dict[str, str] = {}
    for name, meta in metas.items():
        key = meta["keypad"]
        if key is None:
            continue
        if key in owner:
            raise CatalogueError(
                path, entries[name].meta_lines.get("keypad"), f"intents.{name}.keypad",
                f"digit {key} already used by {owner[key]}",
            )
        owner[key] = name


def _mapping(path: Path, node: yaml.MappingNode, where: str) -> dict[str, tuple[yaml.Node, Any]]:
    out: dict[str, tuple[yaml.Node, Any]] = {}
    for knode, vnode in node.value:
        key = _scalar(path, knode, where)
        if key in out:
            raise CatalogueError(path, _line(knode), f"{where}.{key}", "duplicate key")
        out[key] = (knode, vnode)
    return out


def _scalar(path: Path, node: yaml.Node, where: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise CatalogueError(path, _line(node), where, "must be text")
    return str(node.value)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1
