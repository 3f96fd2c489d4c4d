"""`ivr serve --standby`: refused without PostgreSQL, and the other node's file is read
on its own (no settings of this node leak into it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import pytest

from ivr.cli.serve_cmd import _standby_settings, app_name, same_asterisk_standby, serve_owned
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


def test_a_standby_app_on_the_same_asterisk_is_this_nodes_settings_for_that_app() -> None:
    """`--standby-app ivr` (the compose file's node B): the same Asterisk, database and
    media address, the other app; its web server and FastAGI bind free ports so they do
    not collide with this node's own; standing by for one's own app is refused."""
    own = replace(load_settings(env_file=None, environ={}), ari_app="ivr-b",
                  database_url="postgresql+psycopg://ivr@db/kanaal")
    other = same_asterisk_standby(own, "ivr")
    assert (other.ari_app, other.web_port, other.agi_port) == ("ivr", 0, 0)
    assert (other.ari_url, other.media_host, other.effective_database_url) == (
        own.ari_url, own.media_host, own.effective_database_url)
    assert app_name(other) != app_name(own)  # two advisory locks, two owners
    with pytest.raises(click.ClickException, match="own app"):
        same_asterisk_standby(own, "ivr-b")


def test_every_folder_setting_is_a_path_whatever_its_default() -> None:
    """IVR_SPOOL_DIR (default None, set by the compose file) came through as a str and
    the node crashed at start building its spool file name; every Path-typed setting,
    optional or not, is a Path when set."""
    import dataclasses

    from ivr.config import Settings

    folders = [f for f in dataclasses.fields(Settings) if "Path" in str(f.type)]
    assert {"spool_dir", "nlu_cache_dir", "data_dir"} <= {f.name for f in folders}
    environ = {f"IVR_{f.name.upper()}": f"/srv/kanaal/{f.name}" for f in folders}
    s = load_settings(env_file=None, environ=environ)
    for f in folders:
        assert getattr(s, f.name) == Path(f"/srv/kanaal/{f.name}"), f.name
    assert s.spool_file.parent == Path("/srv/kanaal/spool_dir")
