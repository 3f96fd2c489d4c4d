"""Load ``grammars/troubleshooting.yaml`` into a validated ScriptBook (at start-up)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from ivr.domain.troubleshoot import EMPTY_BOOK, ScriptBook, ScriptError, parse_scripts

FILE_NAME = "troubleshooting.yaml"


def load_scripts(directory: Path, *, is_intent: Callable[[str], bool] | None = None
                 ) -> ScriptBook:
    """The troubleshooting scripts of ``directory``; none if the file is absent.

    ``is_intent`` says whether the catalogue has an intent (a script for an unknown
    one is an error). Raises :class:`ScriptError` naming the file, script and step.
    """
    path = Path(directory) / FILE_NAME
    if not path.exists():
        return EMPTY_BOOK
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScriptError(f"{path}: not valid YAML: {exc}") from exc
    try:
        book = parse_scripts(raw)
    except ScriptError as exc:
        raise ScriptError(f"{path}: {exc}") from exc
    for script in book.scripts.values():
        unknown = [i for i in script.intents if is_intent is not None and not is_intent(i)]
        if unknown:
            raise ScriptError(f"{path}: script {script.name}: unknown intent {unknown[0]!r}")
    return book
