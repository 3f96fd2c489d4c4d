"""The recogniser's own bounded thread pool (IVR_ASR_THREADS): every packet's voice
detection runs there, not in asyncio's default pool shared with database calls and TTS."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from ivr.app import build_recognizer
from ivr.config import ConfigError, load_settings

from .conftest import RATE, silence

pytestmark = pytest.mark.slow


async def test_voice_detection_runs_in_the_recognisers_own_pool() -> None:
    settings = replace(load_settings(env_file=None, environ={}), asr_threads=2,
                       adaptive_end_of_turn=False)
    rec = build_recognizer(settings)
    stream = await rec.open_stream("en", sample_rate=RATE)
    ran_in: list[str] = []
    loop = asyncio.get_running_loop()
    # A hop through asyncio's default pool would show its name.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1, thread_name_prefix="default"))
    vad = stream._vad  # type: ignore[attr-defined]
    real = vad.feed

    def spy(pcm: bytes) -> object:
        import threading

        ran_in.append(threading.current_thread().name)
        return real(pcm)

    vad.feed = spy
    try:
        for _ in range(5):
            await stream.feed(silence(0.02))
    finally:
        await stream.close()
    assert len(ran_in) == 5 and all(n.startswith("asr") for n in ran_in), ran_in


def test_zero_threads_shares_the_default_pool_and_bad_counts_are_refused() -> None:
    from ivr.app import recognizer_pool

    base = load_settings(env_file=None, environ={})
    assert recognizer_pool(replace(base, asr_threads=0)) is None
    pool = recognizer_pool(replace(base, asr_threads=3))
    assert isinstance(pool, ThreadPoolExecutor) and pool._max_workers == 3
    pool.shutdown()
    with pytest.raises(ConfigError, match="IVR_ASR_THREADS"):
        load_settings(env_file=None, environ={"IVR_ASR_THREADS": "-1"})
