"""Contact reports as pure aggregation: facts in, one report out.

A contact becomes a :class:`ContactFact` (what the report needs of it) and then a
handful of ``(kind, key) -> (n, total)`` entries. A day's entries summed are a
:data:`Tally`; tallies add up, so a 30-day report is 30 stored daily tallies
(the rollups in ``ivr.storage.reports``) plus the still-open day read raw, and
the figures are the same either way (a test checks both paths agree).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ivr.domain.model import Step

# Outcomes (ivr.domain.model.Outcome values) by what they mean for a report.
CONTAINED = frozenset({"self_served", "link_sent", "chat"})  # solved without an agent
DEFLECTED = frozenset({"link_sent", "chat"})  # moved to a digital channel
TRANSFERRED = frozenset({"agent", "error_to_agent"})  # handed to an agent queue
SERVICE_LEVEL_S = 20  # answered within this many seconds of queueing counts as "in SL"
CSAT_SCORES = (1, 2, 3, 4, 5)
STEP_ORDER = tuple(s.value for s in Step)  # the funnel's order
MAX_WINDOW = timedelta(days=400)

Tally = dict[tuple[str, str], tuple[int, float]]


@dataclass(frozen=True, slots=True)
class ContactFact:
    """``n`` contacts of one UTC day alike in every dimension a report groups by.

    A single contact is ``n=1``; the SQL adapter hands over ``GROUP BY`` rows, so
    ``wait_s`` and ``talk_s`` are sums over the group (``talked`` of them have a
    talk time). Which steps the contacts reached comes separately (:class:`StepCount`):
    it lives in the step list, not in a column.
    """

    day: date
    channel: str
    intent: str | None = None
    scenario: str | None = None
    skill: str | None = None
    outcome: str | None = None
    dropped_at: str | None = None
    answered: bool = False  # an agent picked it up (AgentConnect)
    in_sl: bool = False  # answered within SERVICE_LEVEL_S
    csat: int | None = None
    repeat: bool = False  # the same number had a contact in the 7 days before
    n: int = 1
    wait_s: float = 0.0
    talk_s: float = 0.0
    talked: int = 0


@dataclass(frozen=True, slots=True)
class StepCount:
    """How many contacts of a day reached a step of the flow."""

    day: date
    step: str
    n: int


def fact_entries(f: ContactFact) -> Iterator[tuple[str, str, int, float]]:
    """The ``(kind, key, n, total)`` entries a fact adds to a tally."""
    intent, outcome, n = f.intent or "unknown", f.outcome or "open", f.n
    yield "contacts", "", n, 0.0
    yield "channel", f.channel, n, 0.0
    yield "intent", intent, n, 0.0
    yield "scenario", f.scenario or "none", n, 0.0
    yield "outcome", outcome, n, 0.0
    if f.dropped_at:
        yield "dropped", f.dropped_at, n, 0.0
    if outcome in CONTAINED:
        yield "contained", "", n, 0.0
    if outcome in DEFLECTED:
        yield "deflected", "", n, 0.0
    if f.repeat:
        yield "repeat", "", n, 0.0
    yield from _agent_entries(f, outcome)
    if f.csat is not None:
        yield "csat_skill", f.skill or "none", n, float(f.csat * n)
        yield "csat_intent", intent, n, float(f.csat * n)
        yield "csat_dist", f"{f.skill or 'none'}|{f.csat}", n, float(f.csat * n)


def _agent_entries(f: ContactFact, outcome: str) -> Iterator[tuple[str, str, int, float]]:
    if outcome not in TRANSFERRED and not f.answered:
        return
    skill, n = f.skill or "none", f.n
    yield "transferred", "", n, 0.0
    yield "offered", skill, n, 0.0
    if f.answered:
        yield "answered", skill, n, f.wait_s
        if f.in_sl:
            yield "in_sl", skill, n, 0.0
    if f.talked:
        yield "handled", skill, f.talked, f.talk_s


def add_entries(into: Tally, entries: Iterable[tuple[str, str, int, float]]) -> Tally:
    """Add entries (or another tally's items) to ``into`` in place; returns it."""
    for kind, key, n, total in entries:
        old_n, old_total = into.get((kind, key), (0, 0.0))
        into[(kind, key)] = (old_n + n, old_total + total)
    return into


def tally_by_day(facts: Iterable[ContactFact],
                 steps: Iterable[StepCount] = ()) -> dict[date, Tally]:
    """Tallies per UTC day."""
    out: dict[date, Tally] = {}
    for f in facts:
        add_entries(out.setdefault(f.day, {}), fact_entries(f))
    for sc in steps:
        add_entries(out.setdefault(sc.day, {}), [("reached", sc.step, sc.n, 0.0)])
    return out


@dataclass(frozen=True, slots=True)
class Bucket:
    """A UTC day (``hours=24``) or hour (``hours=1``) whose tally can be stored."""

    start: datetime
    hours: int

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return self.start, self.start + timedelta(hours=self.hours)


def _floor(at: datetime, hours: int) -> datetime:
    at = at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if hours == 24 else at


def _ceil(at: datetime, hours: int) -> datetime:
    down = _floor(at, hours)
    return down if down == at else down + timedelta(hours=hours)


def _whole(lo: datetime, hi: datetime, horizon: datetime, hours: int
           ) -> tuple[list[Bucket], list[tuple[datetime, datetime]]]:
    """Whole ``hours`` buckets inside ``[lo, min(hi, horizon))`` and what is left."""
    first, last = _ceil(lo, hours), _floor(min(hi, horizon), hours)
    if first >= last:
        return [], [(lo, hi)] if lo < hi else []
    n = (last - first) // timedelta(hours=hours)
    buckets = [Bucket(first + timedelta(hours=hours * i), hours) for i in range(n)]
    rest = [(a, b) for a, b in ((lo, first), (last, hi)) if a < b]
    return buckets, rest


def plan_buckets(since: datetime, until: datetime, horizon: datetime
                 ) -> tuple[list[Bucket], list[tuple[datetime, datetime]]]:
    """Cover ``[since, until)`` with stored days, then stored hours, then raw ranges.

    Only buckets that ended before ``horizon`` (now minus a settling time) are
    stored: later ones may still change. Returned in time order.
    """
    days, rest = _whole(since, until, horizon, 24)
    buckets, raw = list(days), []
    for lo, hi in rest:
        hours, left = _whole(lo, hi, horizon, 1)
        buckets += hours
        raw += left
    return sorted(buckets, key=lambda b: b.start), sorted(raw)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _mean(n: int, total: float) -> float | None:
    return None if n == 0 else round(total / n, 2)


@dataclass(frozen=True, slots=True)
class Report:
    """The figures supervisors read for one window (see :func:`build_report`)."""

    since: datetime
    until: datetime
    total: Tally
    intents_by_day: dict[str, dict[str, int]] = field(default_factory=dict)

    def _kind(self, kind: str) -> dict[str, tuple[int, float]]:
        return {k: v for (kd, k), v in self.total.items() if kd == kind}

    def _count(self, kind: str, key: str = "") -> int:
        return self.total.get((kind, key), (0, 0.0))[0]

    def _counts(self, kind: str) -> list[tuple[str, int]]:
        return sorted(((k, n) for k, (n, _) in self._kind(kind).items()),
                      key=lambda kv: (-kv[1], kv[0]))

    def funnel(self, order: Iterable[str]) -> list[dict[str, Any]]:
        """Per step (in flow order): contacts that reached it and that hung up there."""
        reached, dropped = self._kind("reached"), self._kind("dropped")
        steps = [s for s in order if s in reached or s in dropped]
        steps += sorted((set(reached) | set(dropped)) - set(steps))
        return [{"step": s, "reached": reached.get(s, (0, 0.0))[0],
                 "dropped": dropped.get(s, (0, 0.0))[0],
                 "drop_rate": _rate(dropped.get(s, (0, 0.0))[0], reached.get(s, (0, 0.0))[0])}
                for s in steps]

    def per_skill(self) -> list[dict[str, Any]]:
        """Offered, answered, service level, mean wait and handle time per skill."""
        offered, answered = self._kind("offered"), self._kind("answered")
        in_sl, handled = self._kind("in_sl"), self._kind("handled")
        out = []
        for skill in sorted(offered):
            n_ans, wait = answered.get(skill, (0, 0.0))
            n_h, talk = handled.get(skill, (0, 0.0))
            out.append({"skill": skill, "offered": offered[skill][0], "answered": n_ans,
                        "service_level": _rate(in_sl.get(skill, (0, 0.0))[0], offered[skill][0]),
                        "mean_wait_s": _mean(n_ans, wait), "mean_handle_s": _mean(n_h, talk)})
        return out

    def csat(self) -> dict[str, Any]:
        """Mean and distribution (1..5) per skill, mean per intent."""
        dist: dict[str, dict[str, int]] = {}
        for key, (n, _) in self._kind("csat_dist").items():
            skill, score = key.rsplit("|", 1)
            dist.setdefault(skill, {str(s): 0 for s in CSAT_SCORES})[score] = n
        skills = self._kind("csat_skill")
        return {
            "responses": sum(n for n, _ in skills.values()),
            "mean": _mean(sum(n for n, _ in skills.values()), sum(t for _, t in skills.values())),
            "by_skill": [{"skill": k, "responses": n, "mean": _mean(n, t),
                          "distribution": dist.get(k, {})} for k, (n, t) in sorted(skills.items())],
            "by_intent": [{"intent": k, "responses": n, "mean": _mean(n, t)}
                          for k, (n, t) in sorted(self._kind("csat_intent").items())],
        }

    def as_dict(self, step_order: Iterable[str] = STEP_ORDER) -> dict[str, Any]:
        """The JSON document of ``ivr report --json`` and ``GET /api/reports/summary``."""
        total = self._count("contacts")
        return {
            "since": self.since.isoformat(), "until": self.until.isoformat(),
            "contacts": total,
            "by_channel": self._counts("channel"),
            "by_scenario": self._counts("scenario"),
            "by_outcome": self._counts("outcome"),
            "containment_rate": _rate(self._count("contained"), total),
            "deflection_rate": _rate(self._count("deflected"), total),
            "transfer_rate": _rate(self._count("transferred"), total),
            "repeat_rate_7d": _rate(self._count("repeat"), total),
            "repeat_contacts_7d": self._count("repeat"),
            "funnel": self.funnel(step_order),
            "by_intent": self._counts("intent"),
            "intents_by_day": self.intents_by_day,
            "skills": self.per_skill(),
            "csat": self.csat(),
        }


def build_report(since: datetime, until: datetime, days: Mapping[date, Tally], *,
                 rolled: Tally | None = None,
                 rolled_intents: Mapping[date, Mapping[str, int]] | None = None) -> Report:
    """Add up daily tallies into one report (keeps the intent series per day).

    ``rolled``/``rolled_intents`` are stored rollups already summed (by SQL): the
    window's total and its intents per day.
    """
    total: Tally = dict(rolled or {})
    intents_by_day: dict[date, dict[str, int]] = {
        d: dict(v) for d, v in (rolled_intents or {}).items()}
    for day in sorted(days):
        add_entries(total, ((k, key, n, t) for (k, key), (n, t) in days[day].items()))
        for (kind, key), (n, _) in days[day].items():
            if kind == "intent":
                per_day = intents_by_day.setdefault(day, {})
                per_day[key] = per_day.get(key, 0) + n
    by_day = {d.isoformat(): dict(sorted(v.items())) for d, v in sorted(intents_by_day.items())}
    return Report(since, until, total, by_day)


class BadReportWindow(ValueError):
    """A report window that cannot be read (bad date, end before start, too long)."""


def _when(value: str, *, end: bool) -> datetime:
    try:
        if len(value) == 10:  # a UTC day; an end day counts whole
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1 if end else 0), datetime.min.time(),
                                    UTC)
        at = datetime.fromisoformat(value)
    except ValueError:
        raise BadReportWindow(
            f"{value!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM)") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def report_window(now: datetime, *, hours: float | None = None, since: str | None = None,
                  until: str | None = None) -> tuple[datetime, datetime]:
    """``[since, until)`` from ``--hours H`` or ``--since D [--until D]`` (default 24 h).

    Days are UTC; an ``until`` day is included whole. Raises :class:`BadReportWindow`.
    """
    if hours is not None and (since or until):
        raise BadReportWindow("give either hours or since/until, not both")
    end = _when(until, end=True) if until else now
    if since:
        start = _when(since, end=False)
    else:
        if hours is not None and not 0 < hours <= MAX_WINDOW.total_seconds() / 3600:
            raise BadReportWindow(f"hours must be between 0 and {MAX_WINDOW.days * 24}")
        start = end - timedelta(hours=24 if hours is None else hours)
    if start >= end:
        raise BadReportWindow("the window ends before it starts")
    if end - start > MAX_WINDOW:
        raise BadReportWindow(f"the window is longer than {MAX_WINDOW.days} days")
    return start, end


def _csv_rows(doc: Mapping[str, Any]) -> Iterator[list[Any]]:
    for name in ("contacts", "containment_rate", "deflection_rate", "transfer_rate",
                 "repeat_rate_7d", "repeat_contacts_7d"):
        yield ["summary", "", name, doc[name]]
    for section in ("by_channel", "by_scenario", "by_outcome", "by_intent"):
        yield from ([section, key, "contacts", n] for key, n in doc[section])
    for row in doc["funnel"]:
        yield from (["funnel", row["step"], m, row[m]] for m in ("reached", "dropped", "drop_rate"))
    for day, intents in doc["intents_by_day"].items():
        yield from (["intents_by_day", f"{day}|{i}", "contacts", n] for i, n in intents.items())
    for row in doc["skills"]:
        yield from (["skills", row["skill"], m, row[m]] for m in
                    ("offered", "answered", "service_level", "mean_wait_s", "mean_handle_s"))
    csat = doc["csat"]
    yield ["csat", "", "responses", csat["responses"]]
    yield ["csat", "", "mean", csat["mean"]]
    for row in csat["by_skill"]:
        yield ["csat_skill", row["skill"], "mean", row["mean"]]
        yield from (["csat_skill", row["skill"], f"score_{score}", n]
                    for score, n in row["distribution"].items())
    yield from (["csat_intent", row["intent"], "mean", row["mean"]] for row in csat["by_intent"])


def report_csv(doc: Mapping[str, Any]) -> str:
    """The report as CSV: one ``section,key,metric,value`` row per figure."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "key", "metric", "value"])
    for row in _csv_rows(doc):
        # A cell starting with = + - @ is written as text: a spreadsheet must never run it.
        w.writerow(["'" + c if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c
                    for c in row])
    return buf.getvalue()
