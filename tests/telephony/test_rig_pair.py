"""`ivr rig up --asterisks 2`: the second Asterisk's root and ports (no Asterisk started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.testing.rig import COMPLETE_MARKER, STATE_FILE, RigError, rigs_from_env

ENV = {"KANAAL_RIG_ROOT": "/srv/rig-d", "KANAAL_RIG_SIP_PORT": "5770",
       "KANAAL_RIG_HTTP_PORT": "8788", "KANAAL_RIG_AMI_PORT": "5739",
       "KANAAL_RIG_AGI_PORT": "5273", "KANAAL_RIG_AGENT_BASE_PORT": "5881"}


def test_the_second_asterisk_gets_its_own_root_and_ports_200_up() -> None:
    first, second = rigs_from_env(2, ENV)
    assert second.root == Path("/srv/rig-d-2") and second.clone_from == first.root
    p = second.ports
    assert (p.sip, p.http, p.ami, p.agi, p.agent_base) == (5970, 8988, 5939, 5473, 6081)
    assert second.credentials == first.credentials  # one node config fits both


def test_the_second_asterisk_is_placed_by_its_own_variables() -> None:
    env = {**ENV, "KANAAL_RIG2_ROOT": "/srv/rig-e", "KANAAL_RIG2_SIP_PORT": "6000"}
    _, second = rigs_from_env(2, env)
    assert second.root == Path("/srv/rig-e") and second.ports.sip == 6000
    assert second.ports.http == 8988


def test_only_one_or_two_asterisks() -> None:
    assert len(rigs_from_env(1, ENV)) == 1
    with pytest.raises(RigError, match="1 or 2"):
        rigs_from_env(3, ENV)


def test_the_second_root_is_a_copy_of_the_first_without_its_run_state(tmp_path: Path) -> None:
    source = tmp_path / "rig"
    (source / "etc/asterisk").mkdir(parents=True)
    (source / "etc/asterisk/pjsip.conf").write_text("[transport-udp]\n")
    (source / COMPLETE_MARKER).write_text("sid\n")
    (source / STATE_FILE).parent.mkdir(parents=True)
    (source / STATE_FILE).write_text('{"pid": 1}')
    _, second = rigs_from_env(2, {"KANAAL_RIG_ROOT": str(source)})
    second.build()
    assert second.built and second.root == tmp_path / "rig-2"
    assert (second.root / "etc/asterisk/pjsip.conf").read_text() == "[transport-udp]\n"
    assert not (second.root / STATE_FILE).exists()  # the source's Asterisk, not this one
    assert (second.root / "proc").is_dir()
