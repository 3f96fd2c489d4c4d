"""The CSAT survey by SMS/WhatsApp: asked after an agent call, replies recorded.

``after_agent_call`` runs when AgentComplete arrives for a contact (the live contact
centre calls it); ``on_reply`` when the signed Twilio inbound webhook stored a reply.
Failures are logged and never reach the caller or the webhook's answer.
"""

from __future__ import annotations

import logging

from ivr.domain.csat import follow_up, question, surveyed
from ivr.domain.ports import Messenger, PortError
from ivr.storage.csat import SqlSurveys

log = logging.getLogger(__name__)


class CsatSurvey:
    """Asks and records; ``skills`` are the surveyed skills (``*`` = all)."""

    def __init__(self, store: SqlSurveys, messenger: Messenger, skills: frozenset[str],
                 channel: str = "sms") -> None:
        self._store = store
        self._messenger = messenger
        self._skills = skills
        self._channel = channel
        self.asked = 0

    async def after_agent_call(self, contact_id: str) -> bool:
        """Send the question if the contact's skill is surveyed; True when sent."""
        try:
            target = await self._store.target(contact_id)
            if target is None or not surveyed(target.skill, self._skills):
                return False
            body = question(target.language)
            receipt = await self._messenger.send_link(
                to=target.number, channel=self._channel, body=body, contact_id=contact_id,
                language=target.language)
            if not receipt.ok:
                log.warning("CSAT survey for %s not sent: %s", contact_id, receipt.error_code)
                return False
            await self._store.mark_asked(target, receipt.channel, body)
        except PortError as exc:
            log.warning("CSAT survey for %s not sent: %s", contact_id, exc)
            return False
        self.asked += 1
        return True

    async def on_reply(self, contact_id: str, number: str, body: str) -> None:
        """A reply on ``contact_id``: a score gets the follow-up question."""
        try:
            result = await self._store.reply(contact_id, body)
            if result.score is None:
                return
            target_lang = (await self._store.target_language(contact_id)) or "en"
            await self._messenger.send_link(
                to=number, channel=self._channel, body=follow_up(target_lang),
                contact_id=contact_id, language=target_lang)
        except PortError as exc:
            log.warning("CSAT reply for %s not recorded: %s", contact_id, exc)
