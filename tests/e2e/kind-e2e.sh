#!/usr/bin/env bash
# End to end on kind: build both images, load them into a new kind cluster, install the chart with the worker
# Deployment running examples.reports, apply examples/routine.yaml (a Routine of reports.build) and wait until it
# Succeeded. The cluster is deleted on exit, whatever happens.
#
# Needs: docker (with a running engine), kind, kubectl, helm. Run from anywhere:
#   bash tests/e2e/kind-e2e.sh
# Environment: KIND, KUBECTL, HELM, DOCKER (the tools), E2E_CLUSTER (cluster name), E2E_TIMEOUT (seconds to wait
# for the Routine, default 300), E2E_ROUTINE (the Routine manifest, default examples/routine.yaml; an inline
# Routine of reports.build when that file is missing), E2E_KEEP_CLUSTER=1 (keep the cluster for debugging).
# Images go in with `kind load docker-image`, or, where that fails as it does with Docker's containerd image store
# (kind#3795), as one-platform archives with `kind load image-archive` (load_images below).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND="${KIND:-kind}"
KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-helm}"
DOCKER="${DOCKER:-docker}"
CLUSTER="${E2E_CLUSTER:-workpath-e2e-$$}"
TIMEOUT="${E2E_TIMEOUT:-300}"
NAMESPACE=workpath-system
RELEASE=workpath
TAG=e2e
OPERATOR_IMAGE=workpath/operator
WORKER_IMAGE=workpath/worker

log() { printf '[kind-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

for tool in "$DOCKER" "$KIND" "$KUBECTL" "$HELM"; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
"$DOCKER" info >/dev/null 2>&1 || die "docker cannot reach an engine ('docker info' fails)"

KUBECONFIG_FILE="$(mktemp)"
export KUBECONFIG="$KUBECONFIG_FILE"
ARCHIVES="$(mktemp -d)"
created=0

diagnose() {
    log "diagnostics:"
    "$KUBECTL" get all,routines,workerpools -A -o wide || true
    "$KUBECTL" -n "$NAMESPACE" describe pods || true
    "$KUBECTL" -n "$NAMESPACE" logs "deployment/$RELEASE" --tail=200 --pod-running-timeout=5s || true
    "$KUBECTL" -n "$NAMESPACE" logs "deployment/$RELEASE-worker" --tail=200 --pod-running-timeout=5s || true
}

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    if (( code != 0 && created )); then
        diagnose
    fi
    if (( created )) && [[ "${E2E_KEEP_CLUSTER:-0}" != 1 ]]; then
        log "deleting kind cluster $CLUSTER"
        "$KIND" delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >/dev/null 2>&1 || true
    fi
    rm -rf "$KUBECONFIG_FILE" "$ARCHIVES"
    exit "$code"
}
trap cleanup EXIT

# `kind load docker-image` pipes `docker save` into the node's `ctr images import --all-platforms`. With Docker's
# containerd image store (Docker Desktop; Docker Engine 29 and later by default) the saved archive carries the image's
# whole index, other platforms and attestation manifests included, without their blobs, and the import fails
# ("ctr: content digest sha256:...: not found"; kubernetes-sigs/kind#3795, #3845). The workaround the maintainers
# document: save the one platform the image was built for to an archive (`docker image save --platform`, Docker 28
# and later) and load that with `kind load image-archive`. Docker's classic store saves one platform anyway, so an
# older docker without --platform saves plainly.
load_images() {
    local errors="$ARCHIVES/load-docker-image.err" image platform archive
    if "$KIND" load docker-image --name "$CLUSTER" "$@" 2>"$errors"; then
        return 0
    fi
    cat "$errors" >&2
    log "kind load docker-image failed (kind#3795 under Docker's containerd image store?): loading one-platform archives"
    for image in "$@"; do
        platform="$("$DOCKER" image inspect --format '{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}' "$image")"
        archive="$ARCHIVES/${image//[\/:]/_}.tar"
        if ! "$DOCKER" image save --platform "$platform" --output "$archive" "$image" 2>"$errors"; then
            grep -q -- '--platform' "$errors" || { cat "$errors" >&2; die "docker image save $image failed"; }
            "$DOCKER" image save --output "$archive" "$image"
        fi
        log "loading $image ($platform) with kind load image-archive"
        "$KIND" load image-archive "$archive" --name "$CLUSTER"
        rm -f "$archive"
    done
}
trap 'exit 130' INT
trap 'exit 143' TERM

log "building images ($OPERATOR_IMAGE:$TAG, $WORKER_IMAGE:$TAG)"
"$DOCKER" build --file "$ROOT/images/operator.Dockerfile" --tag "$OPERATOR_IMAGE:$TAG" "$ROOT"
"$DOCKER" build --file "$ROOT/images/worker.Dockerfile" --tag "$WORKER_IMAGE:$TAG" "$ROOT"

log "creating kind cluster $CLUSTER"
created=1
"$KIND" create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --wait 180s
load_images "$OPERATOR_IMAGE:$TAG" "$WORKER_IMAGE:$TAG"
"$KUBECTL" config set-context --current --namespace "$NAMESPACE" >/dev/null

log "installing the chart"
"$HELM" install "$RELEASE" "$ROOT/charts/workpath" \
    --namespace "$NAMESPACE" --create-namespace \
    --set "operator.image.repository=$OPERATOR_IMAGE" --set "operator.image.tag=$TAG" \
    --set operator.image.pullPolicy=Never \
    --set workers.enabled=true --set workers.replicas=2 --set 'workers.modules={examples.reports}' \
    --set "workers.image.repository=$WORKER_IMAGE" --set "workers.image.tag=$TAG" \
    --set workers.image.pullPolicy=Never \
    --wait --timeout 180s

manifest="${E2E_ROUTINE:-$ROOT/examples/routine.yaml}"
if [[ ! -f "$manifest" ]]; then
    manifest="$(mktemp --suffix=.yaml)"
    log "examples/routine.yaml is missing: using an inline Routine of reports.build"
    cat >"$manifest" <<'YAML'
apiVersion: workpath.dev/v1alpha1
kind: Routine
metadata:
  name: october-report
spec:
  routineID: reports.build
  params:
    month: "2026-10"
YAML
fi
# A manifest that names its own namespace is applied there (the operator watches all namespaces); else in ours
# (the context's namespace, which kubectl fills in).
target="$("$KUBECTL" create --dry-run=client -f "$manifest" -o jsonpath='{.metadata.namespace}')"
"$KUBECTL" get namespace "$target" >/dev/null 2>&1 || "$KUBECTL" create namespace "$target"
mapfile -t routines < <("$KUBECTL" -n "$target" apply -f "$manifest" -o name | grep -E '^routine')
(( ${#routines[@]} > 0 )) || die "$manifest has no Routine"
log "applied ${routines[*]} in namespace $target; waiting up to ${TIMEOUT}s for Succeeded"

deadline=$((SECONDS + TIMEOUT))
for routine in "${routines[@]}"; do
    while :; do
        phase="$("$KUBECTL" -n "$target" get "$routine" -o jsonpath='{.status.phase}')"
        case "$phase" in
            Succeeded) log "$routine: Succeeded"; break ;;
            Failed|Cancelled)
                "$KUBECTL" -n "$target" get "$routine" -o yaml
                die "$routine ended $phase" ;;
        esac
        (( SECONDS < deadline )) || die "$routine is still '${phase:-<no phase>}' after ${TIMEOUT}s"
        sleep 2
    done
done

"$KUBECTL" -n "$target" get rt -o wide
for routine in "${routines[@]}"; do
    "$KUBECTL" -n "$target" get "$routine" -o jsonpath='{.metadata.name}: {.status.result}{"\n"}'
done
log "PASSED"
