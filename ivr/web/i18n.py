"""English and Dutch text of the pages: one catalogue, the language chosen per request.

The language is the user's choice (the ``kanaal_lang`` cookie, set by the EN/NL links
in the top bar through ``GET /lang/{code}``), else the browser's ``Accept-Language``,
else English. A middleware puts it in a context variable, so ``Pages.render`` and the
templates' ``t(key)`` need no request passed around. Scripts get the ``js.*`` strings
of the language as a JSON data block (``Kanaal.t`` in common.js).

A key missing in Dutch falls back to English; a key missing everywhere renders as the
key itself, and a test checks that every key used in templates and scripts exists in
both languages.
"""

from __future__ import annotations

import contextvars
from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import RedirectResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

Lang = Literal["en", "nl"]
LANGS: tuple[Lang, ...] = ("en", "nl")
COOKIE = "kanaal_lang"
_current: contextvars.ContextVar[Lang] = contextvars.ContextVar("kanaal_lang", default="en")

# key -> (English, Dutch). Keys starting with "js." are sent to the page's scripts.
TEXT: dict[str, tuple[str, str]] = {
    # base, sign-in, errors
    "nav.agent": ("Agent desktop", "Agentdesktop"),
    "nav.supervisor": ("Supervisor", "Supervisor"),
    "nav.docs": ("API docs", "API-documentatie"),
    "nav.sign_out": ("Sign out", "Afmelden"),
    "nav.language": ("Language", "Taal"),
    "role.agent": ("agent", "agent"),
    "role.supervisor": ("supervisor", "supervisor"),
    "role.admin": ("admin", "beheerder"),
    "who.agent_code": ("agent", "agent"),
    "login.title": ("Sign in", "Aanmelden"),
    "login.username": ("Username", "Gebruikersnaam"),
    "login.password": ("Password", "Wachtwoord"),
    "login.submit": ("Sign in", "Aanmelden"),
    "login.wrong": ("Wrong username or password.", "Verkeerde gebruikersnaam of wachtwoord."),
    "login.locked": ("Too many failed sign-ins. Try again in {s} s.",
                     "Te veel mislukte aanmeldpogingen. Probeer het over {s} s opnieuw."),
    "login.expired": ("The form expired. Please sign in again.",
                      "Het formulier is verlopen. Meld je opnieuw aan."),
    "error.not_allowed": ("Not allowed", "Niet toegestaan"),
    "error.back": ("Back to your page", "Terug naar je pagina"),
    "error.other_user": ("Sign in as someone else", "Aanmelden als iemand anders"),
    # agent desktop
    "agent.page": ("Agent desktop", "Agentdesktop"),
    "agent.connecting": ("connecting…", "verbinden…"),
    "agent.login": ("Log in to queues", "Aanmelden bij wachtrijen"),
    "agent.ready": ("Ready", "Beschikbaar"),
    "agent.pause": ("Pause", "Pauze"),
    "agent.logout": ("Log out of queues", "Afmelden bij wachtrijen"),
    "agent.no_profile": ("No agent profile is linked to this user (ivr users add --agent "
                         "CODE), so queue buttons are hidden.",
                         "Aan deze gebruiker is geen agentprofiel gekoppeld (ivr users add "
                         "--agent CODE), dus de wachtrijknoppen zijn verborgen."),
    "agent.waiting": ("Waiting for a call. The caller's details appear here the moment the "
                      "IVR hands them to you.",
                      "Wachten op een gesprek. De gegevens van de beller verschijnen hier "
                      "zodra de IVR de beller aan je doorgeeft."),
    "agent.intent": ("Intent", "Intentie"),
    "agent.confidence": ("Confidence", "Zekerheid"),
    "agent.skill": ("Skill", "Vaardigheid"),
    "agent.routing": ("Routing", "Routering"),
    "agent.customer": ("Customer", "Klant"),
    "agent.region": ("Region", "Regio"),
    "agent.language": ("Language", "Taal"),
    "agent.session": ("Session", "Sessie"),
    "agent.transcript": ("Transcript", "Transcript"),
    "agent.orders": ("Orders", "Bestellingen"),
    "agent.order": ("Order", "Bestelling"),
    "agent.status": ("Status", "Status"),
    "agent.eta": ("ETA", "Verwacht"),
    "agent.history": ("Earlier contacts", "Eerdere contacten"),
    "agent.timeline": ("Timeline, all channels", "Tijdlijn, alle kanalen"),
    "agent.event": ("What happened", "Wat er gebeurde"),
    "agent.when": ("When", "Wanneer"),
    "agent.channel": ("Channel", "Kanaal"),
    "agent.outcome": ("Outcome", "Uitkomst"),
    "agent.wrapup": ("Wrap-up", "Afronding"),
    "agent.code": ("Code", "Code"),
    "agent.choose": ("choose…", "kies…"),
    "agent.note": ("Note", "Notitie"),
    "agent.save_wrapup": ("Save wrap-up", "Afronding opslaan"),
    "agent.handoffs": ("Hand-offs", "Doorgegeven bellers"),
    "agent.callbacks": ("Callbacks in my skills", "Terugbelafspraken in mijn vaardigheden"),
    "agent.slot": ("Slot", "Tijdvak"),
    "agent.cb_question": ("Question", "Vraag"),
    "wrapup.resolved": ("Resolved", "Opgelost"),
    "wrapup.follow_up": ("Follow-up needed", "Opvolging nodig"),
    "wrapup.callback": ("Callback promised", "Terugbellen beloofd"),
    "wrapup.escalated": ("Escalated", "Geëscaleerd"),
    "wrapup.transferred": ("Transferred", "Doorverbonden"),
    "wrapup.no_action": ("No action needed", "Geen actie nodig"),
    # supervisor console
    "sup.page": ("Supervisor console", "Supervisorconsole"),
    "sup.intro": ("Live counters of this node since it started, pushed every {s} s. Reports "
                  "and contacts come from the database (all nodes).",
                  "Live tellers van deze node sinds de start, elke {s} s bijgewerkt. Rapporten "
                  "en contacten komen uit de database (alle nodes)."),
    "sup.calls": ("Calls ended", "Gesprekken beëindigd"),
    "sup.handed": ("Handed to agents", "Naar agents"),
    "sup.dropped": ("Dropped off", "Afgehaakt"),
    "sup.backlog": ("Outbox backlog", "Wachtende berichten"),
    "sup.desktops": ("Agent desktops", "Agentdesktops"),
    "sup.database": ("Database", "Database"),
    "sup.queues": ("Queues", "Wachtrijen"),
    "sup.skill": ("Skill", "Vaardigheid"),
    "sup.logged_in": ("Logged in", "Aangemeld"),
    "sup.ready": ("Ready", "Beschikbaar"),
    "sup.busy": ("Busy", "In gesprek"),
    "sup.paused": ("Paused", "Pauze"),
    "sup.wrap_up": ("Wrap-up", "Afronding"),
    "sup.waiting": ("Waiting", "Wachtend"),
    "sup.longest": ("Longest wait", "Langste wachttijd"),
    "sup.loading": ("loading…", "laden…"),
    "sup.no_ami": ("live state not connected (no AMI)", "live status niet verbonden (geen AMI)"),
    "sup.split": ("Load split", "Verdeling"),
    "sup.split_help": ("Share of a split skill's calls for our own centre; the rest goes to "
                       "the partner.",
                       "Deel van de gesprekken voor ons eigen centrum; de rest gaat naar de "
                       "partner."),
    "sup.agents": ("Agents", "Agents"),
    "sup.pause_reason": ("Pause reason", "Pauzereden"),
    "sup.code": ("Code", "Code"),
    "sup.name": ("Name", "Naam"),
    "sup.centre": ("Centre", "Centrum"),
    "sup.skills": ("Skills (proficiency)", "Vaardigheden (niveau)"),
    "sup.state": ("State", "Status"),
    "sup.calls_today": ("Calls today", "Gesprekken vandaag"),
    "sup.actions": ("Actions", "Acties"),
    "sup.by_outcome": ("Calls by outcome", "Gesprekken per uitkomst"),
    "sup.by_skill": ("Hand-offs per skill", "Doorgegeven per vaardigheid"),
    "sup.dropoff_steps": ("Drop-off steps", "Afhaakmomenten"),
    "sup.intents": ("Intents", "Intenties"),
    "sup.reports": ("Reports", "Rapporten"),
    "sup.period": ("Period", "Periode"),
    "sup.last_hour": ("last hour", "laatste uur"),
    "sup.last_day": ("last 24 hours", "laatste 24 uur"),
    "sup.last_week": ("last 7 days", "laatste 7 dagen"),
    "sup.last_month": ("last 30 days", "laatste 30 dagen"),
    "sup.csv": ("Export CSV", "CSV exporteren"),
    "sup.recent": ("Recent contacts", "Recente contacten"),
    "sup.started": ("Started", "Begonnen"),
    "sup.caller": ("Caller", "Beller"),
    "sup.scenario": ("Scenario", "Scenario"),
    "sup.dropped_at": ("Dropped at", "Afgehaakt bij"),
    "pause.break": ("break", "pauze"),
    "pause.coaching": ("coaching", "coaching"),
    "pause.meeting": ("meeting", "overleg"),
    "pause.training": ("training", "training"),
    "pause.admin": ("admin", "administratie"),
    # scripts (js.*)
    "js.live": ("live", "live"),
    "js.reconnecting": ("reconnecting…", "opnieuw verbinden…"),
    "js.unknown_caller": ("Unknown caller", "Onbekende beller"),
    "js.not_identified": ("not identified", "niet geïdentificeerd"),
    "js.priority": ("priority", "prioriteit"),
    "js.no_question": ("(the caller did not say)", "(de beller zei niets)"),
    "js.unavailable": ("unavailable", "niet beschikbaar"),
    "js.pin_verified": ("PIN verified", "PIN gecontroleerd"),
    "js.pin_not_verified": ("PIN not verified", "PIN niet gecontroleerd"),
    "js.no_orders": ("no open orders", "geen open bestellingen"),
    "js.not_identified_caller": ("caller not identified", "beller niet geïdentificeerd"),
    "js.no_history": ("no earlier contacts", "geen eerdere contacten"),
    "js.no_timeline": ("nothing on the timeline yet", "nog niets op de tijdlijn"),
    "js.no_callbacks": ("no open callbacks", "geen open terugbelafspraken"),
    "js.callbacks_unavailable": ("callbacks unavailable", "terugbelafspraken niet beschikbaar"),
    "js.outage_in": ("Outage in", "Storing in"),
    "js.saved": ("saved", "opgeslagen"),
    "js.not_saved": ("not saved", "niet opgeslagen"),
    "js.none_yet": ("none yet", "nog geen"),
    "js.no_intent": ("no intent", "geen intentie"),
    "js.state": ("state", "status"),
    "js.done": ("done", "gelukt"),
    "js.failed": ("failed", "mislukt"),
    "js.queue_state_unavailable": ("queue state unavailable", "wachtrijstatus niet beschikbaar"),
    "js.no_calls": ("no calls ended yet", "nog geen gesprekken beëindigd"),
    "js.no_handoffs": ("no hand-offs yet", "nog niemand doorgegeven"),
    "js.nobody_dropped": ("nobody dropped off", "niemand afgehaakt"),
    "js.no_intents": ("no intents yet", "nog geen intenties"),
    "js.up": ("up", "actief"),
    "js.down": ("DOWN", "UIT"),
    "js.no_contacts": ("no contacts yet", "nog geen contacten"),
    "js.contacts_unavailable": ("contacts unavailable", "contacten niet beschikbaar"),
    "js.in_sync": ("in sync with Asterisk", "synchroon met Asterisk"),
    "js.not_synced": ("not synced yet", "nog niet gesynchroniseerd"),
    "js.stale_for": ("stale for", "verouderd sinds"),
    "js.queues_unavailable": ("queue state unavailable", "wachtrijstatus niet beschikbaar"),
    "js.other_asterisk": ("Also on", "Ook op"),
    "js.nobody_queued": ("no agent in any queue and nobody waiting",
                         "geen agent in een wachtrij en niemand wacht"),
    "js.inactive": ("inactive", "inactief"),
    "js.logged_out": ("logged out", "afgemeld"),
    "js.logged_in": ("logged in", "aangemeld"),
    "js.in_queues": ("in queues", "in wachtrijen"),
    "js.ready": ("ready", "beschikbaar"),
    "js.ringing": ("ringing", "gaat over"),
    "js.busy": ("on a call", "in gesprek"),
    "js.wrap_up": ("wrap-up", "afronding"),
    "js.paused": ("paused", "pauze"),
    "js.resumed": ("resumed", "hervat"),
    "js.unreachable": ("phone unreachable", "telefoon onbereikbaar"),
    "js.log_in": ("Log in", "Aanmelden"),
    "js.log_out": ("Log out", "Afmelden"),
    "js.pause": ("Pause", "Pauze"),
    "js.resume": ("Resume", "Hervatten"),
    "js.agents_unavailable": ("agents unavailable", "agents niet beschikbaar"),
    "js.no_agents": ("no agents in the directory", "geen agents in de lijst"),
    "js.not_joined": ("not joined", "niet toegevoegd"),
    "js.queues": ("queues", "wachtrijen"),
    "js.own": ("own", "eigen"),
    "js.partner": ("partner", "partner"),
    "js.not_saved_yet": ("not saved yet", "nog niet opgeslagen"),
    "js.save": ("Save", "Opslaan"),
    "js.stored": ("stored", "opgeslagen"),
    "js.splits_unavailable": ("load splits unavailable", "verdeling niet beschikbaar"),
    "js.no_splits": ("no skill has a load split (ivr split set)",
                     "geen vaardigheid heeft een verdeling (ivr split set)"),
    "report.contacts": ("contacts", "contacten"),
    "report.contained": ("Solved without an agent", "Opgelost zonder agent"),
    "report.to_agent": ("Handed to an agent", "Naar een agent"),
    "report.abandoned": ("Hung up", "Opgehangen"),
    "report.other": ("Other (closed, no agent, open)", "Overig (gesloten, geen agent, open)"),
    "report.containment": ("Containment", "Zelf afgehandeld"),
    "report.none": ("no contacts in this period", "geen contacten in deze periode"),
    "report.reasons": ("Contact reasons", "Contactredenen"),
    "report.dropoff": ("Drop-off per step", "Afhakers per stap"),
    "report.reached": ("reached", "bereikt"),
    "report.dropped": ("hung up there", "daar opgehangen"),
    "report.times": ("Wait and handle time per skill (calls)",
                     "Wacht- en gesprekstijd per vaardigheid (gesprekken)"),
    "report.wait": ("mean wait", "gem. wachttijd"),
    "report.handle": ("mean handle time", "gem. gesprekstijd"),
    "report.no_agent_calls": ("no calls handed to agents", "geen gesprekken naar agents"),
    "report.unavailable": ("report unavailable", "rapport niet beschikbaar"),
    # outages and surge alerts (supervisor console; ivr/web/static/outages.js)
    "out.title": ("Outages and surges", "Storingen en pieken"),
    "out.status": ("Status", "Status"),
    "out.regions": ("Regions", "Regio's"),
    "out.message": ("What callers hear", "Wat bellers horen"),
    "out.source": ("Source", "Bron"),
    "out.until": ("Until", "Tot"),
    "out.subscribers": ("SMS news", "Sms-berichten"),
    "out.message_en": ("Message (English)", "Bericht (Engels)"),
    "out.message_nl": ("Message (Dutch)", "Bericht (Nederlands)"),
    "out.ends": ("Ends (optional)", "Einde (optioneel)"),
    "out.post": ("Post outage", "Storing plaatsen"),
    "js.out.none": ("No outages: callers hear nothing extra.",
                    "Geen storingen: bellers horen niets extra."),
    "js.out.end": ("End", "Beëindigen"),
    "js.out.confirm": ("Confirm", "Bevestigen"),
    "js.out.dismiss": ("Dismiss", "Afwijzen"),
    "js.out.open": ("until ended", "tot beëindigd"),
    "js.out.posted": ("Posted.", "Geplaatst."),
    "js.out.failed": ("Not done:", "Niet gelukt:"),
    "js.out.learning": ("Surge detector learning (supervisor threshold applies)",
                        "Piekdetectie leert nog (drempel van de supervisor geldt)"),
    "js.out.watching": ("Surge detector watching", "Piekdetectie actief"),
    "js.out.surging": ("SURGE", "PIEK"),
    "js.out.off": ("Surge detection off", "Piekdetectie uit"),
    "js.out.surge_in": ("Surge in", "Piek in"),
    "js.out.surge_over": ("Surge over in", "Piek voorbij in"),
    "js.out.calls": ("calls, expected", "gesprekken, verwacht"),
    "js.out.pending": ("announcement waits for you", "melding wacht op jou"),
}


def t(key: str, lang: Lang | None = None, **values: object) -> str:
    """The text of ``key`` in ``lang`` (the request's by default), ``{name}`` filled in."""
    pair = TEXT.get(key)
    if pair is None:
        return key
    text = pair[1] if (lang or _current.get()) == "nl" and pair[1] else pair[0]
    return text.format(**values) if values else text


def current() -> Lang:
    return _current.get()


def script_strings(lang: Lang | None = None) -> dict[str, str]:
    """The strings the page's scripts use (``js.*`` and ``report.*``) in ``lang``."""
    return {k: t(k, lang) for k in TEXT if k.startswith(("js.", "report."))}


def choose(cookie: str | None, accept_language: str | None) -> Lang:
    """The user's choice, else the first of en/nl the browser accepts, else English."""
    if cookie in LANGS:
        return "nl" if cookie == "nl" else "en"
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower().split("-")[0]))
    for _, _, base in sorted(ranked):
        if base == "nl":
            return "nl"
        if base == "en":
            return "en"
    return "en"


class LanguageMiddleware:
    """Sets the request's language (``current()``) for everything that renders it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        token = _current.set(choose(conn.cookies.get(COOKIE),
                                    conn.headers.get("accept-language")))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


def install_language(web: FastAPI) -> None:
    """Per-request language (middleware) and ``GET /lang/{code}?next=`` to choose one."""
    web.add_middleware(LanguageMiddleware)
    router = APIRouter()

    @router.get("/lang/{code}", include_in_schema=False)
    async def set_language(code: str, next: str = "/") -> Response:
        # Only a path on this site: an open redirect would help phishing.
        parts = urlsplit(next)
        target = next if (next.startswith("/") and not next.startswith("//")
                          and "\\" not in next and not parts.scheme
                          and not parts.netloc) else "/"
        response = RedirectResponse(target, status_code=303)
        if code in LANGS:
            response.set_cookie(COOKIE, code, max_age=365 * 24 * 3600, httponly=True,
                                samesite="lax", path="/")
        return response

    web.include_router(router)
