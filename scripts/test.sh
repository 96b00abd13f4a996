#!/usr/bin/env bash
# Installs workpath into .venv, builds the test control plane once (cached), and runs the whole test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/service -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f tests/cluster/build.sh ]; then
  bash tests/cluster/build.sh
fi
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$code"
