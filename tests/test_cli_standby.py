"""`ivr serve --standby`: refused without PostgreSQL, and the other node's file is read
on its own (no settings of this node leak into it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import pytest

from ivr.cli.serve_cmd import _standby_settings, serve_owned
from ivr.config import load_settings


async def test_a_standby_needs_postgresql(tmp_path: Path) -> None:
    settings = replace(load_settings(env_file=None, environ={}),
                       database_url=f"sqlite:///{tmp_path / 'k.db'}")
    with pytest.raises(click.ClickException, match="PostgreSQL"):
        await serve_owned(settings, standby=[settings])


def test_the_standby_reads_only_the_other_nodes_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "node-a.env"
    other.write_text("IVR_ARI_URL=http://10.0.0.5:8088\n"
                     "IVR_DATABASE_URL=postgresql+psycopg://ivr@db/kanaal\n")
    monkeypatch.setenv("IVR_ARI_URL", "http://127.0.0.1:8288")  # this node's own
    s = _standby_settings(str(other))
    assert s.ari_url == "http://10.0.0.5:8088"
    assert s.effective_database_url == "postgresql+psycopg://ivr@db/kanaal"
