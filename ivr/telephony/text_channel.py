"""A CallChannel over text: the real CallFlow without audio (`ivr call --text`).

Caller turns come from a script: plain text is speech, ``dtmf:123#`` is keypad
input, ``silence`` is no input and ``hangup`` ends the call at that turn.
``asr=0.3:words`` is speech the recogniser heard with that confidence (plain
text: 1.0), for a misheard turn. When the script runs out the caller stays silent.
``[nl] text`` is speech in that language (heard as such on a turn where the flow
asks to detect the language).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ivr.domain.model import Caller, RouteDecision, Utterance, known_language
from ivr.domain.ports import CallerHungUp, Prompt

# A scripted turn may name the language it is spoken in: "[nl] ik wil mijn adres wijzigen".
_LANG_TAG = re.compile(r"^\[(en|nl)\]\s*(.*)$", re.DOTALL)


@dataclass(slots=True)
class Turn:
    speaker: str  # "ivr" | "caller" | "system"
    text: str


@dataclass(slots=True)
class TextCallChannel:
    """Scripted caller; records the dialogue as turns."""

    caller_info: Caller
    script: list[str]
    session: str = field(default_factory=lambda: str(uuid.uuid4()))
    on_turn: Callable[[Turn], None] | None = None
    turns: list[Turn] = field(default_factory=list)
    handed_off: RouteDecision | None = None
    hung_up: bool = False
    said: list[Prompt] = field(default_factory=list)

    @property
    def caller(self) -> Caller:
        return self.caller_info

    @property
    def session_id(self) -> str:
        return self.session

    def _emit(self, speaker: str, text: str) -> None:
        turn = Turn(speaker, text)
        self.turns.append(turn)
        if self.on_turn is not None:
            self.on_turn(turn)

    def _next(self) -> str | None:
        if self.hung_up:
            raise CallerHungUp()
        if not self.script:
            return None
        item = self.script.pop(0)
        if item.strip().lower() == "hangup":
            self.hung_up = True
            self._emit("system", "caller hung up")
            raise CallerHungUp()
        return item

    async def say(self, prompt: Prompt) -> None:
        if self.hung_up:
            raise CallerHungUp()
        self.said.append(prompt)
        self._emit("ivr", prompt.text)
        if self.script and self.script[0].strip().lower() == "hangup-during-prompt":
            self.script.pop(0)
            self.hung_up = True
            self._emit("system", "caller hung up during the prompt")
            raise CallerHungUp()

    async def listen(
        self, prompt: Prompt | None, *, timeout_s: float, phrases: Sequence[str] = (),
        detect_language: bool = False,
    ) -> Utterance | None:
        for part in prompt.parts if prompt is not None else ():
            await self.say(part)
        item = self._next()
        if item is None or item.strip().lower() == "silence":
            self._emit("caller", "(silence)")
            return None
        if item.lower().startswith("dtmf:"):
            digits = item[5:].strip()
            self._emit("caller", f"[keys {digits}]")
            return Utterance(text="", dtmf=digits)
        confidence = 1.0
        if item.lower().startswith("asr="):
            level, _, item = item[4:].partition(":")
            confidence = float(level)
        self._emit("caller", item)
        heard = _LANG_TAG.match(item) if detect_language else None
        if heard is not None:
            # "[nl] ik wil ...": the caller speaks Dutch, as a language detector would hear.
            return Utterance(text=heard.group(2), confidence=confidence,
                             language=known_language(heard.group(1)))
        return Utterance(text=_LANG_TAG.sub(r"\2", item), confidence=confidence)

    async def collect_digits(
        self, prompt: Prompt, *, max_digits: int, timeout_s: float
    ) -> str | None:
        await self.say(prompt)
        upcoming = self.script[0].strip().lower() if self.script else ""
        if upcoming and not upcoming.startswith(("dtmf:", "silence", "hangup")):
            # The caller talks instead of keying: no digits, and the speech stays
            # queued for the next listen turn.
            self._emit("caller", "(no keys)")
            return None
        item = self._next()
        if item is None or item.strip().lower() == "silence":
            self._emit("caller", "(no keys)")
            return None
        digits = item[5:].strip()
        # Mirror a keypad: only 0-9*# count, and a flood is cut at max_digits.
        digits = "".join(ch for ch in digits if ch in "0123456789*#")
        if "#" in digits:
            digits = digits.split("#", 1)[0] + "#"
        digits = digits[: max_digits + 1] if digits.endswith("#") else digits[:max_digits]
        self._emit("caller", f"[keys {digits or '-'}]")
        return digits.rstrip("#")

    async def hand_off(self, decision: RouteDecision) -> None:
        if self.hung_up:
            raise CallerHungUp()
        self.handed_off = decision
        self._emit("system", f"transferred to queue {decision.queue} "
                             f"(priority {decision.priority})")

    async def hang_up(self) -> None:
        if not self.hung_up:
            self.hung_up = True
            self._emit("system", "IVR hung up")


def new_session_id() -> str:
    return str(uuid.uuid4())
