"""SQL agent directory: agent profiles and skills, login/pause state, load splits,
and who answered which contact (repeat-caller routing).

Same pattern as :mod:`ivr.storage.repositories`: SQLAlchemy Core, sync
connections run in worker threads. Login and pause changes are conditional
``UPDATE``s, so two nodes (or the CLI and a node) logging the same agent in at
once cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ivr.domain.centre import Agent, CentreKind
from ivr.domain.centre_errors import (
    AgentAlreadyLoggedIn,
    AgentInactive,
    AgentNotLoggedIn,
    BadAgentProfile,
    DuplicateAgent,
    UnknownAgent,
    UnknownSkill,
)
from ivr.domain.smart_routing import LoadSplit
from ivr.domain.staffing import (
    AgentRecord,
    PreviousAgentContact,
    SplitSetting,
    make_split,
    queue_name,
)
from ivr.storage.reports import reopen_contact
from ivr.storage.repositories import _SqlAdapter
from ivr.storage.tables import agent_skills, agents, contacts, load_splits, skills

Clock = Callable[[], datetime]

# Column widths of the agents tables (PostgreSQL refuses longer values).
_LIMITS = {"code": 16, "name": 200, "interface": 64, "site": 64, "region": 64, "centre": 64,
           "languages": 64}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _utc(dt: datetime) -> datetime:
    # Stored in UTC: SQLite keeps no offset, so local times would shift on read.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _profile_values(agent: Agent) -> dict[str, Any]:
    """Row values for a profile; raises BadAgentProfile on what the schema would refuse."""
    values: dict[str, Any] = {
        "code": agent.id.strip(), "name": agent.name.strip(),
        "interface": agent.interface.strip(), "site": agent.site, "region": agent.region,
        "centre": agent.centre, "centre_kind": CentreKind(agent.kind).value,
        "languages": ",".join(sorted(lang.strip() for lang in agent.languages if lang.strip())),
    }
    for key in ("code", "name", "interface"):
        if not values[key]:
            raise BadAgentProfile(f"agent {key} must not be empty")
    if "/" not in values["interface"]:
        raise BadAgentProfile(
            f"interface {values['interface']!r} must look like TECH/resource, e.g. PJSIP/agent1")
    for key, limit in _LIMITS.items():
        if len(values[key]) > limit:
            raise BadAgentProfile(f"agent {key} is longer than {limit} characters")
    for skill in agent.skills:
        if not skill or len(skill) > 32:
            raise BadAgentProfile(f"skill name {skill!r} must be 1..32 characters")
    return values


def _record(row: Any, skill_rows: Iterable[Any]) -> AgentRecord:
    profile = Agent(
        id=row.code, name=row.name, interface=row.interface, site=row.site, region=row.region,
        centre=row.centre, kind=CentreKind(row.centre_kind),
        languages=frozenset(x for x in row.languages.split(",") if x),
        skills={s.skill: s.proficiency for s in skill_rows},
    )
    return AgentRecord(
        db_id=row.id, profile=profile, logged_in=bool(row.logged_in), paused=bool(row.paused),
        pause_reason=row.pause_reason, active=bool(row.active),
        updated_at=_utc(row.updated_at) if row.updated_at is not None else None,
    )


def _split(row: Any) -> SplitSetting:
    return SplitSetting(skill=row.skill, own_pct=row.own_pct, partner_pct=row.partner_pct,
                        updated_at=_utc(row.updated_at))


class SqlAgentDirectory(_SqlAdapter):
    """Agent directory over the agents/agent_skills/load_splits tables (and contacts)."""

    def __init__(self, engine: Engine, *, clock: Clock = _utc_now) -> None:
        super().__init__(engine)
        self._now = clock

    # ------------------------------------------------------------ reading
    def _load(self, conn: Connection, where: Any) -> list[AgentRecord]:
        rows = conn.execute(select(agents).where(where).order_by(agents.c.code)).all()
        if not rows:
            return []
        by_agent: dict[int, list[Any]] = {r.id: [] for r in rows}
        for s in conn.execute(select(agent_skills).where(
                agent_skills.c.agent_id.in_(list(by_agent))).order_by(agent_skills.c.skill)):
            by_agent[s.agent_id].append(s)
        return [_record(r, by_agent[r.id]) for r in rows]

    def _one(self, conn: Connection, where: Any) -> AgentRecord | None:
        found = self._load(conn, where)
        return found[0] if found else None

    async def _find(self, where: Any) -> AgentRecord | None:
        def q() -> AgentRecord | None:
            with self._engine.connect() as conn:
                return self._one(conn, where)
        return await self._run(q)

    async def get(self, code: str) -> AgentRecord | None:
        """The agent with this code ("1001"), or None."""
        return await self._find(agents.c.code == code)

    async def get_by_id(self, db_id: int) -> AgentRecord | None:
        return await self._find(agents.c.id == db_id)

    async def get_by_interface(self, interface: str) -> AgentRecord | None:
        return await self._find(agents.c.interface == interface)

    async def require(self, code: str) -> AgentRecord:
        """Like :meth:`get`, but raises :class:`UnknownAgent`."""
        found = await self.get(code)
        if found is None:
            raise UnknownAgent(code)
        return found

    async def list_agents(self, *, logged_in: bool | None = None) -> Sequence[AgentRecord]:
        """Every agent by code, or only those (not) logged in."""
        where: Any = true() if logged_in is None else agents.c.logged_in.is_(logged_in)

        def q() -> list[AgentRecord]:
            with self._engine.connect() as conn:
                return self._load(conn, where)
        return await self._run(q)

    async def agent_profiles(self) -> list[Agent]:
        """Every active agent's routing profile: ``CentreFeed(profiles=...)`` takes this."""
        return [a.profile for a in await self.list_agents() if a.active]

    async def queues_for_skills(self) -> dict[str, str]:
        """skill -> app_queue queue (``ivr-<queue>``) for every skill that has a queue."""
        def q() -> dict[str, str]:
            with self._engine.connect() as conn:
                rows = conn.execute(select(skills.c.name, skills.c.queue)).all()
            return {r.name: queue_name(r.queue) for r in rows if r.queue}
        return await self._run(q)

    # ------------------------------------------------------------ profiles
    async def add_agent(self, agent: Agent, *, active: bool = True) -> AgentRecord:
        """Create an agent with its skills; :class:`DuplicateAgent` if code/interface is taken."""
        values = _profile_values(agent)

        def q() -> AgentRecord:
            try:
                with self._engine.begin() as conn:
                    new_id = conn.execute(insert(agents).values(
                        **values, active=active, logged_in=False, paused=False,
                        updated_at=self._now()).returning(agents.c.id)).scalar_one()
                    self._write_skills(conn, new_id, agent)
                    found = self._one(conn, agents.c.id == new_id)
            except IntegrityError as exc:
                raise DuplicateAgent(
                    f"an agent with code {values['code']!r} or interface "
                    f"{values['interface']!r} exists already") from exc
            assert found is not None
            return found
        return await self._run(q)

    async def update_agent(self, agent: Agent, *, active: bool | None = None) -> AgentRecord:
        """Replace the profile and skills of the agent with code ``agent.id``.

        Login state is kept; a logged-in agent's queue memberships follow the new
        skills only after a logout/login (or ``Membership.reapply``).
        """
        values = _profile_values(agent)
        if active is not None:
            values["active"] = active

        def q() -> AgentRecord:
            try:
                with self._engine.begin() as conn:
                    db_id = conn.execute(select(agents.c.id).where(
                        agents.c.code == values["code"])).scalar()
                    if db_id is None:
                        raise UnknownAgent(values["code"])
                    conn.execute(update(agents).where(agents.c.id == db_id).values(
                        **values, updated_at=self._now()))
                    conn.execute(delete(agent_skills).where(agent_skills.c.agent_id == db_id))
                    self._write_skills(conn, db_id, agent)
                    found = self._one(conn, agents.c.id == db_id)
            except IntegrityError as exc:
                raise DuplicateAgent(
                    f"interface {values['interface']!r} belongs to another agent") from exc
            assert found is not None
            return found
        return await self._run(q)

    @staticmethod
    def _write_skills(conn: Connection, agent_id: int, agent: Agent) -> None:
        if agent.skills:
            conn.execute(insert(agent_skills), [
                {"agent_id": agent_id, "skill": s, "proficiency": p}
                for s, p in agent.skills.items()])

    # ------------------------------------------------------------ login state
    async def set_logged_in(self, code: str, logged_in: bool) -> AgentRecord:
        """Flip the login flag (and clear any pause).

        Conditional on the current value, so it is atomic across nodes: logging in
        twice raises :class:`AgentAlreadyLoggedIn`, logging out twice
        :class:`AgentNotLoggedIn`; an inactive agent cannot log in.
        """
        cond = [agents.c.code == code, agents.c.logged_in.is_(not logged_in)]
        if logged_in:
            cond.append(agents.c.active.is_(True))

        def q() -> AgentRecord:
            with self._engine.begin() as conn:
                done = conn.execute(update(agents).where(*cond).values(
                    logged_in=logged_in, paused=False, pause_reason=None,
                    updated_at=self._now())).rowcount
                if not done:
                    raise self._why_not(conn, code, logged_in)
                found = self._one(conn, agents.c.code == code)
            assert found is not None
            return found
        return await self._run(q)

    @staticmethod
    def _why_not(conn: Connection, code: str, logging_in: bool) -> Exception:
        row = conn.execute(select(agents.c.active).where(agents.c.code == code)).first()
        if row is None:
            return UnknownAgent(code)
        if logging_in and not row.active:
            return AgentInactive(code)
        return AgentAlreadyLoggedIn(code) if logging_in else AgentNotLoggedIn(code)

    async def set_paused(self, code: str, paused: bool, reason: str | None = None) -> AgentRecord:
        """Pause (with an optional reason) or resume; the agent must be logged in."""
        reason = ((reason or "").strip()[:64] or None) if paused else None

        def q() -> AgentRecord:
            with self._engine.begin() as conn:
                done = conn.execute(update(agents).where(
                    agents.c.code == code, agents.c.logged_in.is_(True)).values(
                    paused=paused, pause_reason=reason, updated_at=self._now())).rowcount
                if not done:
                    exists = conn.execute(select(agents.c.id).where(
                        agents.c.code == code)).first()
                    raise AgentNotLoggedIn(code) if exists else UnknownAgent(code)
                found = self._one(conn, agents.c.code == code)
            assert found is not None
            return found
        return await self._run(q)

    # ------------------------------------------------------------ load splits
    async def get_split(self, skill: str) -> SplitSetting | None:
        def q() -> SplitSetting | None:
            with self._engine.connect() as conn:
                row = conn.execute(select(load_splits).where(
                    load_splits.c.skill == skill)).first()
            return _split(row) if row is not None else None
        return await self._run(q)

    async def list_splits(self) -> Sequence[SplitSetting]:
        def q() -> list[SplitSetting]:
            with self._engine.connect() as conn:
                rows = conn.execute(select(load_splits).order_by(load_splits.c.skill)).all()
            return [_split(r) for r in rows]
        return await self._run(q)

    async def load_splits(self) -> dict[str, LoadSplit]:
        """skill -> LoadSplit, as ``RoutingPolicy(load_split=...)`` takes it."""
        return {s.skill: s.as_load_split() for s in await self.list_splits()}

    async def set_split(self, skill: str, own: int, partner: int) -> SplitSetting:
        """Store a split; :class:`BadSplit` unless 0..100 each and 100 together,
        :class:`UnknownSkill` for a skill not in the skills table."""
        split = make_split(skill, own, partner)

        def q() -> SplitSetting:
            with self._engine.begin() as conn:
                if conn.execute(select(skills.c.name).where(skills.c.name == skill)).first() \
                        is None:
                    raise UnknownSkill(skill)
                values = {"own_pct": split.own_pct, "partner_pct": split.partner_pct,
                          "updated_at": self._now()}
                # Update-then-insert instead of a dialect upsert; a racing insert of the
                # same skill fails on the primary key and the caller can retry.
                if not conn.execute(update(load_splits).where(
                        load_splits.c.skill == skill).values(**values)).rowcount:
                    conn.execute(insert(load_splits).values(skill=skill, **values))
                row = conn.execute(select(load_splits).where(
                    load_splits.c.skill == skill)).one()
            return _split(row)
        return await self._run(q)

    # ------------------------------------------------------------ contacts
    async def record_agent(self, contact_id: str, agent_interface: str,
                           agent_id: int | None = None, *, wait_s: int | None = None) -> bool:
        """Note who answered a contact (AgentConnect) and how long it queued (its
        HoldTime); False if the contact is not stored.

        Without ``agent_id`` the agent is looked up by interface (None if unknown).
        """
        def q() -> bool:
            with self._engine.begin() as conn:
                db_id = agent_id
                if db_id is None:
                    db_id = conn.execute(select(agents.c.id).where(
                        agents.c.interface == agent_interface)).scalar()
                values: dict[str, Any] = {"agent_interface": agent_interface, "agent_id": db_id}
                if wait_s is not None:
                    values["queue_wait_s"] = max(0, wait_s)
                found = bool(conn.execute(update(contacts).where(
                    contacts.c.id == contact_id).values(**values)).rowcount)
                if found:
                    reopen_contact(conn, contact_id)
                return found
        return await self._run(q)

    async def record_talk(self, contact_id: str, talk_s: int) -> bool:
        """Note the agent's talk time (AgentComplete); False if the contact is not stored."""
        def q() -> bool:
            with self._engine.begin() as conn:
                found = bool(conn.execute(update(contacts).where(
                    contacts.c.id == contact_id).values(talk_s=max(0, talk_s))).rowcount)
                if found:
                    reopen_contact(conn, contact_id)
                return found
        return await self._run(q)

    async def previous_agent(self, customer_id: int, intent: str | None,
                             since: datetime) -> PreviousAgentContact | None:
        """Who answered the customer's latest contact about ``intent`` since ``since``.

        ``intent`` None matches any intent. Only contacts an agent answered count.
        """
        cond = [contacts.c.customer_id == customer_id, contacts.c.agent_interface.is_not(None),
                contacts.c.started_at >= _utc(since)]
        if intent is not None:
            cond.append(contacts.c.intent == intent)
        # agent_id when recorded, else the interface (a static member answered).
        on = or_(agents.c.id == contacts.c.agent_id,
                 and_(contacts.c.agent_id.is_(None),
                      agents.c.interface == contacts.c.agent_interface))
        stmt = (select(contacts.c.id, contacts.c.agent_interface, contacts.c.started_at,
                       contacts.c.intent, agents.c.code)
                .select_from(contacts.outerjoin(agents, on)).where(*cond)
                .order_by(contacts.c.started_at.desc()).limit(1))

        def q() -> PreviousAgentContact | None:
            with self._engine.connect() as conn:
                row = conn.execute(stmt).first()
            if row is None:
                return None
            return PreviousAgentContact(
                contact_id=row.id, agent_interface=row.agent_interface, agent_code=row.code,
                started_at=_utc(row.started_at), intent=row.intent)
        return await self._run(q)

    async def last_agent_for(self, customer_id: int, intent: str | None, since: datetime,
                             ) -> tuple[str, datetime, str | None] | None:
        """(agent interface, when, intent) of :meth:`previous_agent`, the shape the
        SmartRouter's ``AgentHistory`` takes, so this directory can be passed as is."""
        found = await self.previous_agent(customer_id, intent, since)
        return found.as_history() if found is not None else None
