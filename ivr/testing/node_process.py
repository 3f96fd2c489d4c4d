"""A serving node in its own process, for tests that kill it (``kill -9``).

    python -m ivr.testing.node_process DATABASE_URL

Serves the rig named by the ``KANAAL_RIG_*`` environment variables (as the e2e
tests' fixture does) with the settings of ``ivr serve --rig``, and prints
``READY`` on stdout once ARI is connected and the live state is in sync.
``IVR_ARI_APP`` gives the node its own Stasis app, so two nodes can share the rig.

With ``KANAAL_STANDBY_ROOT`` and ``KANAAL_STANDBY_*_PORT`` (the ``KANAAL_RIG_*`` names
with ``STANDBY`` for ``RIG``) it also stands by for that rig's Asterisk, as
``ivr serve --standby`` does (the database must be PostgreSQL), and prints ``OWNER
<ari url>`` whenever it starts serving an Asterisk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import replace

from ivr.cli.serve_cmd import rig_settings, serve_owned
from ivr.config import Settings, load_settings
from ivr.logs import configure_logging
from ivr.testing.rig import Rig, rig_from_env
from ivr.web.app import free_port


def node_env(rig: Rig, **extra: str) -> dict[str, str]:
    """The environment of a node process serving ``rig`` (live routing on, like the
    e2e fixture's node); ``extra`` overrides, e.g. ``IVR_ARI_LEASE_S="0"``."""
    return {**os.environ, "IVR_LIVE_ROUTING": "true",
            "KANAAL_RIG_ROOT": str(rig.root), "KANAAL_RIG_SIP_PORT": str(rig.ports.sip),
            "KANAAL_RIG_HTTP_PORT": str(rig.ports.http),
            "KANAAL_RIG_AMI_PORT": str(rig.ports.ami), "KANAAL_RIG_AGI_PORT": str(rig.ports.agi),
            "KANAAL_RIG_AGENT_BASE_PORT": str(rig.ports.agent_base), **extra}


async def start_node_process(url: str, env: dict[str, str], *,
                             info: dict[str, int] | None = None) -> asyncio.subprocess.Process:
    """This module as a process on database ``url``; returns once it prints READY.
    ``info`` gets ``web_port``: where its web server and API listen."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.testing.node_process", url,
        stdout=asyncio.subprocess.PIPE, env=env)
    assert proc.stdout is not None
    # The node builds its matcher first: loaded from the fit cache in seconds, or
    # fitted (25-45 s on CI) when the catalogue or the fitting code changed.
    async with asyncio.timeout(300):
        while (line := await proc.stdout.readline()) != b"READY\n":
            if not line:
                raise RuntimeError("the node process ended before it was ready")
            if line.startswith(b"WEB ") and info is not None:
                info["web_port"] = int(line.split()[1])
    return proc


class _OwnerLines(logging.Handler):
    """``OWNER <url>`` on stdout when ivr.storage.ownership says this node took one."""

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("this node now serves Asterisk "):
            print("OWNER " + msg.rsplit(" ", 1)[-1], flush=True)  # <ari url>/<app>


def _node_settings(base: Settings, environ: dict[str, str], database_url: str) -> Settings:
    rig = rig_from_env(environ, log=lambda line: print(line, file=sys.stderr))
    port = free_port()
    settings = rig_settings(base, rig)
    # IVR_ARI_APP names this node's own Stasis app (two nodes on one Asterisk); the
    # rig's app otherwise (and always for the standby's Asterisk).
    return replace(settings, database_url=database_url, web_port=port, agi_port=0,
                   public_url=f"http://127.0.0.1:{port}",
                   ari_app=environ.get("IVR_ARI_APP") or settings.ari_app)


async def _serve(database_url: str) -> None:
    env = dict(os.environ)
    # The default data folder and embedding cache: the catalogue's example embeddings
    # and the fitted classifiers are cached there (ivr.nlu.fit_cache), so a node on an
    # unchanged catalogue loads its matcher instead of fitting it.
    base = load_settings(env_file=None, environ=env)
    settings = _node_settings(base, env, database_url)
    standby_env = {k.replace("KANAAL_STANDBY_", "KANAAL_RIG_", 1): v for k, v in env.items()
                   if k.startswith("KANAAL_STANDBY_")}
    standby = [_node_settings(base, standby_env, database_url)] if standby_env else []
    ownership = logging.getLogger("ivr.storage.ownership")
    ownership.addHandler(_OwnerLines())
    ownership.setLevel(logging.INFO)
    ready = asyncio.Event()
    node = asyncio.create_task(serve_owned(settings, standby=standby, ready=ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({node, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if node.done():
        waiting.cancel()
        node.result()
        return
    print(f"WEB {settings.web_port}", flush=True)
    print("READY", flush=True)
    await node


def main() -> None:
    # warnings and errors on stderr: a test that kills this node reads them on failure
    configure_logging(os.environ.get("KANAAL_NODE_LOG_LEVEL", "WARNING"))
    asyncio.run(_serve(sys.argv[1]))


if __name__ == "__main__":
    main()
