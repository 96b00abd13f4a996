#!/usr/bin/env bash
# Installs workpath into .venv and the node tier's packages, builds the test cluster's binaries once (cached), and
# runs the whole test suite (the node tier builds its images on first use, then keeps them while inputs are unchanged).
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/service -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The node tier's Debian packages (containerd, runc, CNI plugins, buildah...): installed as root, else it skips.
bash scripts/setup-node.sh
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
