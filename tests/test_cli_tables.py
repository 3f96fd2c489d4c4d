"""The CLI's tables print what callers said verbatim, brackets included."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ivr.cli.voice_call import voice_table


class _Report:
    def __init__(self, transcript: list[str]) -> None:
        self._d: dict[str, Any] = {
            "caller": "withheld", "transcript": transcript, "intent": "report_death",
            "scenario": "S4", "action": "handoff:bereavement", "outcome": "agent",
            "error": None, "response_ms": [16.0],
        }

    def as_dict(self) -> dict[str, Any]:
        return self._d


def test_voice_table_keeps_keypad_turns_and_bracketed_asr_text() -> None:
    """'[keys -]' and an ASR '[music]' are text, not rich markup to drop."""
    console = Console(record=True, width=200)
    console.print(voice_table([_Report(["caller: [keys -]", "caller: [music] hello"])],  # type: ignore[list-item]
                              "calls"))
    out = console.export_text()
    assert "[keys -]; [music] hello" in out
