"""The call lease setting: on by default, 0 to turn it off, a sane range otherwise."""

from __future__ import annotations

import pytest

from ivr.config import ConfigError, load_settings


def test_the_lease_is_on_by_default_and_bounded() -> None:
    """5 s by default (a dead node's callers reach a human in about 5 s); 0 turns it off;
    under 2 s or over a minute is refused with the variable named."""
    assert load_settings(env_file=None, environ={}).ari_lease_s == 5.0
    assert load_settings(env_file=None, environ={"IVR_ARI_LEASE_S": "0"}).ari_lease_s == 0
    for bad in ("1", "61", "-3"):
        with pytest.raises(ConfigError, match="IVR_ARI_LEASE_S"):
            load_settings(env_file=None, environ={"IVR_ARI_LEASE_S": bad})
