"""`ivr agents ...` and `ivr split ...` through click's CliRunner, on a temp SQLite file and
a FakeAmiServer (real TCP) running in its own thread's event loop."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ivr.cli import cli
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import SKILLS, seed_demo
from ivr.testing.fake_ami import FakeAmiServer

USER, SECRET = "kanaal", "s3cret"
QUEUES = [f"ivr-{name}" for name, _, _ in SKILLS] + ["ivr-general-own", "ivr-general-partner"]


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-agents") / "seeded.db"
    upgrade(f"sqlite:///{path}")
    eng = make_engine(f"sqlite:///{path}")
    seed_demo(eng)
    with eng.connect() as conn:  # fold the WAL into the file before copying it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return path


@pytest.fixture
def ami() -> Iterator[FakeAmiServer]:
    """The fake AMI in a thread: the CLI runs its own asyncio.run() in the test thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = FakeAmiServer(username=USER, secret=SECRET)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    server.add_queue(*QUEUES)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def base(seeded_db: Path, tmp_path: Path, ami: FakeAmiServer) -> list[str]:
    """Global options: a copy of the seeded database and the fake AMI's address."""
    db = tmp_path / "kanaal.db"
    shutil.copyfile(seeded_db, db)
    return ["--env-file", str(tmp_path / "none.env"), "--set", f"database_url=sqlite:///{db}",
            "--set", f"data_dir={tmp_path}", "--set", f"ami_port={ami.port}",
            "--set", f"ami_user={USER}", "--set", f"ami_secret={SECRET}"]


def run(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def doc(result: Result) -> dict[str, Any]:
    """The one JSON document on stdout (json.loads fails on anything else)."""
    parsed = json.loads(result.stdout)
    assert isinstance(parsed, dict)
    return parsed


def test_list_prints_one_json_document(base: list[str]) -> None:
    """`agents list --json`: the seeded agents with skills and state; text lists them too."""
    res = run([*base, "agents", "list", "--json"])
    assert res.exit_code == 0, res.stderr
    agents = doc(res)["agents"]
    assert isinstance(agents, list) and [a["code"] for a in agents] == [
        "1001", "1002", "1003", "1004"]
    assert agents[0]["skills"]["collections"] == 3 and agents[2]["centre_kind"] == "partner"
    text = run([*base, "agents", "list"])
    assert "PJSIP/agent4" in text.stdout and "logged out" in text.stdout


def test_add_then_duplicate_and_bad_values(base: list[str]) -> None:
    """add stores a profile; a taken code or a bad proficiency exits 1 with a clear message."""
    add = [*base, "agents", "add", "2001", "--name", "Noor Bakker", "--interface",
           "PJSIP/agent9", "--kind", "partner", "--languages", "nl,en", "--skill", "billing=4",
           "--skill", "general=2"]
    res = run([*add, "--json"])
    assert res.exit_code == 0, res.stderr
    assert doc(res)["skills"] == {"billing": 4, "general": 2}
    dup = run([*add, "--json"])
    assert dup.exit_code == 1 and doc(dup)["error"] == "duplicate_agent"
    assert "error:" in dup.stderr and "2001" in dup.stderr
    bad = run([*base, "agents", "add", "2002", "--name", "X", "--interface", "PJSIP/x",
               "--skill", "billing=9"])
    assert bad.exit_code == 1 and "1..5" in bad.stderr
    usage = run([*base, "agents", "add", "2003", "--name", "X", "--interface", "PJSIP/y",
                 "--skill", "billing"])
    assert usage.exit_code == 2 and "SKILL=PROFICIENCY" in usage.stderr
    upd = run([*base, "agents", "add", "2001", "--update", "--name", "Noor B.", "--interface",
               "PJSIP/agent9", "--skill", "tech=5", "--json"])
    assert upd.exit_code == 0 and doc(upd)["skills"] == {"tech": 5}


def test_login_pause_resume_logout(base: list[str], ami: FakeAmiServer) -> None:
    """The CLI connects to AMI, acts and disconnects; a second login exits 1."""
    res = run([*base, "agents", "login", "1002", "--json"])
    assert res.exit_code == 0, res.stderr
    out = doc(res)
    assert out["complete"] is True and "ivr-collections" in out["queues"]
    assert ami.queues["ivr-billing"]["PJSIP/agent2"].penalty == 2  # proficiency 3
    assert ami.queues["ivr-general-own"]["PJSIP/agent2"].name == "Daan Smit"
    again = run([*base, "agents", "login", "1002", "--json"])
    assert again.exit_code == 1 and doc(again)["error"] == "already_logged_in"
    assert "already logged in" in again.stderr
    paused = run([*base, "agents", "pause", "1002", "--reason", "lunch", "--json"])
    assert paused.exit_code == 0 and doc(paused)["pause_reason"] == "lunch"
    assert ami.queues["ivr-billing"]["PJSIP/agent2"].reason == "lunch"
    assert run([*base, "agents", "resume", "1002"]).exit_code == 0
    assert not ami.queues["ivr-billing"]["PJSIP/agent2"].paused
    out_res = run([*base, "agents", "logout", "1002", "--json"])
    assert out_res.exit_code == 0 and doc(out_res)["agent"]["logged_in"] is False
    assert all("PJSIP/agent2" not in m for m in ami.queues.values())
    assert ami.logins == 4 and not any(s.logged_in for s in ami._sessions)  # each disconnected


def test_unknown_agent_never_connects_to_ami(base: list[str], ami: FakeAmiServer) -> None:
    """A database-side refusal exits 1 without touching Asterisk."""
    res = run([*base, "agents", "login", "9999"])
    assert res.exit_code == 1 and "unknown agent '9999'" in res.stderr
    assert ami.connections == 0


def test_ami_down_exits_3_and_stores_nothing(base: list[str]) -> None:
    """Nothing listening on the AMI port: exit 3 with a clear message; still logged out."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    res = run([*base, "--set", f"ami_port={dead_port}", "agents", "login", "1001", "--json"])
    assert res.exit_code == 3 and doc(res)["error"] == "unavailable"
    assert "AMI unavailable" in res.stderr
    listed = doc(run([*base, "agents", "list", "--json"]))["agents"]
    assert isinstance(listed, list) and listed[0]["logged_in"] is False


def test_wrong_ami_secret_is_reported(base: list[str]) -> None:
    """A refused AMI login names the user instead of hanging."""
    res = run([*base, "--set", "ami_secret=wrong", "agents", "login", "1001"])
    assert res.exit_code == 3 and "login refused" in res.stderr


def test_split_set_and_show(base: list[str]) -> None:
    """split set validates both sides and the total; show prints one JSON document."""
    res = run([*base, "split", "set", "billing", "own=60", "partner=40", "--json"])
    assert res.exit_code == 0, res.stderr
    assert doc(res)["own_pct"] == 60
    shown = doc(run([*base, "split", "show", "--json"]))["splits"]
    assert [(s["skill"], s["own_pct"], s["partner_pct"]) for s in shown] == [
        ("billing", 60, 40), ("general", 70, 30)]
    assert "own  70%" in run([*base, "split", "show", "general"]).stdout
    for bad, why in ((["own=70", "partner=40"], "add up to 100"),
                     (["own=70"], "both sides"),
                     (["own=x", "partner=30"], "whole number"),
                     (["own=150", "partner=-50"], "between 0 and 100")):
        res = run([*base, "split", "set", "billing", *bad, "--json"])
        assert res.exit_code == 1 and doc(res)["error"] == "bad_split", bad
        assert why in res.stderr
    unknown = run([*base, "split", "set", "astrology", "own=50", "partner=50"])
    assert unknown.exit_code == 1 and "unknown skill" in unknown.stderr
    missing = run([*base, "split", "show", "tech", "--json"])
    assert missing.exit_code == 1 and doc(missing)["error"] == "not_found"
