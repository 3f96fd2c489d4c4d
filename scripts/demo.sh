#!/usr/bin/env bash
# First command of the README: set up, create the demo database, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ivr db seed --demo
exec .venv/bin/ivr demo "$@"
