#!/usr/bin/env bash
# Installs workpath into .venv and runs the example fan-out routine in local mode (no cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/workpath dev examples.reports --workers 2 --run reports.build --param month=2026-10 "$@"
