"""`ivr report` as the installed script: --json is one document, --csv rows, bad windows
exit 2 with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from ivr.storage.db import make_engine, upgrade
from ivr.storage.report_seed import seed_contacts, synthetic_contacts

IVR = Path(sys.executable).with_name("ivr")


def test_report_json_csv_and_bad_window(tmp_path: Path) -> None:
    """The same figures as JSON and CSV; --since garbage is a usage error (exit 2)."""
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_contacts(engine, synthetic_contacts(300, end=datetime.now(UTC), days=3, callers=90))
    engine.dispose()
    args = [str(IVR), "--env-file", str(tmp_path / "none.env"), "--set",
            f"database_url={url}", "--set", f"data_dir={tmp_path}", "report"]
    done = subprocess.run([*args, "--hours", "24", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert 95 <= doc["contacts"] <= 105 and doc["funnel"]
    done = subprocess.run([*args, "--hours", "24", "--csv"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and f"summary,,contacts,{doc['contacts']}" in done.stdout
    done = subprocess.run([*args, "--since", "last week"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "not a date" in done.stderr
