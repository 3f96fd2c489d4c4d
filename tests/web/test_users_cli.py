"""`ivr users ...`: accounts from the command line, without a TTY (passwords on stdin)."""

from __future__ import annotations

import json
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from ivr.cli import cli
from ivr.storage.db import make_engine, upgrade
from ivr.storage.tables import metadata
from ivr.storage.users import SqlUserStore, sha256_hex
from ivr.web.security import Passwords


def _run(tmp_path: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    env = {"IVR_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(cli, ["--env-file", str(tmp_path / "none.env"), *args],
                                input=stdin, env=env)
    return result.exit_code, result.output


def test_users_lifecycle(tmp_path: Path) -> None:
    """add (password from stdin, hashed with argon2), list --json, token shown once and
    stored hashed, passwd, disable; bad input fails with a reason."""
    code, out = _run(tmp_path, "users", "add", "Sam", "--role", "supervisor",
                     "--password-stdin", stdin="a-long-password\n")
    assert code == 0 and "sam added (supervisor)" in out
    code, out = _run(tmp_path, "users", "add", "sam", "--role", "admin", "--password-stdin",
                     stdin="a-long-password\n")
    assert code != 0 and "exists already" in out
    code, out = _run(tmp_path, "users", "add", "bo", "--role", "agent", "--password-stdin",
                     stdin="short\n")
    assert code != 0 and "at least 10" in out
    code, out = _run(tmp_path, "users", "add", "bo", "--role", "agent", "--agent", "404",
                     "--password-stdin", stdin="a-long-password\n")
    assert code != 0 and "no agent with code '404'" in out
    code, out = _run(tmp_path, "users", "token", "sam", "grafana")
    token = out.strip().splitlines()[-1]
    assert code == 0 and token.startswith("kn_")
    code, out = _run(tmp_path, "users", "list", "--json")
    listed = json.loads(out)["users"]
    assert listed == [{**listed[0], "username": "sam", "role": "supervisor", "active": True,
                       "agent_code": None, "api_tokens": 1}]
    engine = make_engine(f"sqlite:///{(tmp_path / 'kanaal.db').resolve()}")
    store = SqlUserStore(engine)
    found = store.credentials("sam")
    assert found is not None and found[1].startswith("$argon2id$")
    assert Passwords().verify(found[1], "a-long-password")
    assert store.token_user(token) is not None
    with engine.connect() as conn:
        hashes = conn.exec_driver_sql("SELECT token_hash FROM api_tokens").scalars().all()
    assert hashes == [sha256_hex(token)]
    assert _run(tmp_path, "users", "passwd", "sam", "--password-stdin",
                stdin="another-long-one\n")[0] == 0
    new_hash = store.credentials("sam")
    assert new_hash is not None and Passwords().verify(new_hash[1], "another-long-one")
    assert _run(tmp_path, "users", "disable", "sam")[0] == 0
    assert store.token_user(token) is None
    engine.dispose()


def test_password_prompt_without_stdin_flag(tmp_path: Path) -> None:
    """Without --password-stdin the password is prompted for twice (hidden)."""
    code, out = _run(tmp_path, "users", "add", "ada", "--role", "admin",
                     stdin="a-long-password\na-long-password\n")
    assert code == 0 and "ada added (admin)" in out


def test_migrations_match_the_tables(tmp_path: Path) -> None:
    """Migration 0004 creates exactly what ivr.storage.auth_tables and the wrap-up
    columns declare (Alembic finds nothing to autogenerate for them)."""
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    mine = [d for d in diff if any(name in repr(d) for name in
                                   ("users", "api_tokens", "sessions", "wrapup"))]
    assert mine == []
