#!/usr/bin/env bash
# Creates .venv from a Python >= 3.12 and installs workpath with its dev extras.
# Does nothing when the environment is already up to date with pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

is_recent() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

find_python() {
  local candidate
  for candidate in "${WORKPATH_PYTHON:-}" python3.12 python3.13 python3.14 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && is_recent "$(command -v "$candidate")"; then
      command -v "$candidate"; return 0
    fi
  done
  for candidate in "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 /root/.pyenv/versions/3.1[2-9]*/bin/python3 \
                   /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
    if [ -x "$candidate" ] && is_recent "$candidate"; then echo "$candidate"; return 0; fi
  done
  return 1
}

stamp=.venv/.workpath-installed
wanted=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && is_recent .venv/bin/python && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi

if [ ! -x .venv/bin/python ] || ! is_recent .venv/bin/python; then
  python=$(find_python) || {
    echo "workpath needs Python >= 3.12: none found (tried python3.12, python3.13, python3, ~/.pyenv/versions/3.12*)." >&2
    echo "Install one, or point WORKPATH_PYTHON at it." >&2
    exit 1
  }
  echo "==> creating .venv with $python" >&2
  rm -rf .venv
  "$python" -m venv .venv
fi
echo "==> installing workpath and its dev tools into .venv" >&2
log=.venv/install.log
if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e '.[dev]'; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "installing workpath failed; the whole log is in $log" >&2
  exit 1
fi
echo "$wanted" > "$stamp"
