#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, then runs every tier
# (unit + property, sshd integration, real-engine end-to-end against the local lab).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not e2e"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
