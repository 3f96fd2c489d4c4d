"""A serving node in its own process, for tests that kill it (``kill -9``).

    python -m ivr.testing.node_process DATABASE_URL

Serves the rig named by the ``KANAAL_RIG_*`` environment variables (as the e2e
tests' fixture does) with the settings of ``ivr serve --rig``, and prints
``READY`` on stdout once ARI is connected and the live state is in sync.
``IVR_ARI_APP`` gives the node its own Stasis app, so two nodes can share the rig.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace

from ivr.cli.serve_cmd import rig_settings, serve_node
from ivr.config import load_settings
from ivr.testing.rig import rig_from_env
from ivr.web.app import free_port


async def _serve(database_url: str) -> None:
    rig = rig_from_env(log=lambda line: print(line, file=sys.stderr))
    port = free_port()
    # The default data folder: its trained-matcher cache makes start-up seconds, not
    # a minute of training on a busy machine.
    settings = rig_settings(load_settings(env_file=None, environ=dict(os.environ)), rig)
    # IVR_ARI_APP names this node's own Stasis app (two nodes on one Asterisk); the
    # rig's app otherwise.
    settings = replace(settings, database_url=database_url, web_port=port, agi_port=0,
                       public_url=f"http://127.0.0.1:{port}",
                       ari_app=os.environ.get("IVR_ARI_APP") or settings.ari_app)
    ready = asyncio.Event()
    node = asyncio.create_task(serve_node(settings, ready=ready))
    await ready.wait()
    print("READY", flush=True)
    await node


def main() -> None:
    asyncio.run(_serve(sys.argv[1]))


if __name__ == "__main__":
    main()
