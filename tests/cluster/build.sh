#!/usr/bin/env bash
# Build (or find cached) the binaries of the k8s test tier:
#   kube-apiserver, kube-controller-manager  from k8s.io/kubernetes (tests/cluster/go.mod)
#   kubelet, kube-proxy, kube-scheduler       from k8s.io/kubernetes (the node tier)
#   pause                                     from the same module's build/pause/linux/pause.c (gcc -static)
#   coredns                                   from github.com/coredns/coredns (tests/cluster/coredns/go.mod)
#   helm                                      from helm.sh/helm/v3    (tests/cluster/helm/go.mod)
#   etcd                                      from Debian's etcd-server package
# into ${WORKPATH_CACHE:-$HOME/.cache/workpath}/k8s-<version>/bin.
#
# Idempotent: a binary that exists (and reports the pinned version) is not rebuilt; a warm run takes a second.
# Prints the bin directory as its last line of output. Exits non-zero with a message on failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$HERE/go.mod")"
HELM_VERSION="$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$HERE/helm/go.mod")"
COREDNS_VERSION="$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" {print $3}' "$HERE/coredns/go.mod")"
CACHE="${WORKPATH_CACHE:-$HOME/.cache/workpath}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"

log() { printf '[build.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ -n "$K8S_VERSION" ]] || die "cannot read the k8s.io/kubernetes version from $HERE/go.mod"
[[ -n "$HELM_VERSION" ]] || die "cannot read the helm.sh/helm/v3 version from $HERE/helm/go.mod"
[[ -n "$COREDNS_VERSION" ]] || die "cannot read the github.com/coredns/coredns version from $HERE/coredns/go.mod"
command -v go >/dev/null || die "go is not on PATH; install Go >= 1.26 (the k8s module needs it)"
GO_VERSION="$(go env GOVERSION)" || die "\`go env GOVERSION\` failed; is Go installed correctly?"
go_minor="$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$GO_VERSION")"
[[ "$go_minor" =~ ^[0-9]+$ ]] && (( go_minor >= 26 )) || die "Go >= 1.26 is needed; found $GO_VERSION"
mkdir -p "$BIN"

# Go 1.27+ turns on jsonv2 by default, which breaks the apiserver's /openapi/v2 (kubectl apply then fails).
goexperiment="${GOEXPERIMENT:-}"
if (( go_minor >= 27 )); then
    goexperiment="${goexperiment:+$goexperiment,}nojsonv2"
fi

# Stamp the versions that a release build stamps, so that `kubectl version` and `helm version` tell the truth.
k8s_minor="$(sed -E 's/^v1\.([0-9]+)\..*/\1/' <<<"$K8S_VERSION")"
K8S_LDFLAGS="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
K8S_LDFLAGS+=" -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/component-base/version.gitTreeState=clean"
K8S_LDFLAGS+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1"
K8S_LDFLAGS+=" -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"
HELM_LDFLAGS="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"

# go_build MODULE_DIR PACKAGE OUTPUT VERSION VERSION_ARG LDFLAGS: a static, stripped build, skipped when OUTPUT
# exists and `OUTPUT VERSION_ARG` prints VERSION. The output appears only on success.
go_build() {
    local dir="$1" pkg="$2" out="$3" version="$4" version_arg="$5" ldflags="$6" started=$SECONDS tmp="$3.tmp.$$"
    if [[ -x "$out" ]] && "$out" "$version_arg" 2>/dev/null | grep -qF "$version"; then
        log "$(basename "$out"): cached ($out)"
        return
    fi
    log "$(basename "$out"): building $pkg $version (minutes when Go's build cache is cold) ..."
    (
        cd "$dir"
        CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly GOEXPERIMENT="$goexperiment" \
            go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg"
    ) || { rm -f "$tmp"; die "go build $pkg failed (see the compiler output above)"; }
    mv "$tmp" "$out"
    log "$(basename "$out"): built in $((SECONDS - started)) s"
}

# fetch_etcd: extract etcd from Debian's etcd-server .deb without installing it (no system service is started).
fetch_etcd() {
    local out="$BIN/etcd" started=$SECONDS work deb
    if [[ -x "$out" ]]; then
        log "etcd: cached ($out)"
        return
    fi
    command -v apt-get >/dev/null || die "apt-get not found: put an etcd >= 3.4 binary at $out yourself"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"; trap - RETURN' RETURN
    log "etcd: downloading Debian's etcd-server package ..."
    if ! (cd "$work" && apt-get download etcd-server >/dev/null 2>&1); then
        log "etcd: package not found in the apt lists; running apt-get update ..."
        apt-get update >/dev/null || die "apt-get update failed (need root, or run it yourself)"
        (cd "$work" && apt-get download etcd-server) || die "apt-get download etcd-server failed"
    fi
    deb="$(ls "$work"/etcd-server_*.deb)"
    dpkg -x "$deb" "$work/root" || die "dpkg -x $deb failed"
    [[ -x "$work/root/usr/bin/etcd" ]] || die "no usr/bin/etcd inside $deb"
    cp "$work/root/usr/bin/etcd" "$out.tmp.$$" && mv "$out.tmp.$$" "$out"
    log "etcd: $(basename "$deb") extracted in $((SECONDS - started)) s"
}

# build_pause: the pod sandbox's pause binary from the pinned module's own source (no image registry needed).
build_pause() {
    local out="$BIN/pause" started=$SECONDS src
    if [[ -x "$out" ]] && "$out" -v 2>&1 | grep -qF "$K8S_VERSION"; then
        log "pause: cached ($out)"
        return
    fi
    if ! command -v gcc >/dev/null; then  # Only the node tier needs it; it says so when it runs.
        log "pause: NOT built: gcc is not on PATH (run scripts/setup-node.sh as root for the node tier)"
        return
    fi
    src="$(cd "$HERE" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
    [[ -f "$src" ]] || die "no $src in the module cache (run \`go mod download\` in $HERE)"
    gcc -Os -static -Wall -Werror -DVERSION="$K8S_VERSION" -o "$out.tmp.$$" "$src" \
        || { rm -f "$out.tmp.$$"; die "gcc -static $src failed (is libc6-dev installed?)"; }
    strip "$out.tmp.$$" 2>/dev/null || true
    mv "$out.tmp.$$" "$out"
    log "pause: built in $((SECONDS - started)) s"
}

total=$SECONDS
log "Kubernetes $K8S_VERSION, helm $HELM_VERSION, CoreDNS $COREDNS_VERSION, $GO_VERSION; cache: $BIN"
fetch_etcd
go_build "$HERE" k8s.io/kubernetes/cmd/kube-apiserver "$BIN/kube-apiserver" "$K8S_VERSION" --version \
    "$K8S_LDFLAGS"
go_build "$HERE" k8s.io/kubernetes/cmd/kube-controller-manager "$BIN/kube-controller-manager" "$K8S_VERSION" \
    --version "$K8S_LDFLAGS"
go_build "$HERE/helm" helm.sh/helm/v3/cmd/helm "$BIN/helm" "$HELM_VERSION" version "$HELM_LDFLAGS"
# The node tier: a real kubelet with containerd, kube-proxy, the scheduler and cluster DNS.
for command in kubelet kube-proxy kube-scheduler; do
    go_build "$HERE" "k8s.io/kubernetes/cmd/$command" "$BIN/$command" "$K8S_VERSION" --version "$K8S_LDFLAGS"
done
go_build "$HERE/coredns" github.com/coredns/coredns "$BIN/coredns" "CoreDNS-${COREDNS_VERSION#v}" -version ""
build_pause
log "all binaries ready in $((SECONDS - total)) s"
echo "$BIN"
