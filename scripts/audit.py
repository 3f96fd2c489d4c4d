"""Audit requirements.lock for known vulnerabilities with pip-audit (CI step).

Fails (exit 1) when a locked package has a known vulnerability. When no vulnerability
service answers (offline, or an index mirror without PyPI's JSON API, as on the
development machines here), it says so plainly and exits 0: an audit that could not
run is reported as skipped, never as passed.

    .venv/bin/python scripts/audit.py [--service pypi|osv]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = Path(os.environ.get("KANAAL_LOCK_FILE") or ROOT / "requirements.lock")


def main(argv: list[str]) -> int:
    service = argv[argv.index("--service") + 1] if "--service" in argv else "pypi"
    tool = os.environ.get("KANAAL_PIP_AUDIT") or shutil.which(
        "pip-audit", path=str(Path(sys.executable).parent)) or shutil.which("pip-audit")
    if tool is None:
        print("audit: SKIPPED: pip-audit is not installed (scripts/setup.sh installs it)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        run = subprocess.run(
            [tool, "-r", str(LOCK), "--no-deps", "--disable-pip", "--progress-spinner", "off",
             "--vulnerability-service", service, "--format", "json", "-o", str(report)],
            capture_output=True, text=True, timeout=600, check=False)
        if not report.is_file():
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"audit: SKIPPED: the {service} vulnerability service could not be "
                  f"reached ({last[:200]})")
            return 0
        deps = json.loads(report.read_text())["dependencies"]
    audited = [d for d in deps if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    for d in vulnerable:
        ids = ", ".join(v["id"] for v in d["vulns"])
        print(f"audit: {d['name']} {d['version']}: {ids}")
    if vulnerable:
        print(f"audit: FAILED: {len(vulnerable)} of {len(deps)} locked packages have known "
              "vulnerabilities; upgrade them, then `python scripts/lock.py > requirements.lock`")
        return 1
    if not audited:
        print(f"audit: SKIPPED: the {service} vulnerability service answered for none of the "
              f"{len(deps)} locked packages (offline or an index mirror without PyPI's JSON "
              "API); nothing was checked")
        return 0
    print(f"audit: ok: {len(audited)} of {len(deps)} locked packages checked, no known "
          f"vulnerabilities ({len(deps) - len(audited)} could not be checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
