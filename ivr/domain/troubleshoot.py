"""Guided troubleshooting scripts: a scripted diagnosis per technical intent.

A script is a small graph of steps. A *question* step is asked as yes/no (``yes``
and ``no`` name the next step) or by keypad (``keys`` maps digits to next steps); a
*solved* step ends the call as self-served; a *handoff* step puts the caller through
to an agent with every answer given; a *goto* step continues in another script (the
device script hands TV-decoder trouble to the decoder script). Every text exists in
every language. :func:`parse_scripts` checks all of it once, at start-up, so a
broken script never reaches a caller (``grammars/troubleshooting.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ivr.domain.model import LANGUAGES, Language

MAX_STEPS = 40  # a script walk longer than this is a loop the validation missed


class ScriptError(ValueError):
    """A troubleshooting script is malformed (named script and step in the message)."""


@dataclass(frozen=True, slots=True)
class ScriptStep:
    """One step: ``kind`` is yesno | keys | solved | handoff | goto."""

    id: str
    kind: str
    text: Mapping[str, str] = field(default_factory=dict)  # per language
    yes: str | None = None
    no: str | None = None
    keys: Mapping[str, str] = field(default_factory=dict)  # digit -> next step
    goto: str | None = None  # another script's name
    note: str = ""  # how the answer reads for the agent ("modem light red")

    def say(self, language: Language) -> str:
        return self.text.get(language) or self.text.get("en", "")


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    intents: tuple[str, ...]
    start: str
    steps: Mapping[str, ScriptStep]


@dataclass(frozen=True, slots=True)
class ScriptBook:
    """Every script, and which intent starts which."""

    scripts: Mapping[str, Script] = field(default_factory=dict)

    def for_intent(self, intent: str) -> Script | None:
        return next((s for s in self.scripts.values() if intent in s.intents), None)

    def script(self, name: str) -> Script:
        return self.scripts[name]


EMPTY_BOOK = ScriptBook()
_KINDS = ("yesno", "keys", "solved", "handoff", "goto")


def _texts(where: str, raw: Any, languages: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ScriptError(f"{where}: 'text' must map languages to sentences")
    missing = [lang for lang in languages if not str(raw.get(lang) or "").strip()]
    if missing:
        raise ScriptError(f"{where}: no text in {', '.join(missing)}")
    return {str(k): str(v).strip() for k, v in raw.items()}


def _step(where: str, sid: str, raw: Any, languages: tuple[str, ...]) -> ScriptStep:
    if not isinstance(raw, Mapping):
        raise ScriptError(f"{where}: a step is a mapping")
    kind = raw.get("kind")
    if kind not in _KINDS:
        raise ScriptError(f"{where}: kind must be one of {', '.join(_KINDS)}, not {kind!r}")
    text = {} if kind == "goto" else _texts(where, raw.get("text"), languages)
    keys = {str(k): str(v) for k, v in (raw.get("keys") or {}).items()}
    # YAML 1.1 reads a bare ``yes:``/``no:`` key as true/false: accept both spellings.
    yes, no = raw.get("yes", raw.get(True)), raw.get("no", raw.get(False))
    step = ScriptStep(id=sid, kind=kind, text=text, yes=yes, no=no,
                      keys=keys, goto=raw.get("goto"), note=str(raw.get("note") or sid))
    if kind == "yesno" and not (step.yes and step.no):
        raise ScriptError(f"{where}: a yes/no question needs both 'yes' and 'no'")
    if kind == "keys" and (not keys or not all(k.isdigit() and len(k) == 1 for k in keys)):
        raise ScriptError(f"{where}: 'keys' maps single digits 0-9 to steps")
    if kind == "goto" and not step.goto:
        raise ScriptError(f"{where}: 'goto' names another script")
    return step


def _parse_one(name: str, raw: Any, languages: tuple[str, ...]) -> Script:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("steps"), Mapping):
        raise ScriptError(f"script {name}: needs 'intents', 'start' and 'steps'")
    steps = {str(sid): _step(f"script {name}, step {sid}", str(sid), s, languages)
             for sid, s in raw["steps"].items()}
    start = str(raw.get("start") or "")
    if start not in steps:
        raise ScriptError(f"script {name}: start step {start!r} does not exist")
    for s in steps.values():
        for target in (s.yes, s.no, *s.keys.values()):
            if target is not None and target not in steps:
                raise ScriptError(f"script {name}, step {s.id}: no step {target!r}")
    return Script(name=name, intents=tuple(str(i) for i in raw.get("intents") or ()),
                  start=start, steps=steps)


def _check_ends(script: Script, book: Mapping[str, Script]) -> None:
    """Every step is reachable and every path ends (solved, hand-off or another script)."""
    seen: set[str] = set()
    todo = [script.start]
    while todo:
        sid = todo.pop()
        if sid in seen:
            continue
        seen.add(sid)
        s = script.steps[sid]
        if s.kind == "goto" and s.goto not in book:
            raise ScriptError(f"script {script.name}, step {sid}: no script {s.goto!r}")
        todo += [t for t in (s.yes, s.no, *s.keys.values()) if t]
    unreachable = sorted(set(script.steps) - seen)
    if unreachable:
        raise ScriptError(f"script {script.name}: unreachable steps {', '.join(unreachable)}")
    ends = {sid for sid, s in script.steps.items() if s.kind in ("solved", "handoff", "goto")}
    if not ends:
        raise ScriptError(f"script {script.name}: no step ends the script")


def parse_scripts(raw: Any, *, intents: frozenset[str] | None = None,
                  languages: tuple[str, ...] = LANGUAGES) -> ScriptBook:
    """Validate loaded YAML (``{"scripts": {name: {...}}}``) into a :class:`ScriptBook`.

    ``intents``: the catalogue's intent names; a script for an unknown intent fails.
    """
    if not isinstance(raw, Mapping) or not isinstance(raw.get("scripts"), Mapping):
        raise ScriptError("the file needs a top-level 'scripts' mapping")
    book = {str(n): _parse_one(str(n), s, languages) for n, s in raw["scripts"].items()}
    owner: dict[str, str] = {}
    for script in book.values():
        _check_ends(script, book)
        for intent in script.intents:
            if intents is not None and intent not in intents:
                raise ScriptError(f"script {script.name}: unknown intent {intent!r}")
            if intent in owner:
                raise ScriptError(f"intent {intent!r} has two scripts: {owner[intent]}, "
                                  f"{script.name}")
            owner[intent] = script.name
    return ScriptBook(book)
