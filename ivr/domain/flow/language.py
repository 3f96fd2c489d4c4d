"""The caller's language before identification: the offer after the greeting, the
choice by key or voice, language detection on the first question, and the keypad for a
language no recogniser hears.

A customer the CRM knows keeps their CRM language and hears no offer (nothing slows
them down). An unknown caller hears the other language offered after the greeting
("Voor Nederlands, druk 2" / "For English, press 1"); the choice is taken on the first
question, where the caller may press that key, say the language's name, or simply ask
in it (a multilingual recogniser detects it). After the first question the language is
settled and later turns never switch it.
"""

from __future__ import annotations

import re

from ivr.domain.flow.context import Call
from ivr.domain.model import LANGUAGES, Language, Step, Utterance
from ivr.domain.prompts import words

# The key that chooses each language in the offer (the prompt says it).
OFFER_KEYS: dict[Language, str] = {"en": "1", "nl": "2"}
_MAX_NAME_WORDS = 4
_NOT_WORD = re.compile(r"[^\w ]+")  # "in het Nederlands graag": a choice, not a question


def unknown_caller(call: Call) -> bool:
    """Nobody in the CRM: the language is the node's default until the caller picks."""
    return call.journal.customer is None


async def offer(call: Call) -> None:
    """After the greeting of an unknown caller: offer the other language, in that language."""
    d = call.dialogue
    if not call.cfg.language_offer or not unknown_caller(call) or d.language_settled:
        return
    other = next((lang for lang in LANGUAGES if lang != call.language), None)
    if other is None:
        return
    d.language_offered = other
    await call.say_in(other, "language_offer")


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
