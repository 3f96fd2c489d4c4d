"""Helpers for tests of the contact centre on a real Asterisk (the rig)."""

from __future__ import annotations

from ivr.telephony.ami import AmiClient


async def clear_queue_members(ami: AmiClient) -> int:
    """Remove every member from every queue (the rig keeps members across runs in AstDB).

    Returns how many were removed.
    """
    status = await ami.queue_status()
    for member in status.members:
        await ami.queue_remove(member.queue, member.interface)
    return len(status.members)
