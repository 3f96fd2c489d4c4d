#!/usr/bin/env bash
# Install everything Kanaal needs on a fresh Debian machine (idempotent, no prompts).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
missing=()
while read -r pkg; do
  [ -z "$pkg" ] || [[ "$pkg" == \#* ]] && continue
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done < scripts/apt-packages.txt
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Re-install only when the dependency contract changed.
stamp=".venv/.kanaal-deps-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages (first run takes a few minutes)"
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  # requirements.lock pins every package to the version the tests ran with
  # (regenerate: .venv/bin/python scripts/lock.py > requirements.lock)
  .venv/bin/pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import ivr, sqlalchemy, vosk" 2>/dev/null || .venv/bin/python -c "import ivr, sqlalchemy"
  rm -f .venv/.kanaal-deps-*
  touch "$stamp"
fi
