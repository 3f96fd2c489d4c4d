"""After the agent call: the voice CSAT survey (the SURVEY entry).

Only callers of a surveyed skill (``csat_voice_skills``) come back here, and only
if they stayed on the line when the agent hung up (app_queue's ``c`` option, the
``[ivr-csat]`` context): staying is the opt-in, hanging up is the opt-out. They
were told so before the queue (``csat_notice``). One score 1-5 by key or voice,
one follow-up question whose answer is recorded (and transcribed where the channel
can only transcribe). The contact keeps its outcome (an agent served it); a caller
who hangs up during the survey is not a drop-off.
"""

from __future__ import annotations

import logging
import re

from ivr.domain.flow.context import Call
from ivr.domain.flow.events import Concluded, Heard, Said
from ivr.domain.flow.states import State
from ivr.domain.model import Outcome, Step, Utterance
from ivr.domain.ports import CallerHungUp, MessageRecorder
from ivr.domain.prompts import words

log = logging.getLogger(__name__)

_DIGIT = re.compile(r"\b([1-5])\b")


def read_score(u: Utterance | None, score_words: tuple[str, ...]) -> int | None:
    """1-5 from a key ("4"), a digit in the words ("4", "a 4") or a number word
    ("four", "vier"); None for anything else."""
    if u is None:
        return None
    if u.dtmf:
        return int(u.dtmf[0]) if u.dtmf[0] in "12345" else None
    text = u.text.lower()
    found = _DIGIT.search(text)
    if found:
        return int(found.group(1))
    tokens = re.findall(r"\w+", text)
    for i, word in enumerate(score_words, start=1):
        if word in tokens:
            return i
    return None


async def survey(call: Call) -> State:
    """Ask the score (once more if not understood), then the follow-up; never a drop."""
    # The agent served this contact; the survey does not change that.
    await call.emit(Concluded(Outcome.AGENT))
    try:
        await _ask(call)
    except CallerHungUp:
        # Hanging up is how a caller ends the survey: not a drop-off.
        await call.step(Step.FEEDBACK, survey="csat", result="hung_up")
    return State.DONE


async def _ask(call: Call) -> None:
    contact_id = call.journal.contact.id
    score_words = words("csat_score_words", call.language)
    score = None
    for key in ("csat_question", "csat_retry"):
        u = await _listen(call, key, call.cfg.no_input_timeout_s, score_words)
        score = read_score(u, score_words)
        if score is not None:
            break
    if score is None:
        await call.step(Step.FEEDBACK, survey="csat", result="no_score")
        await call.say("csat_thanks")
        return
    await call.step(Step.FEEDBACK, survey="csat", score=score)
    if call.ports.surveys is not None:
        await call.ports.surveys.score(contact_id, score, "voice")
    text, recording = await _follow_up(call)
    await _comment(call, text, recording)
    await call.say("csat_thanks")


async def _comment(call: Call, text: str, recording: str | None) -> None:
    if (text or recording) and call.ports.surveys is not None:
        await call.ports.surveys.comment(call.journal.contact.id, text=text,
                                         recording=recording, channel="voice")
    await call.step(Step.FEEDBACK, survey="csat_comment", recording=recording,
                    words=len(text.split()))


async def _follow_up(call: Call) -> tuple[str, str | None]:
    """The follow-up answer: a recording where the channel records, else its words."""
    if isinstance(call.channel, MessageRecorder):
        await call.say("csat_follow_up")
        name = f"csat-{call.journal.contact.id}"
        try:
            stored = await call.channel.record_message(
                name, max_s=call.cfg.csat_comment_max_s, silence_s=3.0)
        except CallerHungUp:
            # Hanging up ends the message; what was said is kept (and noted).
            await _comment(call, "", name)
            raise
        return "", stored
    u = await _listen(call, "csat_follow_up", call.cfg.csat_comment_max_s, ())
    return ((u.text if u is not None else "") or "").strip(), None


async def _listen(call: Call, key: str, timeout_s: float, phrases: tuple[str, ...]
                  ) -> Utterance | None:
    """Like ``Call.listen`` but biased to the survey's words, not the intent catalogue."""
    prompt = call.prompt(key)
    await call.emit(Said(prompt.text, prompt.key))
    u = await call.channel.listen(prompt, timeout_s=timeout_s, phrases=phrases)
    if u is not None:
        await call.emit(Heard(u.text or f"[keypad {u.dtmf}]"))
    return u
