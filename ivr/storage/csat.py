"""CSAT surveys on the contact: who to ask, that we asked, and the replies.

The survey's state lives in ``contact_events`` (kind ``csat_asked`` when the question
went out) and on the contact (``csat``, ``csat_comment``); a score changes the
contact's report tallies, so its day and hour are reopened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

from ivr.domain.csat import parse_score
from ivr.domain.model import Language, as_language
from ivr.domain.timeline import CSAT_COMMENT, CSAT_SCORE
from ivr.storage.outbox_tables import contact_events
from ivr.storage.reports import reopen_contact
from ivr.storage.repositories import _SqlAdapter
from ivr.storage.tables import contacts

ASKED = "csat_asked"


@dataclass(frozen=True, slots=True)
class SurveyTarget:
    contact_id: str
    number: str
    language: Language
    skill: str | None


@dataclass(frozen=True, slots=True)
class SurveyReply:
    """What a reply did: ``score`` recorded (ask the follow-up), or a ``comment``."""

    score: int | None = None
    comment: bool = False


class SqlSurveys(_SqlAdapter):
    """Survey state on contacts (see the module docstring)."""

    def target_sync(self, contact_id: str) -> SurveyTarget | None:
        """The caller to ask about ``contact_id``; None if unknown, not a phone number,
        or asked already."""
        c = contacts.c
        with self._engine.connect() as conn:
            row = conn.execute(select(c.caller, c.language, c.skill).where(
                c.id == contact_id)).first()
            asked = conn.execute(select(contact_events.c.id).where(and_(
                contact_events.c.contact_id == contact_id,
                contact_events.c.kind == ASKED))).first()
        if row is None or asked is not None or not row.caller.startswith("+"):
            return None
        return SurveyTarget(contact_id, row.caller, as_language(row.language), row.skill)

    async def target(self, contact_id: str) -> SurveyTarget | None:
        return await self._run(lambda: self.target_sync(contact_id))

    def mark_asked_sync(self, t: SurveyTarget, channel: str, body: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(contact_events).values(
                contact_id=t.contact_id, at=datetime.now(UTC), channel=channel,
                direction="out", address=t.number, body=body, kind=ASKED))

    async def mark_asked(self, t: SurveyTarget, channel: str, body: str) -> None:
        await self._run(lambda: self.mark_asked_sync(t, channel, body))

    def reply_sync(self, contact_id: str, body: str) -> SurveyReply:
        """Apply an inbound reply to the survey of ``contact_id`` (if one was asked)."""
        c = contacts.c
        with self._engine.begin() as conn:
            asked = conn.execute(select(contact_events.c.id).where(and_(
                contact_events.c.contact_id == contact_id,
                contact_events.c.kind == ASKED))).first()
            row = conn.execute(select(c.csat, c.csat_comment).where(
                c.id == contact_id)).first()
            if asked is None or row is None:
                return SurveyReply()
            score = parse_score(body)
            if row.csat is None and score is not None:
                conn.execute(update(contacts).where(c.id == contact_id).values(csat=score))
                reopen_contact(conn, contact_id)
                return SurveyReply(score=score)
            if row.csat is not None and row.csat_comment is None and body.strip():
                conn.execute(update(contacts).where(c.id == contact_id).values(
                    csat_comment=body.strip()[:1000]))
                return SurveyReply(comment=True)
        return SurveyReply()

    async def reply(self, contact_id: str, body: str) -> SurveyReply:
        return await self._run(lambda: self.reply_sync(contact_id, body))

    async def target_language(self, contact_id: str) -> Language | None:
        def q() -> Language | None:
            with self._engine.connect() as conn:
                lang = conn.execute(select(contacts.c.language).where(
                    contacts.c.id == contact_id)).scalar()
            return None if lang is None else as_language(lang)
        return await self._run(q)


class SqlSurveyLog(_SqlAdapter):
    """The voice survey's answers (the ``SurveyLog`` port): the score and comment on the
    contact (its report tallies reopened), and each answer as a contact event for the
    customer's timeline (the comment's event body names its recording)."""

    def _event(self, conn: Connection, contact_id: str, channel: str, kind: str,
               body: str) -> None:
        number = conn.execute(select(contacts.c.caller).where(
            contacts.c.id == contact_id)).scalar() or ""
        conn.execute(insert(contact_events).values(
            contact_id=contact_id, at=datetime.now(UTC), channel=channel, direction="in",
            address=number[:48], body=body, kind=kind))

    def score_sync(self, contact_id: str, score: int, channel: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(contacts).where(contacts.c.id == contact_id).values(
                csat=score))
            reopen_contact(conn, contact_id)
            self._event(conn, contact_id, channel, CSAT_SCORE, f"CSAT {score}/5")

    async def score(self, contact_id: str, score: int, channel: str) -> None:
        await self._run(lambda: self.score_sync(contact_id, score, channel))

    def comment_sync(self, contact_id: str, text: str, recording: str | None,
                     channel: str) -> None:
        shown = text.strip()[:1000] or (f"[recording {recording}]" if recording else "")
        with self._engine.begin() as conn:
            conn.execute(update(contacts).where(contacts.c.id == contact_id).values(
                csat_comment=shown))
            body = text.strip()[:900]
            if recording:
                body = f"{body} [recording {recording}]".strip()
            self._event(conn, contact_id, channel, CSAT_COMMENT, body)

    async def comment(self, contact_id: str, *, text: str, recording: str | None,
                      channel: str) -> None:
        await self._run(lambda: self.comment_sync(contact_id, text, recording, channel))
