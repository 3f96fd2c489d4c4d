"""Request-body helpers shared by the web routes (and the Twilio sandbox in ivr.testing)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request


async def read_form(request: Request) -> dict[str, str]:
    """Parse an application/x-www-form-urlencoded body (all Twilio sends).

    Done by hand so the webhooks do not need python-multipart; a repeated key keeps
    its last value, which is fine for Twilio's single-valued fields.
    """
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return dict(parse_qsl(text, keep_blank_values=True))
