"""CSAT by SMS/WhatsApp after an agent call: the two texts and how a reply reads.

After AgentComplete, a caller of a surveyed skill gets "how satisfied were you, 1 to
5?"; a reply that is one digit 1-5 is the score, and it is answered with one
follow-up question ("what could we do better?"), whose free-text reply is kept as
the comment. Anything else before a score is ignored (it stays on the timeline).
"""

from __future__ import annotations

import re

from ivr.domain.model import Language

QUESTION = {
    "en": "Thank you for calling Kanaal. How satisfied are you with the help you got, from "
          "1 (not at all) to 5 (very)? Reply with one digit.",
    "nl": "Bedankt voor uw gesprek met Kanaal. Hoe tevreden bent u over de hulp, van "
          "1 (helemaal niet) tot 5 (heel tevreden)? Antwoord met één cijfer.",
}
FOLLOW_UP = {
    "en": "Thank you! What is the one thing we could do better? Reply in a few words "
          "(optional).",
    "nl": "Dank u! Wat kunnen we het best verbeteren? Antwoord in een paar woorden "
          "(mag ook niet).",
}
_SCORE = re.compile(r"^\s*([1-5])\s*[.!]?\s*$")


def parse_score(body: str) -> int | None:
    """The score of a reply that is just one digit 1-5 ("4", " 5!"), else None."""
    found = _SCORE.match(body or "")
    return int(found.group(1)) if found else None


def question(language: Language) -> str:
    return QUESTION.get(language, QUESTION["en"])


def follow_up(language: Language) -> str:
    return FOLLOW_UP.get(language, FOLLOW_UP["en"])


def surveyed(skill: str | None, skills: frozenset[str]) -> bool:
    """Whether a call of ``skill`` gets the survey (``*`` in the setting = every skill)."""
    return bool(skills) and ("*" in skills or (skill or "") in skills)
