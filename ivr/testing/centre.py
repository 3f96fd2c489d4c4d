"""Helpers for tests of the contact centre on a real Asterisk (the rig)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ivr.telephony.ami import AmiClient
from ivr.testing.rig import Rig


async def clear_queue_members(ami: AmiClient) -> int:
    """Remove every member from every queue (the rig keeps members across runs in AstDB).

    Returns how many were removed.
    """
    status = await ami.queue_status()
    for member in status.members:
        await ami.queue_remove(member.queue, member.interface)
    return len(status.members)


@contextlib.asynccontextmanager
async def rig_ami(rig: Rig) -> AsyncIterator[AmiClient]:
    """A logged-in AMI client on the rig's Asterisk, for the duration of the block."""
    c = rig.credentials
    client = AmiClient("127.0.0.1", rig.ports.ami, username=c.ami_user, secret=c.ami_password)
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected(10)
        yield client
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def only_members(ami: AmiClient, queue: str, *interfaces: str) -> None:
    """Exactly these (unpaused) members in ``queue`` and no member anywhere else: a test
    that rings an agent must not depend on what an earlier test left in AstDB."""
    await clear_queue_members(ami)
    for interface in interfaces:
        await ami.queue_add(queue, interface)
