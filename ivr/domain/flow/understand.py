"""Phase 2, what does the caller want: the open question, the intent match,
confirmation of an unsure match, and the keypad menu when speech fails."""

from __future__ import annotations

from typing import Literal

from ivr.domain.flow import language
from ivr.domain.flow.config import FlowConfig
from ivr.domain.flow.context import Call
from ivr.domain.flow.events import Matched, QuestionHeard, Understood
from ivr.domain.flow.online import CODE_KEY
from ivr.domain.flow.states import State
from ivr.domain.model import IntentMatch, IntentSpec, Step
from ivr.domain.prompts import keypad_options

AGENT_INTENT = "speak_to_agent"


async def ask(call: Call) -> State:
    d = call.dialogue
    if not language.speech_heard(call):
        # No recogniser for this caller's language on this node: say so, then keys.
        await language.keypad_only(call)
        return State.KEYPAD
    first = d.no_input == 0 and d.misunderstood == 0
    # Ask first: the language offer (unknown callers) follows the question in the same
    # playback, so the question is not delayed by it and the caller may answer over it.
    u = await call.listen("ask_question" if first else "ask_question_again",
                          detect_language=language.detecting(call),
                          then=language.offer(call))
    if u is not None and await language.choose(call, u):
        return State.ASK  # a language chosen by key or name: ask again, in it
    if u is None:
        d.no_input += 1
        await call.step(Step.QUESTION, result="no_input", count=d.no_input)
        return State.ASK if call.reprompts_left() else State.KEYPAD
    if u.dtmf == CODE_KEY and call.ports.online is not None:
        # "*": the caller has a code from the website or chat (online, then by phone).
        await call.step(Step.QUESTION, result="dtmf", digit=u.dtmf)
        return State.ONLINE
    if u.dtmf and not u.text:
        # Caller went for the keypad straight away: honour it.
        d.keypad_digit = u.dtmf[0]
        await call.step(Step.QUESTION, result="dtmf", digit=u.dtmf[0])
        return State.KEYPAD
    d.utterance = u
    await call.emit(QuestionHeard(u.text))
    await call.step(Step.QUESTION, text=u.text, asr_confidence=round(u.confidence, 3))
    return State.UNDERSTAND


async def understand(call: Call) -> State:
    d = call.dialogue
    u = d.utterance
    assert u is not None, "UNDERSTAND follows a heard utterance"
    match = await call.ports.matcher.match(u.text, call.language)
    d.match = match
    await call.emit(Matched(match))
    if match.unavailable:
        # The matcher is overloaded: asking again would only queue more work
        # and make the caller wait; the keypad menu needs no matcher.
        await call.step(Step.INTENT, result="matcher_busy")
        return State.KEYPAD
    best = match.best
    if call.classify_reply(u) == "agent" and (
            best is None or best.confidence < call.cfg.agent_words_unless_above):
        agent = call.ports.catalogue.spec(AGENT_INTENT)
        if agent is not None:
            return await accept(call, agent, 1.0, via="agent_words")
    spec = call.ports.catalogue.spec(best.intent) if best is not None else None
    verdict = decide(match, call.cfg, sensitive=spec is not None and spec.sensitive,
                     asr_confidence=u.confidence)
    if verdict == "reject" or best is None:
        d.misunderstood += 1
        await call.step(Step.INTENT, result="not_understood",
                        best=best.intent if best else None,
                        confidence=round(best.confidence, 3) if best else None,
                        count=d.misunderstood)
        return State.ASK if call.reprompts_left() else State.KEYPAD
    if spec is None:
        # Checked after rejection: a rejected guess is re-asked whatever it named; one
        # the flow would act on must be in the catalogue (the fail-safe: a human).
        raise LookupError(f"matcher returned unknown intent {best.intent!r}")
    if verdict == "confirm":
        d.spec = spec
        return State.CONFIRM
    return await accept(call, spec, best.confidence, via="speech")


Verdict = Literal["route", "confirm", "reject"]


def joint_confidence(match_confidence: float, asr_confidence: float,
                     trust_asr_from: float) -> float:
    """The matcher's confidence, scaled down when the recogniser doubts its own words.

    A matcher sure of words the caller never said is the dangerous case ("I want a
    refund" heard as "i want to read" matched a new contract at 0.9): Whisper's
    confidence at or above ``trust_asr_from`` leaves the match as it is, below it the
    match counts for ``asr / trust_asr_from`` of itself. 0 turns the scaling off."""
    if trust_asr_from <= 0 or asr_confidence >= trust_asr_from:
        return match_confidence
    return match_confidence * max(0.0, asr_confidence) / trust_asr_from


def decide(match: IntentMatch, cfg: FlowConfig, *, sensitive: bool,
           asr_confidence: float = 1.0) -> Verdict:
    """What the flow does with a match: route it, confirm it first, or re-ask.

    Rejection looks at the matcher alone (the words may be right even when Whisper
    hesitated); routing without asking needs the joint confidence. A sensitive topic
    is never asked back (a bereaved caller is not quizzed; a wrong guess still reaches
    a person). Shared with bench/spoken.py, which measures this decision."""
    best = match.best
    if best is None or match.out_of_scope or best.confidence < cfg.reject_below:
        return "reject"
    joint = joint_confidence(best.confidence, asr_confidence, cfg.confirm_asr_below)
    if joint < cfg.confirm_below and not sensitive:
        return "confirm"
    return "route"


async def accept(call: Call, spec: IntentSpec, confidence: float, *, via: str) -> State:
    """The intent is settled: record it and decide what to do."""
    call.dialogue.spec = spec
    await call.emit(Understood(spec.name, confidence, via))
    await call.step(Step.INTENT, intent=spec.name, confidence=round(confidence, 3), via=via)
    return State.DECIDE


async def confirm(call: Call) -> State:
    d = call.dialogue
    spec = d.spec
    assert spec is not None and d.match is not None, "CONFIRM follows an unsure match"
    u = await call.listen("confirm_intent", label=spec.label_for(call.language))
    reply = call.classify_reply(u)
    await call.step(Step.CONFIRM, intent=spec.name, reply=reply)
    best = d.match.best
    if reply == "yes":
        return await accept(call, spec, best.confidence if best else 0.0, via="confirmed")
    if reply == "agent":
        agent = call.ports.catalogue.spec(AGENT_INTENT)
        if agent is not None:
            return await accept(call, agent, 1.0, via="agent_words")
    d.spec = None
    if u is not None and reply == "other" and u.text:
        # The caller rephrased instead of answering yes/no: understand that.
        d.utterance = u
        return State.UNDERSTAND
    d.misunderstood += 1
    return State.ASK if call.reprompts_left() else State.KEYPAD


async def keypad(call: Call) -> State:
    d = call.dialogue
    lang = call.language
    menu = [s for s in call.ports.catalogue.keypad_menu() if s.keypad]
    by_digit = {s.keypad: s for s in menu}
    digit, d.keypad_digit = d.keypad_digit, None
    while (digit is None or digit not in by_digit) and d.keypad_tries < call.cfg.keypad_tries:
        d.keypad_tries += 1
        got = await call.collect("keypad_menu", max_digits=1,
                                 options=keypad_options(menu, lang))
        digit = (got or "")[:1] or None
        await call.step(Step.KEYPAD, digit=digit, attempt=d.keypad_tries)
    if digit is not None and digit in by_digit:
        return await accept(call, by_digit[digit], 1.0, via=f"keypad:{digit}")
    # Not understood by voice nor keypad: a person will sort it out.
    d.escalate_reason = "not understood"
    agent = call.ports.catalogue.spec(AGENT_INTENT)
    if agent is not None:
        return await accept(call, agent, 0.0, via="fallback")
    return State.HANDOFF
