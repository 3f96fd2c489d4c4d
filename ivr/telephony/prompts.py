"""PromptResolver for Asterisk: pre-recorded prompts where they exist, synthesised
(and cached) audio for dynamic answers, written where Asterisk can read them.

``export_dir`` is the folder as this process sees it; ``asterisk_dir`` is the same
folder as Asterisk sees it (a chroot, a container volume, or the same path).
Asterisk plays ``sound:/abs/path`` without the extension.
"""

from __future__ import annotations

import asyncio
import filecmp
import logging
import os
import shutil
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ivr.domain.ports import Prompt
from ivr.speech.tts import PromptSynthesizer, TtsEngine

log = logging.getLogger(__name__)


class FilePromptResolver:
    """Prompt -> ``sound:`` URI of an 8 kHz WAV in a folder shared with Asterisk."""

    def __init__(self, *, tts: TtsEngine, static_dir: Path, export_dir: Path,
                 asterisk_dir: str | None = None) -> None:
        self._static = static_dir
        self._export = export_dir
        self._asterisk = (asterisk_dir or str(export_dir.resolve())).rstrip("/")
        self._synth = PromptSynthesizer(tts, export_dir / "dynamic")
        # One lock per exported file: simultaneous calls asking for the same recorded
        # prompt copy it once. Bounded by the number of recorded prompts; never popped,
        # so a late caller cannot get a fresh lock while an earlier copy still runs.
        self._exporting: dict[Path, asyncio.Lock] = {}
        # Exported copies compared with their recording by this process: a copy left by
        # an older release (the recordings were rebuilt since) is replaced, once.
        self._fresh: set[Path] = set()

    def _uri(self, path: Path) -> str:
        rel = path.relative_to(self._export).with_suffix("")
        return f"sound:{self._asterisk}/{rel.as_posix()}"

    def recorded(self, prompt: Prompt) -> Path | None:
        """The pre-recorded file for a prompt without run-time parameters, if there is one."""
        if prompt.params:
            return None
        path = self._static / prompt.language / f"{prompt.key}.wav"
        return path if path.is_file() else None

    def cached(self, prompt: Prompt) -> bool:
        """Whether ``prompt`` plays without synthesis now (recorded, or in the cache)."""
        return (self.recorded(prompt) is not None
                or self._synth.path_for(prompt.text, prompt.language).exists())

    async def audio_file(self, prompt: Prompt) -> Path:
        """The WAV this prompt is played from (recorded, or synthesised and cached)."""
        return self.recorded(prompt) or await self._synth.synthesize(prompt.text,
                                                                     prompt.language)

    async def resolve(self, prompt: Prompt) -> str:
        recorded = self.recorded(prompt)
        if recorded is not None:
            target = self._export / "static" / prompt.language / recorded.name
            if target not in self._fresh:
                await self._export_once(recorded, target)
            return self._uri(target)
        # Not recorded (just checked): synthesise without asking audio_file to look again.
        return self._uri(await self._synth.synthesize(prompt.text, prompt.language))

    async def _export_once(self, src: Path, dst: Path) -> None:
        lock = self._exporting.setdefault(dst, asyncio.Lock())
        async with lock:
            if dst not in self._fresh:  # another call may have exported it meanwhile
                await asyncio.to_thread(self._copy, src, dst)
                self._fresh.add(dst)

    @staticmethod
    def _copy(src: Path, dst: Path) -> None:
        if dst.exists() and filecmp.cmp(src, dst, shallow=False):
            return  # already the recording (exported earlier, or by another node)
        dst.parent.mkdir(parents=True, exist_ok=True)
        # Unique temp name: other processes (several nodes on one share) or a copy left
        # running by a cancelled call may write the same prompt at the same time; with
        # a shared "<key>.tmp" one rename found its temp file already moved away.
        tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(src, tmp)
            tmp.replace(dst)  # atomic: Asterisk never plays a half-copied file
        finally:
            tmp.unlink(missing_ok=True)


_WARMING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary())


def warming_slot() -> asyncio.Semaphore:
    """The node's (the running loop's) one slot for synthesis ahead of time: it runs in
    the default executor's threads, which voice detection, decodes and database lookups
    share; with every call warming its answers at once (five calls at load 17) callers'
    speech went undetected. Ahead-of-time work must not take the threads live turns need."""
    loop = asyncio.get_running_loop()
    slot = _WARMING.get(loop)
    if slot is None:
        slot = _WARMING[loop] = asyncio.Semaphore(1)
    return slot


@dataclass(frozen=True, slots=True)
class WarmUp:
    prompts: int
    made: int  # synthesised now (the rest were in the cache already)
    failed: int
    seconds: float


async def warm_up(resolver: FilePromptResolver, prompts: Sequence[Prompt], *,
                  duty: float = 0.5) -> WarmUp:
    """Have every prompt's audio in the cache (ivr.domain.flow.prepare.catalogue_prompts
    at node start). One synthesis at a time, in the node's warming slot, and after each
    one a pause so the voice takes at most ``duty`` of one core: a node that starts
    while callers are already on the line must not slow their turns to speed up a later
    caller's. A prompt that fails is logged and made when it is said."""
    t0 = time.monotonic()
    made = failed = 0
    for prompt in prompts:
        async with warming_slot():
            start = time.monotonic()  # the synthesis, not the wait for the slot
            try:
                fresh = not resolver.cached(prompt)
                await resolver.resolve(prompt)
            except Exception as exc:
                failed += 1
                log.warning("prompt %s not made ahead: %s", prompt.key, exc)
                continue
        if fresh:
            made += 1
            spent = time.monotonic() - start
            await asyncio.sleep(spent * (1.0 - duty) / duty)
    report = WarmUp(len(prompts), made, failed, time.monotonic() - t0)
    log.info("prompt cache warm: %d prompts, %d made now, %d failed, %.1f s",
             report.prompts, report.made, report.failed, report.seconds)
    return report
