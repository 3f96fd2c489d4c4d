"""scripts/audit.py: fails on a vulnerable locked package, skips plainly when unreachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_audit(tmp_path: Path, report: dict[str, object] | None) -> subprocess.CompletedProcess[str]:
    """Run the script with a stand-in pip-audit that writes ``report`` (None: no answer)."""
    fake = tmp_path / "pip-audit"
    body = "import sys\n"
    if report is not None:
        body += (f"out = sys.argv[sys.argv.index('-o') + 1]\n"
                 f"open(out, 'w').write({json.dumps(json.dumps(report))})\n")
    else:
        body += "sys.stderr.write('ConnectionError: no route to host\\n'); sys.exit(1)\n"
    fake.write_text(f"#!{sys.executable}\n{body}")
    fake.chmod(0o755)
    env = {**os.environ, "KANAAL_PIP_AUDIT": str(fake)}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "audit.py")], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_vulnerable_package_fails_the_audit(tmp_path: Path) -> None:
    """A known vulnerability in the lock is exit 1, with the package and advisory named."""
    r = run_audit(tmp_path, {"dependencies": [
        {"name": "jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95"}]},
        {"name": "click", "version": "8.1.0", "vulns": []}]})
    assert r.returncode == 1, r.stdout
    assert "jinja2 3.1.2: GHSA-h5c8-rqwp-cp95" in r.stdout and "FAILED" in r.stdout


def test_nothing_checked_is_skipped_not_passed(tmp_path: Path) -> None:
    """No service answer, or every package unchecked: exit 0 saying SKIPPED."""
    r = run_audit(tmp_path, None)
    assert r.returncode == 0 and "SKIPPED" in r.stdout and "could not be reached" in r.stdout
    r = run_audit(tmp_path, {"dependencies": [
        {"name": "click", "version": "8.1.0", "skip_reason": "Dependency not found on PyPI"}]})
    assert r.returncode == 0 and "SKIPPED" in r.stdout and "nothing was checked" in r.stdout
    r = run_audit(tmp_path, {"dependencies": [{"name": "click", "version": "8.1.0",
                                               "vulns": []}]})
    assert r.returncode == 0 and "audit: ok: 1 of 1" in r.stdout


def test_the_lock_pins_every_dependency() -> None:
    """requirements.lock has an exact version for each direct dependency in pyproject."""
    import re
    import tomllib

    pins = {ln.split("==")[0] for ln in (ROOT / "requirements.lock").read_text().splitlines()
            if "==" in ln and not ln.startswith("#")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        name = re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, name
