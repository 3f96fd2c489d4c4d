"""Demo CRM data (a small, realistic contact centre) and synthetic bulk customers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select

from ivr.storage.repositories import hash_pin
from ivr.storage.tables import (
    agent_groups,
    agent_skills,
    agents,
    chat_channels,
    contacts,
    customer_numbers,
    customers,
    holidays,
    knowledge_answers,
    load_splits,
    opening_hours,
    orders,
    outages,
    pin_failures,
    skills,
)

# Demo PINs (published in this file) are hashed cheaply: seeding runs in many tests and
# full-cost hashes take 0.6 s each here. A correct PIN rehashes with the current
# parameters (SqlCustomerDirectory.verify_pin), as any old hash would be.
DEMO_PIN_ITERATIONS = 1_000

# (customer_no, name, language, region, postcode, tier, numbers, pin, preferred channel)
DEMO_CUSTOMERS = [
    ("1001", "Anna de Vries", "nl", "Utrecht", "3511AB", "gold", ["+31612345678"], "4321", "sms"),
    ("1002", "Bob Smith", "en", "Leeds", "LS1 4AP", "standard", ["+447700900123"], None, "sms"),
    ("1003", "Carla Jansen", "nl", "Amsterdam", "1012JS", "standard",
     ["+31687654321", "+31201234000"], "1234", "whatsapp"),
    ("1004", "David Okafor", "en", "Utrecht", "3512CD", "platinum", ["+31611112222"], "9999",
     "sms"),
    ("1005", "Eva Bakker", "nl", "Rotterdam", "3011AD", "standard", ["+31633334444"], None,
     "whatsapp"),
    ("1006", "Frank Muller", "en", "London", "EC1A 1BB", "gold", ["+447700900456"], "2468",
     "sms"),
    ("1007", "Greet Peeters", "nl", "Eindhoven", "5611AA", "standard", ["+31644445555"], None,
     "sms"),
    ("1008", "Hannah Lee", "en", "Amsterdam", "1015AB", "standard", ["+31655556666"], "1357",
     "sms"),
]

# (customer_no, order_no, status, eta offset days, carrier)
DEMO_ORDERS = [
    ("1001", "A12345", "in_transit", 2, "PostNL"),
    ("1001", "A11002", "delivered", -20, "PostNL"),
    ("1002", "B77731", "processing", 4, "DPD"),
    ("1003", "C50021", "in_transit", 1, "DHL"),
    ("1004", "D90001", "delivered", -3, "PostNL"),
    ("1006", "F31337", "in_transit", 3, "Royal Mail"),
]

KNOWLEDGE = {
    "opening_hours": {
        "en": "Our colleagues are available by phone Monday to Friday from 8 in the morning to "
              "8 in the evening, and on Saturday from 9 to 5. Live chat is open every day. "
              "{today_status}",
        "nl": "Onze collega's zijn telefonisch bereikbaar van maandag tot en met vrijdag van 8 "
              "tot 20 uur, en op zaterdag van 9 tot 17 uur. De live chat is elke dag open. "
              "{today_status}",
    },
    "troubleshoot_internet": {
        "en": "Let's try the quickest fix first: switch your modem off, wait ten seconds, and "
              "switch it on again. Most connection problems are solved within two minutes.",
        "nl": "Laten we eerst de snelste oplossing proberen: zet uw modem uit, wacht tien "
              "seconden en zet hem weer aan. De meeste verbindingsproblemen zijn binnen twee "
              "minuten opgelost.",
    },
    "troubleshoot_device": {
        "en": "Please restart your device: hold the power button until it switches off, wait "
              "ten seconds, and switch it on again. That solves most problems.",
        "nl": "Start uw apparaat opnieuw op: houd de aan-uitknop ingedrukt tot het uitgaat, "
              "wacht tien seconden en zet het weer aan. Dat lost de meeste problemen op.",
    },
    "payment_methods": {
        "en": "You can pay by direct debit, iDEAL or bank transfer. You can change your payment "
              "method at any time in your online account.",
        "nl": "U kunt betalen via automatische incasso, iDEAL of overboeking. U wijzigt uw "
              "betaalwijze op elk moment in uw online account.",
    },
    "contract_info": {
        "en": "Your contract details, including the end date, are in your online account under "
              "'My contract'.",
        "nl": "Uw contractgegevens, inclusief de einddatum, vindt u in uw online account onder "
              "'Mijn contract'.",
    },
}

SKILLS: list[tuple[str, str, str | None]] = [
    ("general", "General questions", None),
    ("billing", "Invoices and payments", "general"),
    ("collections", "Arrears and payment plans", "billing"),
    ("tech", "Technical support", "general"),
    ("sales", "New contracts", "general"),
    ("retention", "Cancellations", "general"),
    ("complaints", "Complaints", "general"),
    ("bereavement", "Reporting a death", "general"),
    ("logistics", "Orders and deliveries", "general"),
]

AGENT_GROUPS: list[tuple[str, list[str], str | None, int, int]] = [
    ("Front office", ["general", "logistics"], None, 6, 3),
    ("Billing team", ["billing", "collections"], None, 4, 2),
    ("Tech support", ["tech"], None, 5, 2),
    ("Sales & retention", ["sales", "retention"], None, 3, 1),
    ("Care team", ["complaints", "bereavement"], None, 2, 1),
]


# The rig's agents (dialplan/pjsip.conf, PJSIP/agent1..4). Proficiency from the static
# penalties in dialplan/queues.conf: penalty 0 -> 5 (first choice), 1 -> 3 (overflow).
# Regions are places, as customers' regions and the number geocoder name them.
_OWN = ("Amsterdam", "Amsterdam", "Kanaal Amsterdam", "own")
_PARTNER = ("Utrecht", "Utrecht", "Partner BV", "partner")
# (code, name, interface, (site, region, centre, kind), languages csv, skill -> proficiency)
DEMO_AGENTS: list[tuple[str, str, str, tuple[str, str, str, str], str, dict[str, int]]] = [
    ("1001", "Sanne Visser", "PJSIP/agent1", _OWN, "en,nl",
     {"general": 5, "billing": 5, "bereavement": 5, "collections": 3, "sales": 3}),
    ("1002", "Daan Smit", "PJSIP/agent2", _OWN, "nl",
     {"general": 5, "collections": 5, "complaints": 5, "billing": 3, "retention": 3}),
    ("1003", "Priya Raman", "PJSIP/agent3", _PARTNER, "en,nl",
     {"general": 5, "tech": 5, "logistics": 5, "complaints": 3, "bereavement": 3}),
    ("1004", "Tom Hendriks", "PJSIP/agent4", _PARTNER, "en",
     {"general": 5, "sales": 5, "retention": 5, "tech": 3, "logistics": 3}),
]

# skill -> (own %, partner %)
DEMO_SPLITS: dict[str, tuple[int, int]] = {"general": (70, 30)}


def _seed_agents(conn: Connection, now: datetime, *, staffed: bool) -> None:
    """The rig's four agents (logged in when ``staffed``: the node then adds them to
    their queues when it connects to AMI), and the demo load splits."""
    for code, name, iface, (site, region, centre, kind), langs, profs in DEMO_AGENTS:
        # No explicit ids: PostgreSQL's sequence must stay ahead for `ivr agents add`.
        agent_id = conn.execute(insert(agents).values(
            code=code, name=name, interface=iface, site=site, region=region, centre=centre,
            centre_kind=kind, languages=langs, logged_in=staffed, paused=False, active=True,
            updated_at=now).returning(agents.c.id)).scalar_one()
        conn.execute(insert(agent_skills), [{"agent_id": agent_id, "skill": sk, "proficiency": p}
                                            for sk, p in profs.items()])
    for skill, (own, partner) in DEMO_SPLITS.items():
        conn.execute(insert(load_splits).values(skill=skill, own_pct=own, partner_pct=partner,
                                                updated_at=now))


def _wipe(conn: object) -> None:
    for table in (contacts, orders, customer_numbers, pin_failures, customers, outages,
                  knowledge_answers, opening_hours, holidays, load_splits, agent_skills,
                  agents, skills, agent_groups, chat_channels):
        conn.execute(delete(table))  # type: ignore[attr-defined]


def seed_demo(engine: Engine, *, today: date | None = None, staffed: bool = False
              ) -> dict[str, int]:
    """Replace all reference data with the demo contact centre. Returns row counts."""
    today = today or datetime.now(UTC).date()
    with engine.begin() as conn:
        _wipe(conn)
        ids: dict[str, int] = {}
        for i, (no, name, lang, region, pc, tier, numbers, pin, pref) in enumerate(
                DEMO_CUSTOMERS, start=1):
            conn.execute(insert(customers).values(
                id=i, customer_no=no, name=name, language=lang, region=region, postcode=pc,
                tier=tier, pin_hash=hash_pin(pin, iterations=DEMO_PIN_ITERATIONS) if pin else None,
                preferred_channel=pref))
            ids[no] = i
            for n in numbers:
                conn.execute(insert(customer_numbers).values(number=n, customer_id=i))
        for no, order_no, status, offset, carrier in DEMO_ORDERS:
            conn.execute(insert(orders).values(
                order_no=order_no, customer_id=ids[no], status=status,
                eta=today + timedelta(days=offset), carrier=carrier,
                updated_at=datetime.now(UTC)))
        start = datetime.combine(today, time(6, 0), UTC) - timedelta(days=1)
        conn.execute(insert(outages).values(
            region="Utrecht", regions=["Utrecht"], starts_at=start,
            ends_at=start + timedelta(days=6), status="active", source="supervisor",
            created_by="seed",
            messages={
                "en": "There is an internet outage in the Utrecht area. Our engineers expect "
                      "to have it fixed by tomorrow evening. You don't need to report it.",
                "nl": "Er is een internetstoring in de regio Utrecht. Onze monteurs verwachten "
                      "die morgenavond verholpen te hebben. U hoeft de storing niet te melden.",
            }))
        for key, texts in KNOWLEDGE.items():
            for lang, template in texts.items():
                conn.execute(insert(knowledge_answers).values(key=key, language=lang,
                                                              template=template))
        for wd in range(5):
            conn.execute(insert(opening_hours).values(channel="voice", weekday=wd,
                                                      opens=time(8), closes=time(20)))
            conn.execute(insert(opening_hours).values(channel="chat", weekday=wd,
                                                      opens=time(8), closes=time(22)))
        conn.execute(insert(opening_hours).values(channel="voice", weekday=5, opens=time(9),
                                                  closes=time(17)))
        for wd in (5, 6):
            conn.execute(insert(opening_hours).values(channel="chat", weekday=wd,
                                                      opens=time(10), closes=time(18)))
        for d, name, opens, closes in _holidays(today.year):
            conn.execute(insert(holidays).values(day=d, channel=None, name=name, opens=opens,
                                                 closes=closes))
        for name, desc, overflow in SKILLS:
            conn.execute(insert(skills).values(name=name, description=desc, queue=name,
                                               overflow_skill=overflow))
        for name, sk, group_region, agents, ready in AGENT_GROUPS:
            conn.execute(insert(agent_groups).values(name=name, skills=sk, region=group_region,
                                                     agents=agents, ready=ready))
        conn.execute(insert(chat_channels).values(name="webchat", enabled=True, capacity=8,
                                                  active_sessions=3))
        _seed_agents(conn, datetime.now(UTC), staffed=staffed)
    return {"customers": len(DEMO_CUSTOMERS), "orders": len(DEMO_ORDERS),
            "knowledge": sum(len(v) for v in KNOWLEDGE.values()), "agents": len(DEMO_AGENTS)}


def _holidays(year: int) -> list[tuple[date, str, time | None, time | None]]:
    return [
        (date(year, 12, 24), "Christmas Eve", time(8), time(17)),
        (date(year, 12, 25), "Christmas Day", None, None),
        (date(year, 12, 26), "Boxing Day", None, None),
        (date(year, 12, 31), "New Year's Eve", time(8), time(17)),
        (date(year + 1, 1, 1), "New Year's Day", None, None),
        (date(year, 4, 27), "King's Day", None, None),
    ]


SYNTHETIC_BASE_NO = 10_000_000
SYNTHETIC_BASE_NUMBER = 31_600_000_000  # +316xxxxxxxx: Dutch mobile range


def synthetic_number(i: int) -> str:
    return f"+{SYNTHETIC_BASE_NUMBER + i}"


def seed_synthetic(engine: Engine, n: int, *, chunk: int = 20_000,
                   progress: Callable[[int], None] | None = None) -> int:
    """Append ``n`` synthetic customers (one mobile number each) after the existing ones."""
    regions = ["Utrecht", "Amsterdam", "Rotterdam", "Eindhoven", "Groningen", "Leeds", "London"]
    tiers = ["standard"] * 8 + ["gold", "platinum"]
    with engine.begin() as conn:
        start = (conn.execute(select(func.max(customers.c.id))).scalar() or 0) + 1
    done = 0
    while done < n:
        size = min(chunk, n - done)
        ids = range(start + done, start + done + size)
        with engine.begin() as conn:
            conn.execute(insert(customers), [
                {"id": i, "customer_no": str(SYNTHETIC_BASE_NO + i), "name": f"Customer {i}",
                 "language": "nl" if i % 3 else "en", "region": regions[i % len(regions)],
                 "postcode": f"{1000 + i % 9000}AB", "tier": tiers[i % len(tiers)],
                 "pin_hash": None, "preferred_channel": "sms"} for i in ids])
            conn.execute(insert(customer_numbers), [
                {"number": synthetic_number(i), "customer_id": i, "kind": "mobile"}
                for i in ids])
        done += size
        if progress is not None:
            progress(size)
    return n
