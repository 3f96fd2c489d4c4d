"""One frozen, typed Settings object, loaded once at start-up.

Precedence: defaults < .env file (python-dotenv) < ``IVR_*`` environment < CLI
``--set name=value``. Every value is validated here; a bad one stops start-up
with a message naming the variable and what is allowed. Library code receives
the Settings (or pieces of it) as constructor arguments and never reads
``os.environ`` itself.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from ivr.domain.callbacks import CallbackError, SlotPolicy, policy_from
from ivr.domain.model import LANGUAGES

PREFIX = "IVR_"


# IVR_LANGUAGE_OFFER values (see FlowConfig.language_offer).
LANGUAGE_OFFERS = ("auto", "always", "off")


class ConfigError(ValueError):
    """A setting has a value that is not allowed; the message says which and why."""


def _meta(help: str, secret: bool = False) -> dict[str, Any]:
    return {"help": help, "secret": secret}


@dataclass(frozen=True, slots=True)
class Settings:
    """Effective configuration. Field ``foo_bar`` is set by ``IVR_FOO_BAR``."""

    # --- core -------------------------------------------------------------------
    data_dir: Path = field(default=Path("var"), metadata=_meta("where the app keeps its files"))
    database_url: str = field(
        default="", metadata=_meta("SQLAlchemy URL; empty = SQLite file in data_dir", secret=True)
    )
    default_language: str = field(default="en", metadata=_meta("language for unknown callers"))
    languages: tuple[str, ...] = field(default=LANGUAGES, metadata=_meta("supported languages"))
    language_offer: str = field(default="auto", metadata=_meta(
        "auto|always|off: callers the CRM does not know hear the other language offered "
        "right after the open question, while it listens ('Voor Nederlands, druk 2'); "
        "auto: only when a recogniser on this node hears that language"))
    timezone: str = field(default="Europe/Amsterdam", metadata=_meta("IANA zone of opening hours"))
    default_region: str = field(default="NL", metadata=_meta("country for national CLIs"))
    log_level: str = field(default="INFO", metadata=_meta("DEBUG, INFO, WARNING, ERROR"))
    log_format: str = field(
        default="text", metadata=_meta("text (human) or json (one JSON object per line)")
    )
    grammars_dir: Path = field(default=Path("grammars"), metadata=_meta("intent catalogues"))
    sounds_dir: Path = field(default=Path("sounds"), metadata=_meta("pre-recorded prompts"))
    prompt_dir: Path = field(
        default=Path("var/prompts"),
        metadata=_meta("where prompt audio for Asterisk is written (Asterisk must read it)"),
    )
    asterisk_prompt_dir: str = field(
        default="", metadata=_meta("prompt_dir as Asterisk sees it; empty = same path")
    )
    spool_dir: Path | None = field(default=None, metadata=_meta(
        "where contacts wait while the database is down; share it between nodes so "
        "another node replays a dead node's (empty = data_dir/spool)"))
    record_dir: Path = field(
        default=Path("var/recordings"), metadata=_meta("where AGI recordings are read from")
    )
    asterisk_record_dir: str = field(
        default="", metadata=_meta("record_dir as Asterisk sees it; empty = same path")
    )

    # --- dialogue ---------------------------------------------------------------
    no_input_timeout_s: float = field(default=6.0, metadata=_meta("silence before reprompt"))
    max_reprompts: int = field(default=1, metadata=_meta("reprompts before the keypad menu"))
    confirm_below: float = field(
        default=0.6, metadata=_meta("confirm the intent when confidence is below this")
    )
    reject_below: float = field(
        default=0.35, metadata=_meta("treat as not understood below this confidence")
    )
    confirm_asr_below: float = field(default=0.4, metadata=_meta(
        "recogniser confidence from which heard words are trusted; below it a match is "
        "scaled down by asr/this before the confirm check (0: off)"))
    pin_max_failures: int = field(default=6, metadata=_meta(
        "wrong PINs per customer (across calls) that lock their PIN; then a human"))
    pin_lock_s: float = field(default=86_400.0, metadata=_meta(
        "how long a wrong PIN counts towards the lock (seconds)"))
    nlu_workers: int = field(default=2, metadata=_meta(
        "threads that run intent matching (off the event loop)"))
    nlu_max_pending: int = field(default=16, metadata=_meta(
        "intent queries queued or running at most; beyond it a caller gets the keypad menu"))
    nlu_timeout_s: float = field(default=5.0, metadata=_meta(
        "an intent query not answered within this gives the keypad menu"))
    require_pin_for: tuple[str, ...] = field(
        default=(), metadata=_meta("intents that need PIN authentication (comma-separated)")
    )
    vip_tiers: tuple[str, ...] = field(
        default=("gold", "platinum"), metadata=_meta("customer tiers routed with priority")
    )

    # --- ASR --------------------------------------------------------------------
    asr_engine: str = field(default="auto", metadata=_meta("auto, vosk or whisper"))
    nlu_cache_dir: Path | None = field(default=None, metadata=_meta(
        "cache of the intent examples' embeddings, keyed by model and text, so it can be "
        "shared (empty = $XDG_CACHE_HOME/kanaal/nlu, else ~/.cache/kanaal/nlu)"))
    vosk_model_en: Path | None = field(default=None, metadata=_meta("Vosk model dir (English)"))
    vosk_model_nl: Path | None = field(default=None, metadata=_meta("Vosk model dir (Dutch)"))
    whisper_window: str = field(default="auto", metadata=_meta(
        "Whisper encoder window: auto (30 s while the decoder is idle, speech + 2 s "
        "under load), short or full"))
    whisper_model: Path | None = field(default=None, metadata=_meta(
        "CTranslate2 Whisper model dir (unset: the bundled tiny.en); a multilingual "
        "one also serves Dutch"))
    adaptive_end_of_turn: bool = field(default=True, metadata=_meta(
        "end a turn after 300 ms of quiet when Whisper's speculative transcript is a "
        "finished, confident sentence (else the full 700 ms)"))
    warm_prompts: bool = field(default=True, metadata=_meta(
        "at start-up, synthesise the prompts whose words come from the catalogue alone "
        "(transfers, confirmations, link prompts, troubleshooting steps, keypad menu) "
        "into the prompt cache, at most half a core, so no first caller waits for them"))
    ack_after_ms: int = field(default=700, metadata=_meta(
        "say 'One moment, let me check that' when the answer has not started this long "
        "after the caller's last word was detected (0 = never)"))
    whisper_batch: int = field(default=8, metadata=_meta(
        "open questions of calls whose turns end together are decoded by Whisper up to "
        "this many at once (1 = one by one)"))
    asr_threads: int = field(default=4, metadata=_meta(
        "threads of the recogniser's own pool (voice detection of every 20 ms packet, "
        "digit decodes); 0 = share asyncio's default pool with database calls and TTS"))

    # --- Asterisk ---------------------------------------------------------------
    ari_url: str = field(default="http://127.0.0.1:8088", metadata=_meta("Asterisk HTTP base"))
    ari_user: str = field(default="ivr", metadata=_meta("ARI user (ari.conf)"))
    ari_password: str = field(default="ivr-secret", metadata=_meta("ARI password", secret=True))
    ari_app: str = field(default="ivr", metadata=_meta("Stasis application name"))
    media_host: str = field(default="127.0.0.1", metadata=_meta("address for externalMedia RTP"))
    agi_host: str = field(default="127.0.0.1", metadata=_meta("FastAGI bind address"))
    agi_port: int = field(default=4573, metadata=_meta("FastAGI port"))
    # Defaults are what `ivr rig up` writes into manager.conf (@AMI_PORT@ etc.).
    ami_host: str = field(default="127.0.0.1", metadata=_meta("Asterisk AMI host"))
    ami_port: int = field(default=5039, metadata=_meta("Asterisk AMI port (manager.conf)"))
    ami_user: str = field(default="ivr", metadata=_meta("AMI user (manager.conf section)"))
    ami_secret: str = field(default="kanaal", metadata=_meta("AMI secret", secret=True))
    # --- smart routing on live state ----------------------------------------------
    live_routing: bool = field(default=True, metadata=_meta(
        "route hand-offs on app_queue's live state from AMI (false = static plan only)"))
    routing_stale_s: float = field(default=30.0, metadata=_meta(
        "seconds without AMI state after which routing falls back to the static plan"))
    overflow_after_s: float = field(default=60.0, metadata=_meta(
        "wait (expected at hand-off, or actual in the queue) after which a skill's "
        "overflow (substitute) agents answer"))
    ari_lease_s: float = field(default=5.0, metadata=_meta(
        "a call in the app whose node stops renewing it this long goes to a human "
        "(absolute-timeout lease over AMI, with live routing; 0 = off)"))
    queue_announce_s: float = field(default=45.0, metadata=_meta(
        "every this many seconds a queued caller hears their position, the expected wait "
        "and the key to leave for a link (0 = off)"))
    priority_aging_s: float = field(default=60.0, metadata=_meta(
        "seconds waited per +1 queue priority, so normal callers are never starved "
        "(0 = off)"))
    repeat_window_days: float = field(default=7.0, metadata=_meta(
        "a caller who reached an agent within this many days is offered to them first"))

    # --- outages and surge detection (ivr.outages, ivr.domain.surge) ---------------
    surge_detection: bool = field(default=True, metadata=_meta(
        "watch calls per region/intent for surges (needs the node: ivr serve)"))
    surge_auto_activate: bool = field(default=False, metadata=_meta(
        "a surge's announcement is heard at once (true) or waits for a supervisor (false)"))
    surge_window_s: float = field(default=600.0, metadata=_meta(
        "sliding window of the surge detector (2- and 5-minute windows inside it too)"))
    surge_ratio: float = field(default=3.0, metadata=_meta(
        "a surge has at least this many times the calls the baseline expects"))
    surge_min_calls: int = field(default=8, metadata=_meta(
        "and at least this many calls within the window"))
    surge_fault_share: float = field(default=0.5, metadata=_meta(
        "and at least this share of them about faults/outages (region surges)"))
    surge_learning_threshold: int = field(default=20, metadata=_meta(
        "calls per window that make a surge while the baseline is still learning"))
    surge_min_weeks: int = field(default=2, metadata=_meta(
        "weeks of history an hour of the week needs before its baseline is trusted"))
    surge_history_weeks: int = field(default=8, metadata=_meta(
        "weeks of contact history the node learns from at start-up"))
    surge_webhook_url: str = field(default="", metadata=_meta(
        "POST every surge alert as JSON here (empty: none)", secret=True))
    surge_sms_to: tuple[str, ...] = field(default=(), metadata=_meta(
        "supervisors' numbers (E.164, comma-separated) texted on a surge"))

    # --- callbacks in time slots (ivr.callbacks, ivr.domain.callbacks) -------------
    callbacks: bool = field(default=False, metadata=_meta(
        "offer callbacks in time slots (asked for, long wait, nobody available, closed, "
        "left the queue) and run the dialer; off by default: the dialer calls out "
        "through your trunk (IVR_CALLBACK_ENDPOINT), which must be configured first"))
    callback_slot_s: float = field(default=1800.0, metadata=_meta(
        "length of a callback slot in seconds (slots start on multiples of it)"))
    callback_lead_s: float = field(default=900.0, metadata=_meta(
        "the first slot offered starts at least this many seconds from now"))
    callback_capacity: tuple[str, ...] = field(default=(), metadata=_meta(
        "callbacks per slot per skill, e.g. billing=4,tech=6 (other skills: "
        "IVR_CALLBACK_PER_AGENT x agents logged in for the skill)"))
    callback_per_agent: int = field(default=2, metadata=_meta(
        "callbacks per slot per logged-in agent, for skills without a configured capacity"))
    callback_offer_wait_s: float = field(default=300.0, metadata=_meta(
        "an expected wait at least this long offers a callback"))
    callback_max_attempts: int = field(default=3, metadata=_meta(
        "dial attempts per callback (no answer/busy), all within its slot"))
    callback_retry_s: float = field(default=300.0, metadata=_meta(
        "seconds between attempts of one callback"))
    callback_strategy: tuple[str, ...] = field(default=(), metadata=_meta(
        "per skill: agent_first or customer_first, e.g. billing=customer_first"))
    callback_default_strategy: str = field(default="agent_first", metadata=_meta(
        "agent_first (reserve a ready agent, ring them, then the customer) or "
        "customer_first (the customer into the skill queue at priority)"))
    callback_endpoint: str = field(default="PJSIP/{number}@trunk", metadata=_meta(
        "Asterisk dial string for the customer; {number} is their E.164 number"))
    callback_caller_id: str = field(default="Kanaal <+3197010200300>", metadata=_meta(
        "caller ID the customer (and the agent) sees on a callback"))
    callback_ring_s: float = field(default=30.0, metadata=_meta(
        "seconds a callback leg (agent or customer) rings before no answer"))
    callback_priority: int = field(default=10, metadata=_meta(
        "queue priority of a customer-first callback (ahead of new callers)"))
    callback_dialer: bool = field(default=True, metadata=_meta(
        "this node dials due callbacks (ivr serve); the database lease keeps several "
        "nodes from dialling one twice"))
    callback_poll_s: float = field(default=5.0, metadata=_meta(
        "how often the dialer looks for due callbacks"))
    callback_lease_s: float = field(default=60.0, metadata=_meta(
        "a dialer's claim on a callback; renewed while it calls, taken over after a crash"))

    # --- web --------------------------------------------------------------------
    web_host: str = field(default="127.0.0.1", metadata=_meta("web server bind address"))
    web_port: int = field(default=8080, metadata=_meta("web server port"))
    public_url: str = field(
        default="http://127.0.0.1:8080", metadata=_meta("public base URL (webhooks, links)")
    )
    api_token: str = field(
        default="change-me", metadata=_meta("bearer token for agent/supervisor APIs", secret=True)
    )

    # --- messaging --------------------------------------------------------------
    twilio_account_sid: str = field(
        default="AC00000000000000000000000000000000", metadata=_meta("Twilio account SID")
    )
    twilio_auth_token: str = field(
        default="sandbox-token", metadata=_meta("Twilio auth token", secret=True)
    )
    twilio_base_url: str = field(
        default="sandbox",
        metadata=_meta("Twilio REST base URL; 'sandbox' = built-in local server, "
                       "empty = api.twilio.com"),
    )
    sms_from: str = field(default="+3197010200300", metadata=_meta("SMS sender"))
    whatsapp_from: str = field(default="whatsapp:+3197010200300", metadata=_meta("WA sender"))
    link_secret: str = field(
        default="change-me-link-secret", metadata=_meta("HMAC key for links", secret=True)
    )
    link_ttl_s: int = field(default=86400, metadata=_meta("validity of self-service links"))
    self_service_base_url: str = field(
        default="https://self.example.com", metadata=_meta("base of self-service/chat links")
    )
    link_tracking: bool = field(default=True, metadata=_meta(
        "links go through IVR_PUBLIC_URL/l/<key>, which records the open and redirects"))
    csat_skills: tuple[str, ...] = field(default=(), metadata=_meta(
        "skills whose callers get the 1-5 SMS survey after an agent call (comma-separated; "
        "* = every skill; empty = no survey)"))
    phone_number: str = field(default="+31201234567", metadata=_meta(
        "the number customers call (POST /api/contacts tells web and chat customers)"))
    online_code_ttl_s: int = field(default=1800, metadata=_meta(
        "how long a POST /api/contacts code (and the question it carries) waits for a call"))
    csat_voice_skills: tuple[str, ...] = field(default=(), metadata=_meta(
        "skills whose callers hear the 1-5 voice survey if they stay on the line after the "
        "agent hangs up (comma-separated; * = every skill; empty = none)"))

    @property
    def embedding_cache(self) -> Path:
        """Where the matcher caches its training embeddings. Not under data_dir: the
        entries are keyed by model and texts, so every node, test and checkout on the
        machine can share them, and a fresh data_dir does not re-embed the catalogue."""
        if self.nlu_cache_dir is not None:
            return self.nlu_cache_dir
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "kanaal" / "nlu"

    @property
    def spool_file(self) -> Path:
        """This process's contact spool: its own file in the (shared) spool folder."""
        folder = self.spool_dir or self.data_dir / "spool"
        return folder / f"contacts-{socket.gethostname()}-{os.getpid()}.jsonl"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'kanaal.db').resolve()}"

    def masked(self) -> dict[str, str]:
        """Every setting as text, secrets (and URL passwords) masked."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            text = _to_text(value)
            if f.metadata.get("secret") and text:
                text = _mask_url(text) if "://" in text else "****"
            out[f.name] = text
        out["database_url (effective)"] = _mask_url(self.effective_database_url)
        return out


def _to_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def _mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL (an http URL, say): mask the userinfo part
        if "@" in url:
            scheme, _, rest = url.partition("://")
            return f"{scheme}://****@{rest.split('@', 1)[1]}"
        return url


# --- parsing and validation ---------------------------------------------------------


def _env_name(name: str) -> str:
    return PREFIX + name.upper()


def _parse_float_nonneg(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{_env_name(name)}={raw!r}: expected a number") from None
    if value < 0:
        raise ConfigError(f"{_env_name(name)}={raw!r}: must not be negative")
    return value


def _parse_int(name: str, raw: str, lo: int = 0, hi: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{_env_name(name)}={raw!r}: expected a whole number") from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{_env_name(name)}={raw!r}: must be {bound}")
    return value


def _parse_tuple(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def _parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    name = f.name
    default = f.default
    if name.endswith("_port"):
        return _parse_int(name, raw, 1, 65535)
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return _parse_int(name, raw)
    if isinstance(default, float):
        return _parse_float_nonneg(name, raw)
    if isinstance(default, tuple):
        return _parse_tuple(raw)
    # By the annotation, not the default: optional folders (IVR_SPOOL_DIR, default None)
    # came through as str and crashed the node at start (found by a two-node e2e).
    if isinstance(default, Path) or "Path" in str(f.type):
        return Path(raw).expanduser() if raw else None
    return raw


def _validate(s: Settings) -> None:
    # One checker per concern, run in this order so the first reported error is stable.
    _validate_languages(s)
    _validate_database_url(s.database_url)
    _validate_choices(s)
    _validate_thresholds(s)
    _validate_urls(s)
    _validate_callbacks(s)


def _validate_callbacks(s: Settings) -> None:
    try:
        callback_policy(s)
    except CallbackError as exc:
        raise ConfigError(f"IVR_CALLBACK_*: {exc}") from None
    if "{number}" not in s.callback_endpoint:
        raise ConfigError(f"IVR_CALLBACK_ENDPOINT={s.callback_endpoint!r}: must contain "
                          "{number} (e.g. PJSIP/{number}@trunk)")
    if s.callback_poll_s <= 0 or s.callback_lease_s < 3 * s.callback_poll_s:
        raise ConfigError("IVR_CALLBACK_LEASE_S must be at least 3 x IVR_CALLBACK_POLL_S (> 0)")
    # TIMEOUT(absolute) has whole seconds, and a lease under 2 s would hand live calls
    # to a human on any hiccup of the event loop.
    if s.ari_lease_s != 0 and not 2 <= s.ari_lease_s <= 60:
        raise ConfigError(f"IVR_ARI_LEASE_S={s.ari_lease_s}: 0 (off) or 2-60 seconds")


def callback_policy(s: Settings) -> SlotPolicy:
    """The callback slot and retry rules from the settings (raises CallbackError)."""
    return policy_from(slot_s=s.callback_slot_s, lead_s=s.callback_lead_s,
                       capacity=s.callback_capacity, per_agent=s.callback_per_agent,
                       max_attempts=s.callback_max_attempts, retry_s=s.callback_retry_s,
                       strategy=s.callback_strategy,
                       default_strategy=s.callback_default_strategy)


def _validate_languages(s: Settings) -> None:
    if s.language_offer not in LANGUAGE_OFFERS:
        raise ConfigError(f"IVR_LANGUAGE_OFFER={s.language_offer!r}: one of "
                          f"{', '.join(LANGUAGE_OFFERS)}")
    langs = set(s.languages)
    if not langs or not langs <= set(LANGUAGES):
        raise ConfigError(
            f"IVR_LANGUAGES={','.join(s.languages)!r}: allowed languages are {', '.join(LANGUAGES)}"
        )
    if s.default_language not in s.languages:
        raise ConfigError(
            f"IVR_DEFAULT_LANGUAGE={s.default_language!r}: must be one of {', '.join(s.languages)}"
        )


def _validate_database_url(url: str) -> None:
    if not url:
        return
    from sqlalchemy.engine import make_url

    try:
        backend = make_url(url).get_backend_name()
    except Exception:
        raise ConfigError(
            f"IVR_DATABASE_URL={_mask_url(url)!r}: not a database URL; use e.g. "
            "sqlite:///var/kanaal.db or postgresql+psycopg://user:pass@host/db"
        ) from None
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"IVR_DATABASE_URL: backend {backend!r} is not supported; use sqlite or postgresql"
        )


def _validate_choices(s: Settings) -> None:
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"IVR_TIMEZONE={s.timezone!r}: not an IANA time zone") from None
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"IVR_LOG_LEVEL={s.log_level!r}: use DEBUG, INFO, WARNING or ERROR")
    if s.log_format not in ("text", "json"):
        raise ConfigError(f"IVR_LOG_FORMAT={s.log_format!r}: use text or json")
    if s.asr_engine not in ("auto", "vosk", "whisper"):
        raise ConfigError(f"IVR_ASR_ENGINE={s.asr_engine!r}: use auto, vosk or whisper")
    if s.whisper_window not in ("auto", "short", "full"):
        raise ConfigError(f"IVR_WHISPER_WINDOW={s.whisper_window!r}: use auto, short or full")
    if not 0 <= s.ack_after_ms <= 10000:
        raise ConfigError(f"IVR_ACK_AFTER_MS={s.ack_after_ms}: use 0 (off) to 10000")
    if not 1 <= s.whisper_batch <= 64:
        raise ConfigError(f"IVR_WHISPER_BATCH={s.whisper_batch}: use 1 to 64")
    if not 0 <= s.asr_threads <= 64:
        raise ConfigError(f"IVR_ASR_THREADS={s.asr_threads}: use 0 (shared pool) to 64")


def _validate_thresholds(s: Settings) -> None:
    if not 0 <= s.confirm_asr_below <= 1:
        raise ConfigError("IVR_CONFIRM_ASR_BELOW must be between 0 and 1")
    if not 0 <= s.reject_below <= s.confirm_below <= 1:
        raise ConfigError(
            "IVR_REJECT_BELOW and IVR_CONFIRM_BELOW must satisfy 0 <= reject <= confirm <= 1"
        )
    if s.pin_max_failures < 1:
        raise ConfigError(f"IVR_PIN_MAX_FAILURES={s.pin_max_failures}: at least 1")
    if s.max_reprompts > 5:
        raise ConfigError(f"IVR_MAX_REPROMPTS={s.max_reprompts}: at most 5 (callers give up)")
    if not (1 <= s.nlu_workers <= 16 and s.nlu_max_pending >= 1 and s.nlu_timeout_s > 0):
        raise ConfigError(
            f"IVR_NLU_WORKERS={s.nlu_workers}, IVR_NLU_MAX_PENDING={s.nlu_max_pending}, "
            f"IVR_NLU_TIMEOUT_S={s.nlu_timeout_s}: workers 1-16, max pending >= 1, "
            "timeout > 0")
    _validate_surge(s)


def _validate_surge(s: Settings) -> None:
    if s.surge_window_s < 60:
        raise ConfigError(f"IVR_SURGE_WINDOW_S={s.surge_window_s}: at least 60 seconds")
    if s.surge_ratio < 1:
        raise ConfigError(f"IVR_SURGE_RATIO={s.surge_ratio}: at least 1 (times the baseline)")
    if not 0 <= s.surge_fault_share <= 1:
        raise ConfigError(f"IVR_SURGE_FAULT_SHARE={s.surge_fault_share}: between 0 and 1")
    if s.surge_min_calls < 1:
        raise ConfigError(f"IVR_SURGE_MIN_CALLS={s.surge_min_calls}: at least 1")
    bad = [n for n in s.surge_sms_to if not (n.startswith("+") and n[1:].isdigit())]
    if bad:
        raise ConfigError(f"IVR_SURGE_SMS_TO: {', '.join(bad)} is not an E.164 number")
    if s.surge_webhook_url and not s.surge_webhook_url.startswith(("http://", "https://")):
        raise ConfigError("IVR_SURGE_WEBHOOK_URL: must start with http:// or https://")


def _validate_urls(s: Settings) -> None:
    for name in ("ari_url", "public_url", "self_service_base_url"):
        value = getattr(s, name)
        if not value.startswith(("http://", "https://")):
            raise ConfigError(f"{_env_name(name)}={value!r}: must start with http:// or https://")
    if s.twilio_base_url not in ("", "sandbox") and not s.twilio_base_url.startswith(
            ("http://", "https://")):
        raise ConfigError(f"IVR_TWILIO_BASE_URL={s.twilio_base_url!r}: use 'sandbox', an empty "
                          "value (api.twilio.com) or an http(s) URL")

def load_settings(
    *,
    env_file: str | Path | None = ".env",
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Build the Settings from the layered sources; raises ConfigError on a bad value."""
    import os

    layers: list[Mapping[str, str | None]] = []
    if env_file is not None and Path(env_file).is_file():
        layers.append(dotenv_values(env_file))
    layers.append(os.environ if environ is None else environ)
    by_env = {_env_name(f.name): f for f in fields(Settings)}
    raw: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in by_env and value is not None:
                raw[by_env[key].name] = value
            elif key.startswith(PREFIX) and key not in by_env and layer is not layers[-1]:
                # A typo in .env should not pass silently (the process env is full of noise).
                raise ConfigError(f"{key}: unknown setting; see `ivr config check --help`")
    for key, value in (overrides or {}).items():
        name = key.lower().removeprefix("ivr_")
        if name not in {f.name for f in fields(Settings)}:
            raise ConfigError(f"--set {key}: unknown setting")
        raw[name] = value
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in raw:
            values[f.name] = _parse_value(f, raw[f.name])
    settings = Settings(**values)
    _validate(settings)
    return settings


def parse_overrides(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def describe() -> list[tuple[str, str, str]]:
    """(env var, default, help) for every setting, for `ivr config check --help` and the README."""
    rows = []
    for f in fields(Settings):
        rows.append((_env_name(f.name), _to_text(f.default), str(f.metadata.get("help", ""))))
    return rows
