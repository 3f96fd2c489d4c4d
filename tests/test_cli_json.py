"""`--json` commands, run as the installed `ivr` script: one JSON document on stdout,
logs on stderr without library request chatter or unmasked phone numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

IVR = Path(sys.executable).with_name("ivr")
NOISE = ("httpx:", "HTTP Request", "twilio.http_client", "httpx [", "twilio.http_client [")


@pytest.fixture(scope="module")
def base_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """`ivr` options for a seeded demo database in a temp dir (no .env from the checkout)."""
    tmp = tmp_path_factory.mktemp("cli-json")
    args = [str(IVR), "--env-file", str(tmp / "none.env"),
            "--set", f"database_url=sqlite:///{tmp / 'kanaal.db'}",
            "--set", f"data_dir={tmp}"]
    subprocess.run([*args, "db", "seed", "--demo"], check=True, capture_output=True,
                   timeout=300)
    return args


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    for marker in NOISE:
        assert marker not in done.stdout + done.stderr, marker


def test_demo_text_json_prints_one_document(base_args: list[str]) -> None:
    """`ivr demo --text --json`: stdout is exactly one JSON document, no request logs."""
    done = _run([*base_args, "demo", "--text", "--json"])
    doc = json.loads(done.stdout)
    assert doc["voice"] is None
    assert [r["scenario"] for r in doc["text"]][:3] == ["S1", "S1", "S1"]
    _assert_clean(done)


def test_call_text_json_prints_one_document(base_args: list[str]) -> None:
    """`ivr call --text ... --json`: stdout is exactly one JSON document, no request logs."""
    done = _run([*base_args, "call", "--text", "where is my order", "--from", "+447700900123",
                 "--json"])
    doc = json.loads(done.stdout)
    assert doc["caller"] == "+447700900123" and doc["intent"] == "order_status"
    _assert_clean(done)


def test_call_json_logs_are_json_lines_without_caller_number(base_args: list[str]) -> None:
    """With IVR_LOG_FORMAT=json at DEBUG (library request logs included) every stderr line
    is a JSON log object, and the caller's full number is only in the stdout document."""
    done = _run([*base_args, "--set", "log_format=json", "--set", "log_level=DEBUG",
                 "call", "--text", "ik ga verhuizen en wil mijn adres wijzigen",
                 "--text", "nee dank je", "--from", "+31633334444", "--json"])
    assert json.loads(done.stdout)["scenario"] == "S2"  # a WhatsApp link went out
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert all({"ts", "level", "logger", "session", "msg"} <= r.keys() for r in records)
    loggers = {r["logger"] for r in records}
    # Twilio's request log always; the HTTP stack's own lines too (which of httpx's,
    # httpcore's and urllib3's depends on timing: a run under load had no httpx line)
    assert "twilio.http_client" in loggers
    assert loggers & {"httpx", "httpcore.http11", "urllib3.connectionpool"}, loggers
    assert "+31633334444" not in done.stderr
