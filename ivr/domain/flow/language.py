"""The caller's language before identification: the offer after the open question, the
choice by key or voice, language detection on the first question, and the keypad for a
language no recogniser hears.

Ask first: nothing is played between the greeting and the open question. A customer the
CRM knows keeps their CRM language and hears no offer. An unknown caller hears the other
language offered right *after* the question, in the same playback, while the question
already listens ("... how can I help you? Voor Nederlands, druk 2"): an English caller
just answers (over the offer, or after it); a Dutch caller presses 2, says "Nederlands",
or simply asks in Dutch (a multilingual recogniser detects it). An offer played before
the question cost every unknown caller ~2.3 s before they could ask (the reverted first
version). The offer is left out where it cannot help: by default (``auto``) when no
recogniser on this node hears the offered language (saying its name still chooses it,
and the keypad-only path follows), and for numbers from a country where it is not
spoken. After the first question the language is settled and later turns never switch.
"""

from __future__ import annotations

import re

from ivr.domain.flow.context import Call
from ivr.domain.model import LANGUAGES, Language, Step, Utterance
from ivr.domain.ports import Prompt
from ivr.domain.prompts import render, words

# The key that chooses each language in the offer (the prompt says it).
OFFER_KEYS: dict[Language, str] = {"en": "1", "nl": "2"}
_MAX_NAME_WORDS = 4
_NOT_WORD = re.compile(r"[^\w ]+")  # "in het Nederlands graag": a choice, not a question
# Country calling codes where a language is spoken: a caller from +44 is not offered
# Dutch (they can still name it). No entry: offered to every number.
_SPOKEN_IN: dict[Language, tuple[str, ...]] = {
    "nl": ("+31", "+32", "+297", "+597", "+599"),  # NL, BE, Aruba, Suriname, Curaçao/BES
}


def unknown_caller(call: Call) -> bool:
    """Nobody in the CRM: the language is the node's default until the caller picks."""
    return call.journal.customer is None


def offer(call: Call) -> tuple[Prompt, ...]:
    """The offer of the other language, in that language, to play after the unknown
    caller's open question (empty: no offer on this turn)."""
    d = call.dialogue
    mode = call.cfg.language_offer
    if mode == "off" or not unknown_caller(call) or d.language_settled:
        return ()
    other = next((lang for lang in LANGUAGES if lang != call.language), None)
    if other is None or (mode == "auto" and other not in call.cfg.speech_languages):
        return ()
    number = call.channel.caller.number
    spoken_in = _SPOKEN_IN.get(other)
    if number is not None and spoken_in is not None and not number.startswith(spoken_in):
        return ()
    d.language_offered = other
    return (render("language_offer", other),)


def detecting(call: Call) -> bool:
    """Whether this turn may hear another language: an unknown caller's first question."""
    return unknown_caller(call) and not call.dialogue.language_settled


def named_language(text: str) -> Language | None:
    """The language a short answer names ("Nederlands", "Dutch please"), else None."""
    said = " " + _NOT_WORD.sub(" ", text.lower()).strip() + " "
    if not said.strip() or len(said.split()) > _MAX_NAME_WORDS:
        return None
    for lang in LANGUAGES:
        if any(f" {w} " in said for w in words("language_words", lang)):
            return lang
    return None


async def choose(call: Call, u: Utterance) -> bool:
    """Settle the language on the first question. True: the caller only chose a language
    (by key or by naming it), so the question must be asked again in it; False: ``u`` is
    the question (in the language now set, detected or not)."""
    d = call.dialogue
    if d.language_settled:
        return False
    d.language_settled = True
    if not unknown_caller(call):
        return False
    offered = d.language_offered
    if u.dtmf and offered is not None and u.dtmf[0] == OFFER_KEYS[offered]:
        await _switch(call, offered, "key")
        return True
    named = named_language(u.text) if u.text else None
    if named is not None:
        await _switch(call, named, "voice")
        return True
    if u.language is not None and u.language != call.language:
        await _switch(call, u.language, "detected")
    return False


async def _switch(call: Call, language: Language, method: str) -> None:
    if language != call.language:
        call.journal.set_language(language)
    await call.step(Step.GREETING, language=language, chosen_by=method)


def speech_heard(call: Call) -> bool:
    """Whether a recogniser on this node hears the caller's language."""
    return call.language in call.cfg.speech_languages


async def keypad_only(call: Call) -> None:
    """Tell the caller, once, that their language is keys only here."""
    if not call.dialogue.keypad_only_told:
        call.dialogue.keypad_only_told = True
        await call.say("keypad_only")
        await call.step(Step.QUESTION, result="keypad_only", language=call.language)
