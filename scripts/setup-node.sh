#!/usr/bin/env bash
# Installs the Debian packages of the node test tier (a real kubelet with containerd, tests/node):
# containerd, runc and the CNI plugins run the pods; iptables and conntrack serve kube-proxy; buildah and
# debootstrap build the images without a registry; gcc and libc6-dev build the pause binary.
#
# Idempotent: does nothing (and needs no network) when every package is installed. Starts no service: the
# tier starts its own containerd. Without root or apt-get it only says what is missing and exits 0, so that a
# developer's `scripts/test.sh` goes on (the node tier then skips, or fails under CI, naming what is missing).
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables conntrack buildah debootstrap gcc libc6-dev)

log() { printf '[setup-node.sh] %s\n' "$*" >&2; }

missing=()
for package in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
if (( ${#missing[@]} == 0 )); then
    exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    log "not installing ${missing[*]}: this needs root and apt-get; the node test tier will skip without them."
    exit 0
fi

# No package may start a system service here (containerd's postinst would): the tier runs its own.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=true
fi
cleanup() { if $own_policy; then rm -f "$policy"; fi; }
trap cleanup EXIT

started=$SECONDS
log "installing ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt_log="$(mktemp)"
if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    log "ERROR: apt-get install ${missing[*]} failed (the whole log: $apt_log)"
    exit 1
fi
rm -f "$apt_log"
log "installed in $((SECONDS - started)) s"
