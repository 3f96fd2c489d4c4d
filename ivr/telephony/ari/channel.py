"""AriCallChannel: the CallChannel port on a live Asterisk channel in Stasis.

Layout of one call (see ARCHITECTURE.md, verified on Asterisk 22):

* the caller stays alone in Stasis; prompts are channel playbacks. Putting the
  caller in a bridge with the ASR leg would suspend the feed during prompts
  (no barge-in);
* caller audio comes from a snoop channel (spy=in) bridged, in a private mixing
  bridge, with an externalMedia channel that sends slin16 RTP to our socket;
* every wait runs on the clock: a silent leg sends no packets at all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ivr.domain.flow.events import FlowEvent, Matched
from ivr.domain.model import (
    Caller,
    ContactSnapshot,
    Language,
    RouteDecision,
    Utterance,
    known_language,
)
from ivr.domain.ports import (
    CallerHungUp,
    PortError,
    Prompt,
    Recognizer,
    RecognizerStream,
)
from ivr.telephony.ari.client import AriClient, AriError, AriNotFound, Subscription
from ivr.telephony.ari.events import (
    AriEvent,
    BridgeDestroyed,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelInfo,
    Dial,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from ivr.telephony.callerid import parse_caller
from ivr.telephony.handoff import handoff_variables
from ivr.telephony.media import RtpReceiver
from ivr.telephony.prompts import warming_slot

log = logging.getLogger(__name__)

CATCH_UP_FRAMES = 9  # at most 200 ms of audio per recogniser feed when behind


class AnswerBacklog:
    """How many of a node's callers have finished speaking and wait for the answer.

    Shared by the calls of one ARI app (one event loop, so no lock): a turn that ends
    behind ``AriChannelSettings.ack_busy_turns`` others acknowledges at once.
    """

    def __init__(self) -> None:
        self.waiting = 0


class PromptResolver(Protocol):
    """Turns a Prompt into something Asterisk can play (a ``sound:`` URI)."""

    async def resolve(self, prompt: Prompt) -> str:
        """``sound:`` URI of the prompt's audio; may raise (the prompt is then skipped)."""


@dataclass(frozen=True, slots=True)
class AriChannelSettings:
    """Tunables of the ARI call channel (taken from the typed Settings by app.py)."""

    handoff_context: str = "ivr-handoff"
    handoff_extension: str = "s"
    handoff_priority: int = 1
    media_host: str = "127.0.0.1"  # our RTP socket: Asterisk sends externalMedia here
    sample_rate: int = 16000  # slin16
    end_silence_s: float = 0.8  # no packets this long after speech -> end of utterance
    max_speech_s: float = 20.0
    inter_digit_s: float = 3.0
    max_prompt_s: float = 120.0  # safety net if a PlaybackFinished never comes
    setup_timeout_s: float = 5.0
    # A recogniser call (open, feed, finish, close) that takes longer than this counts as
    # failed: a hung ASR engine must cost the caller one turn (keypad, or "sorry, once
    # more"), not hold them in silence while the lease keeps the call alive.
    asr_timeout_s: float = 10.0
    # The app renews TIMEOUT(absolute) to this while it serves the call (a lease): if
    # the node dies, Asterisk takes the caller out of Stasis to the dialplan's T
    # extension (a human) within this time instead of leaving them in silence.
    # Renewed every fifth of it over AMI (``LeaseRenewer``), not ARI: ARI's variable
    # set is queued behind the channel's playback and timed out during long prompts.
    # 5 s keeps a dead node's callers within ~5 s of a human; an event loop stalled
    # for more than 4 s sends its callers to a human too (the safe side).
    lease_s: float = 5.0
    # While AMI cannot renew (down, or slower than half the lease), ARI does, with
    # this longer lease: ARI's set waits behind the prompt playing, so a short one
    # would run out during a long prompt and send a live caller to a human. An AMI
    # outage only slows node-death detection to this (a double fault), never ends
    # calls.
    degraded_lease_s: float = 40.0
    default_region: str = "NL"
    max_buffered_digits: int = 32
    # After the caller's last word, if the next prompt has not started this long
    # after the end of speech was detected, say "One moment, let me check that" so a
    # slow back end (CRM lookup, matcher) never leaves dead air; 0 = never.
    ack_after_s: float = 0.7
    # A turn that ends while this many other callers of the node are already waiting
    # for their answer says "one moment" after ``ack_busy_after_s`` instead: the
    # recogniser then works through a queue (20 turns ending together take ~2.5 s of
    # this machine's two cores with tiny.en, batched or not), so the answer is seconds
    # away and waiting the full ``ack_after_s`` first only adds dead air. Three: one or
    # two turns ahead cost a lone decode's ~0.2 s each, where the acknowledgement
    # (about 1.5 s of audio, the answer queued behind it) would delay the answer.
    ack_busy_turns: int = 3
    ack_busy_after_s: float = 0.1


# (channel name, seconds) -> sets the channel's absolute timeout now (AMI AbsoluteTimeout)
LeaseRenewer = Callable[[str, int], Awaitable[object]]


class CallState(enum.StrEnum):
    """Where the call is; each channel method checks it first."""

    RINGING = "ringing"
    ACTIVE = "active"
    HANDED_OFF = "handed_off"
    GONE = "gone"  # the caller hung up
    CLOSED = "closed"  # we hung up


@dataclass(frozen=True, slots=True)
class BargeIn:
    """One barge-in: how long from speech detected to the prompt stopped."""

    detect_to_stop_request_ms: float
    detect_to_finished_ms: float | None
    detected_at: float = 0.0  # loop time the recogniser reported speech


@dataclass(frozen=True, slots=True)
class ResponseTiming:
    """One turn: from end of speech (detected) to the answer's playback request.

    ``silence_wait_ms`` is the endpointer's wait after the last speech frame
    (configured, reported separately); the rest is our processing.
    """

    silence_wait_ms: float
    asr_ms: float  # end of speech -> recogniser result
    response_ms: float  # end of speech -> next prompt's play request accepted
    reason: str
    # The rest of response_ms, in order: the flow (understanding, decision, lookups)
    # until it asks for the next prompt, that prompt's audio (TTS or cache), and
    # Asterisk accepting the play request.
    flow_ms: float = 0.0
    tts_ms: float = 0.0
    play_ms: float = 0.0
    # flow_ms split: the intent matcher (its pool wait included; 0 when the turn was
    # not matched, e.g. a keypad or yes/no turn) and the rest of the flow (routing,
    # lookups, the contact record's saves).
    understanding_ms: float = 0.0
    decision_ms: float = 0.0
    # How the recogniser decided the turn was over ("adaptive", "endpoint: <why not
    # earlier>"; empty when it did not say) and its speculative decode's wall time.
    end_of_turn: str = ""
    early_decode_ms: float | None = None


@dataclass(slots=True)
class CallStats:
    """Figures a call collects for benches and e2e tests."""

    barge_ins: list[BargeIn] = field(default_factory=list)
    responses: list[ResponseTiming] = field(default_factory=list)
    frames_fed: int = 0
    dtmf: list[str] = field(default_factory=list)
    media_errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class _SpeechStarted(AriEvent):
    """Local event from the audio task: the recogniser heard speech."""

    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class _SpeechEnded(AriEvent):
    """Local event from the audio task: the utterance is over (``reason`` says why)."""

    reason: str
    at: float = 0.0  # loop time the end was detected
    last_frame_at: float = 0.0  # loop time of the last frame before it
    end_of_turn: str = ""  # the recogniser's account of the decision (RecognitionEvent)
    early_decode_ms: float | None = None


@dataclass(slots=True, kw_only=True)
class _ListenTurn:
    """Mutable state of one ``listen`` turn, shared by the helpers that advance it."""

    stream: RecognizerStream | None  # None: no ASR this turn (or it failed), keypad only
    timeout_s: float
    pb_id: str | None = None
    prompt_deadline: float = 0.0
    no_input_at: float | None = None  # set once the prompt is over and no speech came
    speech_at: float | None = None

    def deadline(self, s: AriChannelSettings) -> float:
        """Loop time at which the turn gives up waiting for its next event."""
        if self.speech_at is not None:
            # Backstop only: the audio task normally ends speech itself (silence,
            # endpoint or max_speech); this covers a task that never reports.
            return self.speech_at + s.max_speech_s + s.end_silence_s + 2
        if self.no_input_at is not None:
            return self.no_input_at
        return self.prompt_deadline


@dataclass(frozen=True, slots=True)
class _TurnOver:
    """A finished ``listen`` turn; ``utterance`` None means no input."""

    utterance: Utterance | None


class AriCallChannel:
    """CallChannel on an ARI channel. One instance per call, driven by one task."""

    def __init__(
        self,
        client: AriClient,
        events: Subscription,
        channel: ChannelInfo,
        *,
        session_id: str,
        recognizer: Recognizer | None,
        prompts: PromptResolver,
        settings: AriChannelSettings | None = None,
        renew_lease: LeaseRenewer | None = None,
        cli_trusted: bool = True,
        backlog: AnswerBacklog | None = None,
    ) -> None:
        """``cli_trusted``: the dialplan vouches for the caller ID (see ``cli_trust_of``);
        ``backlog``: the node's callers waiting for an answer (shared by its calls)."""
        self._client = client
        self._renew_lease = renew_lease
        self._events = events
        self._info = channel
        self._id = channel.id
        self._session_id = session_id
        self._recognizer = recognizer
        self._prompts = prompts
        self._s = settings or AriChannelSettings()
        self._backlog = backlog or AnswerBacklog()
        self._awaiting_answer = False  # counted in ``_backlog.waiting``
        self._caller = parse_caller(
            channel.caller_number, self._s.default_region, dialed=channel.exten or None,
            trusted=cli_trusted,
        )
        self.state = CallState.RINGING
        self._lease: asyncio.Task[None] | None = None
        self.stats = CallStats()
        # The last turn's timing until the next prompt plays (response_ms etc. filled in
        # then), and the intent matcher's time for it (``note_understanding``).
        self._pending_turn: tuple[float, ResponseTiming] | None = None  # (end time, timing)
        self._understanding_ms = 0.0
        # The input turn (listen or digit collection) under way: its prompt, and whether
        # the caller has answered yet. See ``awaiting_input``.
        self._input_open = False
        self._input_pb: str | None = None
        self._input_heard = False
        self._digits: collections.deque[str] = collections.deque(
            maxlen=self._s.max_buffered_digits
        )
        self._finished_playbacks: set[str] = set()
        self._playback_seq = 0
        self._language: Language = "en"
        # media leg (snoop + externalMedia + bridge), set up on the first listen
        self._rtp: RtpReceiver | None = None
        self._media_ids: dict[str, str] = {}
        self._media_broken = False
        self._asr_hung = False  # a recogniser call timed out: keypad only from then on
        self._loop = asyncio.get_running_loop()
        # The "one moment" timer of the turn just heard (cancelled by the next prompt).
        self._ack: asyncio.Task[None] | None = None
        self.acks = 0  # how often the caller heard it (benches, tests)

    # ------------------------------------------------------------ identity
    @property
    def caller(self) -> Caller:
        return self._caller

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def channel_id(self) -> str:
        return self._id

    def _now(self) -> float:
        return self._loop.time()

    # -------------------------------------------------------------- events
    def _check_alive(self) -> None:
        if self.state in (CallState.GONE, CallState.CLOSED):
            raise CallerHungUp(self._id)
        if self.state is CallState.HANDED_OFF:
            raise CallerHungUp(f"{self._id} was handed off")

    async def _next(self, deadline: float | None) -> AriEvent | None:
        """Next event (None at ``deadline``), with the bookkeeping every wait needs."""
        self._check_alive()
        within = None if deadline is None else deadline - self._now()
        if within is not None and within <= 0:
            return None
        ev = await self._events.get(within)
        if ev is None:
            return None
        self._note(ev)
        self._check_alive()
        return ev

    def _note(self, ev: AriEvent) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s <- %s %s", self._id, type(ev).__name__, ",".join(ev.resource_ids()))
        caller_gone = isinstance(ev, (StasisEnd, ChannelHangupRequest, ChannelDestroyed))
        if caller_gone and ev.resource_ids()[:1] == (self._id,):
            if self.state is not CallState.HANDED_OFF:
                self.state = CallState.GONE
            return
        if isinstance(ev, ChannelDtmfReceived) and ev.channel.id == self._id:
            # A flood only ever fills a small ring buffer: the oldest digits fall out.
            if ev.digit in "0123456789*#ABCD" and len(ev.digit) == 1:
                self._digits.append(ev.digit)
                self.stats.dtmf.append(ev.digit)
                del self.stats.dtmf[: -self._s.max_buffered_digits * 4]
            return
        if isinstance(ev, PlaybackFinished):
            self._finished_playbacks.add(ev.playback.id)
            self._events.discard(ev.playback.id)
            return
        media = set(self._media_ids.values())
        if isinstance(ev, (ChannelDestroyed, StasisEnd)) and ev.channel.id in media:
            self._media_broken = True
        if isinstance(ev, BridgeDestroyed) and ev.bridge.id in media:
            self._media_broken = True

    # ------------------------------------------------------------- answer
    async def answer(self) -> None:
        """Answer the call (idempotent)."""
        self._check_alive()
        if self.state is CallState.RINGING:
            try:
                await self._client.answer(self._id)
            except AriNotFound as exc:
                self.state = CallState.GONE
                raise CallerHungUp(self._id) from exc
            self.state = CallState.ACTIVE
            if self._s.lease_s > 0 and self._renew_lease is not None:
                self._lease = asyncio.create_task(self._keep_lease(), name=f"lease-{self._id}")

    async def _keep_lease(self) -> None:
        """Renew TIMEOUT(absolute) while the call is ours (see AriChannelSettings.lease_s)."""
        short = max(2, math.ceil(self._s.lease_s))
        long = max(short, math.ceil(self._s.degraded_lease_s))
        ari_due = 0.0  # loop time the long ARI lease needs renewing
        # The ARI renewal runs beside the loop: its set waits behind a playing prompt,
        # and the loop must keep trying AMI meanwhile, or the short lease it set last
        # runs out while AMI is already back (a live caller sent to a human).
        ari: asyncio.Task[bool] | None = None
        try:
            while self.state is CallState.ACTIVE:
                if ari is not None and ari.done():
                    if not ari.result():
                        return  # the channel is gone: nothing left to renew
                    ari = None
                if await self._renew_over_ami(short):
                    ari_due = 0.0
                elif self._now() >= ari_due and ari is None:
                    ari = asyncio.create_task(self._renew_over_ari(long))
                    ari_due = self._now() + long / 5
                await asyncio.sleep(self._s.lease_s / 5)
        finally:
            if ari is not None:
                ari.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ari

    async def _renew_over_ami(self, seconds: int) -> bool:
        assert self._renew_lease is not None  # started only with a renewer
        try:
            # A hung AMI must not hold the renewals until the lease runs out.
            async with asyncio.timeout(max(0.5, self._s.lease_s / 2)):
                await self._renew_lease(self._info.name, seconds)
            return True
        except Exception as exc:
            # "No such channel": the caller hung up between two renewals (the soak logged
            # one per 40 calls); the ARI renewal finds the channel gone and ends the loop.
            level = logging.INFO if "No such channel" in str(exc) else logging.WARNING
            log.log(level, "lease renewal of %s over AMI failed (%s); %d s over ARI",
                    self._id, exc or type(exc).__name__, self._s.degraded_lease_s)
            return False

    async def _renew_over_ari(self, seconds: int) -> bool:
        """False: the channel is gone (nothing left to renew)."""
        try:
            await self._client.set_variable(self._id, "TIMEOUT(absolute)", str(seconds))
        except AriNotFound:
            return False
        except AriError as ari_exc:  # the next renewal may get through
            log.warning("lease renewal of %s over ARI failed: %s", self._id, ari_exc)
        return True

    async def _stop_lease(self) -> None:
        # Awaited, so no renewal is in flight when the call leaves Stasis: a late one
        # would cut the caller off in the queue.
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease

    # ------------------------------------------------------------ prompts
    async def _start_prompt(self, prompt: Prompt | None) -> str | None:
        """Start playing ``prompt``; returns the playback id, None if nothing plays."""
        self._check_alive()
        if prompt is None:
            return None
        self._cancel_ack()
        self._language = prompt.language
        entered = self._now()
        uri = await self._resolve(prompt)
        if uri is None:
            return None
        # The prompts that follow it in the same playback; one that cannot be resolved
        # is left out (the question itself still plays).
        uris = [uri, *[u for tail in prompt.then if (u := await self._resolve(tail))]]
        self._playback_seq += 1
        pb_id = f"{self._id}-pb{self._playback_seq}"
        self._events.add(pb_id, "playback")
        resolved = self._now()
        try:
            await self._client.play(self._id, uris, pb_id)
            if self._pending_turn is not None:
                self._record_response(*self._pending_turn, entered, resolved)
        except AriNotFound as exc:
            self._events.discard(pb_id)
            # The channel or the sound is gone; only the channel ends the call.
            if await self._client.get_channel(self._id) is None:
                self.state = CallState.GONE
                raise CallerHungUp(self._id) from exc
            log.error("prompt %s (%s) not playable: %s", prompt.key, uri, exc)
            return None
        except AriError as exc:
            self._events.discard(pb_id)
            log.error("prompt %s (%s) failed: %s", prompt.key, uri, exc)
            return None
        return pb_id

    async def _resolve(self, prompt: Prompt) -> str | None:
        """The sound of ``prompt``; None when it cannot be made (logged)."""
        try:
            return await self._prompts.resolve(prompt)
        except Exception as exc:  # a missing prompt must not end the call
            log.error("prompt %s could not be resolved: %s", prompt.key, exc)
            return None

    async def _stop_prompt(self, pb_id: str | None) -> None:
        if pb_id is None or pb_id in self._finished_playbacks:
            return
        try:
            await self._client.stop_playback(pb_id)
        except AriError as exc:
            log.warning("could not stop playback %s: %s", pb_id, exc)

    def _playing(self, pb_id: str | None) -> bool:
        return pb_id is not None and pb_id not in self._finished_playbacks

    async def say(self, prompt: Prompt) -> None:
        """Play a prompt to the end (DTMF pressed meanwhile is kept for the next turn)."""
        self._check_alive()
        pb_id = await self._start_prompt(prompt)
        deadline = self._now() + self._s.max_prompt_s
        try:
            if self._playing(pb_id) and self._rtp is None:
                # Build the ASR leg while the greeting plays, not after it: set up at
                # the first listen it left up to seconds of dead air (on a busy node)
                # between the greeting and the question. Events seen meanwhile
                # (playback finished, keys) are noted by _next as usual.
                await self._ensure_media()
            while self._playing(pb_id):
                if await self._next(deadline) is None:
                    break
        finally:
            if self.state is CallState.ACTIVE:
                await self._stop_prompt(pb_id)

    async def record_message(self, name: str, *, max_s: float, silence_s: float
                             ) -> str | None:
        """Record the caller (beep, then until silence, ``#`` or ``max_s``) into
        Asterisk's recording dir as ``<name>.wav``; the name, None if ARI refused."""
        self._check_alive()
        try:
            await self._client.record(self._id, name, max_s=max_s, silence_s=silence_s)
        except AriError as exc:
            log.warning("recording %s not started: %s", name, exc)
            return None
        deadline = self._now() + max_s + 5
        while self._now() < deadline:
            # _next notes a hang-up (CallerHungUp); Asterisk keeps what was recorded.
            await self._next(self._now() + 0.25)
            if await self._client.recording_state(name) not in ("queued", "recording",
                                                                "paused"):
                break
        return name

    # -------------------------------------------------------------- media
    async def _ensure_media(self) -> bool:
        """Set up snoop + externalMedia + bridge once; False if unavailable."""
        if self._rtp is not None and not self._media_broken:
            return True
        if self._media_broken or self._recognizer is None:
            return False
        ids = {
            "snoop": f"{self._id}-snoop",
            "em": f"{self._id}-em",
            "bridge": f"{self._id}-br",
        }
        self._media_ids = ids
        self._events.add(ids["snoop"])
        self._events.add(ids["em"])
        self._events.add(ids["bridge"], "bridge")
        try:
            # Open the socket first: Asterisk starts sending as soon as the leg is up.
            self._rtp = await RtpReceiver(self._s.media_host).start()
            host, port = self._rtp.address
            await self._client.snoop(self._id, snoop_id=ids["snoop"], spy="in")
            await self._client.external_media(
                channel_id=ids["em"], external_host=f"{host}:{port}", format="slin16"
            )
            # Adding to a bridge before the channels' StasisStart gives 422.
            pending = {ids["snoop"], ids["em"]}
            deadline = self._now() + self._s.setup_timeout_s
            while pending:
                ev = await self._next(deadline)
                if ev is None:
                    raise AriError(f"media legs never entered Stasis: {sorted(pending)}")
                if isinstance(ev, StasisStart):
                    pending.discard(ev.channel.id)
            await self._client.create_bridge(ids["bridge"], "mixing")
            await self._client.add_to_bridge(ids["bridge"], [ids["snoop"], ids["em"]])
        except AriError as exc:
            if await self._client.get_channel(self._id) is None:
                self.state = CallState.GONE
                await self._teardown_media()
                raise CallerHungUp(self._id) from exc
            log.error("ASR media setup failed, keypad only for this call: %s", exc)
            self.stats.media_errors.append(str(exc))
            await self._teardown_media()
            self._media_broken = True
            return False
        return True

    async def _teardown_media(self) -> None:
        """Remove the helper channels and bridge; safe to call at any step, twice."""
        ids, self._media_ids = self._media_ids, {}
        for key in ("snoop", "em"):
            if key in ids:
                try:
                    await self._client.hangup(ids[key])
                except AriError as exc:
                    log.warning("hangup of %s failed: %s", ids[key], exc)
        if "bridge" in ids:
            try:
                await self._client.destroy_bridge(ids["bridge"])
            except AriError as exc:
                log.warning("bridge %s destroy failed: %s", ids["bridge"], exc)
        for rid in ids.values():
            self._events.discard(rid)
        if self._rtp is not None:
            self._rtp.close()
            self._rtp = None

    async def _open_stream(self, phrases: Sequence[str], detect_language: bool = False
                           ) -> RecognizerStream | None:
        if self._recognizer is None or self._asr_hung or not await self._ensure_media():
            return None
        try:
            async with asyncio.timeout(self._s.asr_timeout_s):
                return await self._recognizer.open_stream(
                    self._language, sample_rate=self._s.sample_rate, phrases=phrases,
                    detect_language=detect_language,
                )
        except TimeoutError:
            # Each new turn would wait as long again, in silence, before its prompt:
            # the rest of this call is keypad only.
            log.error("recogniser hung opening a stream; keypad only for this call")
            self.stats.media_errors.append("open_stream: timeout")
            self._asr_hung = True
            return None
        except Exception as exc:  # ASR down: keypad still works
            log.error("recogniser failed to open a stream: %s", exc)
            self.stats.media_errors.append(f"open_stream: {exc}")
            return None

    async def _feed_audio(self, stream: RecognizerStream, rtp: RtpReceiver) -> None:
        """Audio task of one listen turn: feed frames, post speech start/end locally."""
        started_at: float | None = None
        last_frame = self._now()
        poll = min(0.1, self._s.end_silence_s / 4)
        while True:
            frame = await rtp.read(poll)
            now = self._now()
            if frame is None:
                # Clock, not packets: after speech the leg may simply go quiet.
                if started_at is not None and now - last_frame >= self._s.end_silence_s:
                    self._events.put(_SpeechEnded(type="_SpeechEnded", reason="silence",
                                                  at=now, last_frame_at=last_frame))
                    return
                continue
            last_frame = now
            # Frames that queued up while the recogniser was busy go in one feed: one
            # worker-thread hop per 20 ms frame let the voice detection of 20 callers
            # fall seconds behind on a loaded node (the turn's end heard ~2.4 s late).
            frame += rtp.take_queued(CATCH_UP_FRAMES)
            try:
                async with asyncio.timeout(self._s.asr_timeout_s):
                    ev = await stream.feed(frame)
            except Exception as exc:
                log.error("recogniser feed failed: %r", exc)
                self._events.put(_SpeechEnded(type="_SpeechEnded", reason="error"))
                return
            self.stats.frames_fed += 1
            if started_at is None and (ev.speech_started or ev.partial.strip()):
                started_at = now
                self._events.put(_SpeechStarted(type="_SpeechStarted", at=now))
            if started_at is not None and ev.endpoint:
                # The recogniser's endpointer waited ev.silence_ms after the last speech.
                self._events.put(_SpeechEnded(
                    type="_SpeechEnded", reason="endpoint", at=now,
                    last_frame_at=now - ev.silence_ms / 1000, end_of_turn=ev.end_of_turn,
                    early_decode_ms=ev.early_decode_ms))
                return
            if started_at is not None and now - started_at >= self._s.max_speech_s:
                self._events.put(_SpeechEnded(type="_SpeechEnded", reason="max_speech"))
                return

    # ------------------------------------------------------------- listen
    def _open_input(self, pb_id: str | None) -> None:
        self._input_open, self._input_pb, self._input_heard = True, pb_id, False

    @property
    def awaiting_input(self) -> bool:
        """The IVR has asked (its prompt is over) and waits for the caller, who has not
        answered yet. Test callers and benches read it to take their turn."""
        return self._input_open and not self._input_heard and \
            not self._playing(self._input_pb)

    @property
    def asking(self) -> bool:
        """The prompt of an input turn is playing and the caller has not answered yet:
        a test caller that barges in on purpose talks over this prompt."""
        return self._input_open and not self._input_heard and self._playing(self._input_pb)

    async def listen(
        self, prompt: Prompt | None, *, timeout_s: float, phrases: Sequence[str] = (),
        detect_language: bool = False,
    ) -> Utterance | None:
        """Prompt (barge-in on speech or DTMF), then return speech or a keypad digit."""
        self._check_alive()
        self._digits.clear()
        if prompt is not None:
            self._language = prompt.language  # the stream below hears the prompt's language
        stream = await self._open_stream(phrases, detect_language)
        feeder: asyncio.Task[None] | None = None
        if stream is not None and self._rtp is not None:
            self._rtp.drain()  # audio from before this turn is not an answer to it
            feeder = asyncio.create_task(self._feed_audio(stream, self._rtp))
        turn = _ListenTurn(stream=stream, timeout_s=timeout_s)
        try:
            turn.pb_id = await self._start_prompt(prompt)
            self._open_input(turn.pb_id)
            turn.prompt_deadline = self._now() + self._s.max_prompt_s
            turn.no_input_at = None if self._playing(turn.pb_id) else self._now() + timeout_s
            return await self._run_turn(turn)
        finally:
            self._input_open = False
            if feeder is not None:
                await self._stop_feeder(feeder)
            if self.state is CallState.ACTIVE:
                await self._stop_prompt(turn.pb_id)
            if turn.stream is not None:
                await self._close_stream(turn.stream)

    async def _run_turn(self, turn: _ListenTurn) -> Utterance | None:
        """Wait for a digit, the end of speech or a deadline; the turn's answer."""
        while True:
            if self._digits:
                digit = self._digits.popleft()
                await self._stop_prompt(turn.pb_id)
                return Utterance(text=digit, confidence=1.0, dtmf=digit)
            ev = await self._next(turn.deadline(self._s))
            over = (await self._on_turn_deadline(turn) if ev is None
                    else await self._on_turn_event(turn, ev))
            if over is not None:
                return over.utterance

    async def _on_turn_deadline(self, turn: _ListenTurn) -> _TurnOver | None:
        """The turn's current deadline passed: start the no-input wait or end the turn."""
        if turn.speech_at is None and turn.no_input_at is None:  # prompt never finished
            await self._stop_prompt(turn.pb_id)
            turn.no_input_at = self._now() + turn.timeout_s
            return None
        if turn.speech_at is None or turn.stream is None:
            return _TurnOver(None)
        return _TurnOver(await self._finish(turn.stream))

    async def _on_turn_event(self, turn: _ListenTurn, ev: AriEvent) -> _TurnOver | None:
        """Advance the turn on one event; a result when the turn is over."""
        if isinstance(ev, PlaybackFinished) and ev.playback.id == turn.pb_id:
            if turn.speech_at is None:
                turn.no_input_at = self._now() + turn.timeout_s
        elif isinstance(ev, _SpeechStarted) and turn.speech_at is None:
            turn.speech_at = ev.at
            self._input_heard = True
            if self._playing(turn.pb_id):
                await self._barge_in(turn.pb_id, ev.at)
        elif isinstance(ev, _SpeechEnded) and turn.stream is not None:
            return await self._on_speech_ended(turn, turn.stream, ev)
        return None

    async def _on_speech_ended(
        self, turn: _ListenTurn, stream: RecognizerStream, ev: _SpeechEnded
    ) -> _TurnOver | None:
        """The audio task ended the utterance: finish it and remember the turn timing."""
        if turn.speech_at is None:  # feed error before speech: keypad only now
            turn.stream = None
            if turn.no_input_at is None and not self._playing(turn.pb_id):
                turn.no_input_at = self._now() + turn.timeout_s
            return None
        end_at = ev.at or self._now()
        self._start_ack(end_at, self._await_answer())
        utterance = await self._finish(stream)
        self._understanding_ms = 0.0
        # Completed by ``_record_response`` when the next prompt plays.
        self._pending_turn = (end_at, ResponseTiming(
            (end_at - ev.last_frame_at) * 1000 if ev.last_frame_at else 0.0,
            (self._now() - end_at) * 1000, 0.0, ev.reason,
            end_of_turn=ev.end_of_turn, early_decode_ms=ev.early_decode_ms))
        return _TurnOver(utterance)

    def note_understanding(self, ms: float) -> None:
        """The flow's intent matcher answered for the last turn after ``ms`` (a flow
        observer calls this): the turn's flow time is split into understanding and the
        rest. Several matches for one turn add up."""
        if self._pending_turn is not None:
            self._understanding_ms += ms

    def _record_response(self, end_at: float, turn: ResponseTiming, entered: float,
                         resolved: float) -> None:
        """The answer to ``turn`` (ended at ``end_at``) started playing: its timing."""
        self._pending_turn = None
        self._answered()
        now = self._now()
        flow_ms = max(0.0, (entered - end_at) * 1000 - turn.asr_ms)
        understanding = min(self._understanding_ms, flow_ms)
        self.stats.responses.append(dataclasses.replace(
            turn, response_ms=(now - end_at) * 1000, flow_ms=flow_ms,
            understanding_ms=understanding, decision_ms=flow_ms - understanding,
            tts_ms=(resolved - entered) * 1000, play_ms=(now - resolved) * 1000))

    def _await_answer(self) -> int:
        """This caller now waits for an answer; how many of the node's callers already did."""
        ahead = self._backlog.waiting - (1 if self._awaiting_answer else 0)
        if not self._awaiting_answer:
            self._awaiting_answer = True
            self._backlog.waiting += 1
        return ahead

    def _answered(self) -> None:
        """The answer started (or the call ended): this caller no longer waits."""
        if self._awaiting_answer:
            self._awaiting_answer = False
            self._backlog.waiting -= 1

    def _start_ack(self, end_at: float, ahead: int = 0) -> None:
        """Arm the "one moment" prompt for the answer to the turn that ended at ``end_at``,
        ``ahead`` other callers of the node waiting for theirs."""
        self._cancel_ack()
        if self._s.ack_after_s > 0:
            after = (min(self._s.ack_busy_after_s, self._s.ack_after_s)
                     if ahead >= self._s.ack_busy_turns else self._s.ack_after_s)
            self._ack = asyncio.create_task(self._ack_later(end_at + after),
                                            name=f"ack-{self._id}")

    def _cancel_ack(self) -> None:
        ack, self._ack = self._ack, None
        if ack is not None and not ack.done():
            ack.cancel()

    async def _ack_later(self, at: float) -> None:
        """Play the acknowledgement at ``at`` unless a prompt started first. The answer
        that follows queues behind it on the channel (Asterisk plays them in order)."""
        await asyncio.sleep(max(0.0, at - self._now()))
        if self.state is not CallState.ACTIVE:
            return
        from ivr.domain.prompts import render

        self._ack = None  # from here on the next prompt must not cancel this playback
        try:
            uri = await self._prompts.resolve(render("one_moment", self._language))
            self._playback_seq += 1
            pb_id = f"{self._id}-pb{self._playback_seq}"
            await self._client.play(self._id, uri, pb_id)
            self.acks += 1
        except Exception as exc:  # only a courtesy: the answer still comes
            log.warning("acknowledgement for %s not played: %s", self._id, exc)

    async def _stop_feeder(self, feeder: asyncio.Task[None]) -> None:
        """Cancel a turn's audio task and log how it ended."""
        feeder.cancel()
        # Bounded: the turn must never hang on its audio task (a swallowed
        # cancel once held calls in silence until the caller gave up).
        await asyncio.wait({feeder}, timeout=2.0)
        if not feeder.done():
            log.error("audio task of %s ignored its cancel; left behind", self._id)
        elif not feeder.cancelled() and feeder.exception() is not None:
            log.error("audio task of %s failed: %s", self._id, feeder.exception())

    async def _barge_in(self, pb_id: str | None, detected_at: float) -> None:
        """Stop the prompt because the caller talks; record how fast it stopped."""
        await self._stop_prompt(pb_id)
        requested = (self._now() - detected_at) * 1000
        finished: float | None = None
        # Wait briefly for Asterisk's PlaybackFinished to measure the real stop time.
        deadline = self._now() + 1.0
        while self._playing(pb_id):
            ev = await self._next(deadline)
            if ev is None:
                break
            if isinstance(ev, _SpeechEnded | _SpeechStarted):
                self._events.put(ev)  # not ours to consume: hand it back to listen()
                break
        if not self._playing(pb_id):
            finished = (self._now() - detected_at) * 1000
        self.stats.barge_ins.append(BargeIn(requested, finished, detected_at))
        log.info("barge-in: stop requested %.0f ms, finished %s ms", requested, finished)

    async def _finish(self, stream: RecognizerStream) -> Utterance:
        try:
            async with asyncio.timeout(self._s.asr_timeout_s):
                result = await stream.finish()
        except Exception as exc:
            log.error("recogniser finish failed: %r", exc)
            self._asr_hung = self._asr_hung or isinstance(exc, TimeoutError)
            return Utterance(text="", confidence=0.0)
        return Utterance(
            text=result.text.strip(),
            confidence=result.confidence,
            alternatives=tuple(text for text, _ in result.alternatives),
            language=known_language(result.language) if result.language else None,
        )

    async def _close_stream(self, stream: RecognizerStream) -> None:
        try:
            async with asyncio.timeout(self._s.asr_timeout_s):
                await stream.close()
        except Exception as exc:
            log.warning("recogniser close failed: %r", exc)

    # ------------------------------------------------------------- digits
    async def collect_digits(
        self, prompt: Prompt, *, max_digits: int, timeout_s: float
    ) -> str | None:
        """Collect up to ``max_digits`` DTMF digits; '#' ends early, '*' is ignored."""
        self._check_alive()
        self._digits.clear()
        max_digits = max(1, max_digits)
        digits = ""
        pb_id = await self._start_prompt(prompt)
        self._open_input(pb_id)
        try:
            prompt_deadline = self._now() + self._s.max_prompt_s
            wait_until = None if self._playing(pb_id) else self._now() + timeout_s
            while True:
                while self._digits:
                    d = self._digits.popleft()
                    self._input_heard = True
                    await self._stop_prompt(pb_id)
                    if d == "#":
                        return digits or None
                    if d.isdigit():
                        digits += d
                        if len(digits) >= max_digits:
                            return digits
                    wait_until = self._now() + self._s.inter_digit_s
                ev = await self._next(wait_until if wait_until is not None else prompt_deadline)
                if ev is None:
                    if wait_until is None:  # the prompt never reported its end
                        await self._stop_prompt(pb_id)
                        wait_until = self._now() + timeout_s
                        continue
                    return digits or None
                finished = isinstance(ev, PlaybackFinished) and ev.playback.id == pb_id
                if finished and wait_until is None:
                    wait_until = self._now() + timeout_s
        finally:
            self._input_open = False
            if self.state is CallState.ACTIVE:
                await self._stop_prompt(pb_id)

    # ----------------------------------------------------------- hand-off
    async def hand_off(self, decision: RouteDecision) -> None:
        """Attach the context as channel variables and continue into the hand-off context."""
        self._check_alive()
        variables = handoff_variables(decision, self._session_id, self._language)
        await self._stop_lease()
        await self._teardown_media()
        for name, value in variables.items():
            try:
                await self._client.set_variable(self._id, name, value)
            except AriNotFound as exc:
                self.state = CallState.GONE
                raise CallerHungUp(self._id) from exc
            except AriError as exc:  # the agent loses context, the caller still gets through
                log.error("could not set %s: %s", name, exc)
        try:
            # Keep this channel's events (Dial to the agent) after it leaves Stasis.
            await self._client.subscribe_channel(self._id)
        except AriError as exc:
            log.warning("could not subscribe to %s: %s", self._id, exc)
        try:
            await self._client.continue_in_dialplan(
                self._id,
                context=self._s.handoff_context,
                extension=self._s.handoff_extension,
                priority=self._s.handoff_priority,
            )
        except AriNotFound as exc:
            self.state = CallState.GONE
            raise CallerHungUp(self._id) from exc
        self.state = CallState.HANDED_OFF

    async def hang_up(self) -> None:
        """Hang up on the caller (no-op when already gone)."""
        if self.state in (CallState.GONE, CallState.CLOSED, CallState.HANDED_OFF):
            return
        await self._stop_lease()
        await self._teardown_media()
        self.state = CallState.CLOSED
        try:
            await self._client.hangup(self._id)
        except AriError as exc:
            log.warning("hangup of %s failed: %s", self._id, exc)

    async def watch_handoff(self, within_s: float) -> ChannelInfo | None:
        """After hand_off: the agent leg once a Dial to it is answered (for screen-pop).

        Needs the channel subscription hand_off makes; None if no agent within ``within_s``.
        """
        deadline = self._now() + within_s
        while True:
            within = deadline - self._now()
            if within <= 0:
                return None
            ev = await self._events.get(within)
            if ev is None:
                return None
            if isinstance(ev, Dial) and ev.dialstatus == "ANSWER":
                return ev.peer
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == self._id:
                return None

    async def prepare(self, prompt: Prompt) -> None:
        """PromptWarmer: synthesise ``prompt`` into the prompt cache now, so saying it
        later costs a cache hit (the resolver makes one file per text, once).

        One such synthesis at a time on the node: it runs in the default executor's
        threads, which the recogniser's voice detection and decodes and the database
        lookups share; with every call warming its answers at once (five calls at load
        17) the callers' speech went undetected. Ahead-of-time work must not take the
        threads the live turns need."""
        async with warming_slot():
            await self._prompts.resolve(prompt)

    async def close(self) -> None:
        """End of the call task: release media and the event subscription."""
        self._cancel_ack()
        self._answered()
        try:
            await self._stop_lease()
            await self._teardown_media()
        finally:
            self._events.close()


class TurnTimingObserver:
    """A flow observer that hands the intent matcher's time per turn to the call's
    channel, so a turn's timing says understanding and decision apart."""

    def __init__(self, channel: AriCallChannel) -> None:
        self._channel = channel

    async def on_event(self, event: FlowEvent, contact: ContactSnapshot) -> None:
        if isinstance(event, Matched):
            self._channel.note_understanding(event.match.processing_ms)


def is_helper_channel(info: ChannelInfo) -> bool:
    """Snoop/externalMedia legs: never treated as callers (e.g. orphans after a restart)."""
    return info.name.startswith(("Snoop/", "UnicastRTP/"))


def in_app(info: ChannelInfo, app: str) -> bool:
    """The channel sits in ``Stasis(app, ...)`` (its dialplan application)."""
    return info.app_name.lower() == "stasis" and info.app_data.split(",")[0].strip() == app


__all__ = [
    "AriCallChannel",
    "AriChannelSettings",
    "BargeIn",
    "CallState",
    "CallStats",
    "PortError",
    "PromptResolver",
    "ResponseTiming",
    "TurnTimingObserver",
    "in_app",
    "is_helper_channel",
]
