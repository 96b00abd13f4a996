#!/usr/bin/env bash
# Sets up the Celery side of `python -m bench.versus`: Debian's redis-server, and Celery with its Redis
# transport in a virtualenv of its own (never in .venv: workpath does not depend on Celery).
#
#     bash scripts/setup-celery-bench.sh PYTHON VENV
#
# PYTHON makes the virtualenv (the bench passes its own interpreter, so both sides run the same Python);
# VENV is where it goes (the bench's default: ~/.cache/workpath/bench-celery-venv).
#
# Idempotent: does nothing (and needs no network) when redis-server is on PATH and VENV holds the pinned
# Celery. Starts no service: the bench starts its own redis-server on 127.0.0.1 and stops it. Without
# root or apt-get, a missing redis-server is only reported. Exit codes: 0 ready, 2 redis-server missing,
# 3 Celery could not be installed (the bench then runs the workpath side alone and says why).
set -euo pipefail

CELERY_REQUIREMENT='celery[redis]==5.7.0'

log() { printf '[setup-celery-bench.sh] %s\n' "$*" >&2; }

python=${1:?usage: setup-celery-bench.sh PYTHON VENV}
venv=${2:?usage: setup-celery-bench.sh PYTHON VENV}

ensure_redis() {
    command -v redis-server >/dev/null && return 0
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
        log "redis-server is not installed and installing it needs root and apt-get: apt-get install redis-server"
        return 2
    fi
    # The package's postinst would start a system redis on port 6379: the bench runs its own.
    local policy=/usr/sbin/policy-rc.d own_policy=false
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=true
    fi
    log "installing redis-server ..."
    local apt_log status=0
    apt_log="$(mktemp)"
    export DEBIAN_FRONTEND=noninteractive
    { timeout 300 apt-get update && timeout 300 apt-get install -y --no-install-recommends redis-server; } \
        >"$apt_log" 2>&1 || status=$?
    if $own_policy; then rm -f "$policy"; fi
    if (( status != 0 )) || ! command -v redis-server >/dev/null; then
        tail -n 20 "$apt_log" >&2
        log "apt-get install redis-server failed (the whole log: $apt_log)"
        return 2
    fi
    rm -f "$apt_log"
}

ensure_celery() {
    local stamp="$venv/.workpath-celery"
    if [[ -x "$venv/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$CELERY_REQUIREMENT" ]]; then
        return 0
    fi
    log "installing $CELERY_REQUIREMENT into $venv ..."
    # Every step checked here: `set -e` does not apply inside a function called from `||`.
    local pip_log
    pip_log="$(mktemp)"
    if ! { mkdir -p "$(dirname "$venv")" && rm -rf "$venv" && timeout 120 "$python" -m venv "$venv" \
            && timeout 300 "$venv/bin/python" -m pip install --disable-pip-version-check -q "$CELERY_REQUIREMENT" \
            && echo "$CELERY_REQUIREMENT" >"$stamp"; } >"$pip_log" 2>&1; then
        tail -n 20 "$pip_log" >&2
        log "installing $CELERY_REQUIREMENT into $venv failed (the whole log: $pip_log)"
        return 3
    fi
    rm -f "$pip_log"
}

ensure_redis || exit $?
ensure_celery || exit $?
