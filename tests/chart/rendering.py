"""Rendering, linting and installing the Helm chart with the real ``helm``, and checking what it renders.

The helm binary is the one ``tests/cluster/build.sh`` builds (``~/.cache/workpath/k8s-<version>/bin/helm``), else a
``helm`` on PATH. Helm runs with its config, cache and data in a private directory, so the tests neither read nor
write the user's Helm repositories and plugins.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.cluster import builds, controlplane

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "workpath"
SOURCE_CRDS = REPO / "crds"

RELEASE = "wp"
NAMESPACE = "workpath-system"
AUDIENCE = "workpath"
"""The audience of worker tokens: what the operator's TokenReview asks for."""
DIRECTIVE_PORT = 7740

KUBERNETES_VERSION = builds.kubernetes_version()
"""The release the k8s tier runs (tests/cluster/go.mod); charts are rendered for it."""

WORKER_VALUES: dict[str, Any] = {
    "workers": {"enabled": True, "modules": ["examples.reports"], "replicas": 2, "slots": 4, "pool": "reports"}
}
POOL_VALUES: dict[str, Any] = {
    "workerPools": [
        {
            "name": "reports",
            "modules": ["examples.reports"],
            "routines": ["reports.*"],
            "slots": 5,
            "minReplicas": 0,
            "maxReplicas": 3,
        },
        {
            "name": "big",
            "image": "registry.example/big-worker:2.0",
            "serviceAccountName": "big-worker",
            "modules": ["big.jobs"],
            "routines": ["big.build", "big.part"],
            "maxReplicas": 20,
            "scaleDownDelaySeconds": 120,
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
            "env": [{"name": "BIG", "value": "yes"}],
        },
    ]
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"rbac": {"clusterWide": False}},
    "workers": WORKER_VALUES,
    "pools": POOL_VALUES,
    "stopped": {"operator": {"replicas": 0}},
    "everything": {
        **POOL_VALUES,
        "workers": WORKER_VALUES["workers"]
        | {
            "extraVolumes": [{"name": "data", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "data", "mountPath": "/data"}],
        },
        "rbac": {"clusterWide": False},
        "fullnameOverride": "jobs",
        "commonLabels": {"team": "analytics"},
        "imagePullSecrets": [{"name": "registry"}],
        "operator": {
            "image": {"repository": "registry.example/workpath-operator", "tag": "1.2.3", "pullPolicy": "Always"},
            "serviceAccount": {"create": True, "name": "jobs-operator", "annotations": {"team": "analytics"}},
            "allowedServiceAccounts": ["workpath-system:workpath-worker", "analytics:reports-worker"],
            "extraArgs": ["--log-level", "debug"],
            "extraEnv": [{"name": "WORKPATH_HEARTBEAT_INTERVAL", "value": "2"}],
            "extraVolumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
            "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}],
            "podAnnotations": {"prometheus.io/scrape": "true"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "workpath", "effect": "NoSchedule"}],
            "priorityClassName": "system-cluster-critical",
        },
        "service": {"annotations": {"team": "analytics"}},
    },
}
"""Values that exercise the chart's branches, by name: every test that checks all renders uses them all."""


# -- finding and running helm ------------------------------------------------------------------------------


def find_helm() -> pathlib.Path | None:
    """The helm that ``tests/cluster/build.sh`` built, else a ``helm`` on PATH, else None."""
    built = builds.cache_dir() / f"k8s-{KUBERNETES_VERSION}" / "bin" / "helm"
    if os.access(built, os.X_OK):
        return built
    found = shutil.which("helm")
    return pathlib.Path(found) if found else None


def missing_helm_message() -> str:
    built = builds.cache_dir() / f"k8s-{KUBERNETES_VERSION}" / "bin" / "helm"
    return f"helm is not built ({built} missing) nor on PATH: run `{builds.BUILD_COMMAND}` (it builds helm too)."


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require_helm(binary: pathlib.Path | None = None) -> pathlib.Path:
    """``binary``, else :func:`find_helm`; without one, skip the test (fail it when ``$CI`` is set)."""
    found = binary or find_helm()
    if found is None:
        if in_ci():
            pytest.fail(missing_helm_message(), pytrace=False)
        pytest.skip(missing_helm_message())
    return found


class HelmError(Exception):
    """helm exited non-zero; the message has its stderr."""

    def __init__(self, argv: Sequence[str], done: subprocess.CompletedProcess[str]) -> None:
        self.stderr = done.stderr
        self.stdout = done.stdout
        super().__init__(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr or done.stdout}")


@dataclasses.dataclass(frozen=True)
class Helm:
    """The helm CLI with a private home, optionally pointed at a cluster."""

    binary: pathlib.Path
    home: pathlib.Path
    kubeconfig: pathlib.Path | None = None

    def with_kubeconfig(self, kubeconfig: pathlib.Path) -> Helm:
        return dataclasses.replace(self, kubeconfig=kubeconfig)

    def run(self, *args: str, timeout: float = 120.0) -> str:
        """Run helm; return its stdout; raise :class:`HelmError` if it fails."""
        argv = [str(self.binary), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=self._env())
        if done.returncode != 0:
            raise HelmError(argv, done)
        return done.stdout

    def _env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("HELM_", "KUBE"))}
        env |= {
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def values_file(self, values: Mapping[str, Any]) -> pathlib.Path:
        """Write ``values`` to a new file in helm's home; return its path."""
        directory = self.home / "values"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"values-{len(list(directory.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(dict(values)))
        return path

    def template(
        self,
        chart: pathlib.Path,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
        include_crds: bool = False,
    ) -> list[dict[str, Any]]:
        """``helm template`` for the k8s tier's Kubernetes version; the rendered objects."""
        args = ["template", release, str(chart), "--namespace", namespace, "--kube-version", KUBERNETES_VERSION]
        if include_crds:
            args.append("--include-crds")
        if values:
            args += ["--values", str(self.values_file(values))]
        return load_documents(self.run(*args))

    def install(
        self, release: str, chart: pathlib.Path, *, namespace: str, values: Mapping[str, Any] | None = None
    ) -> str:
        """``helm install`` into the cluster of :attr:`kubeconfig` (no ``--wait``: tests wait on what they need)."""
        args = ["install", release, str(chart), "--namespace", namespace, "--timeout", "60s"]
        if values:
            args += ["--values", str(self.values_file(values))]
        return self.run(*args)

    def manifest(self, release: str, *, namespace: str) -> str:
        """The objects of an installed release (``helm get manifest``), as YAML."""
        return self.run("get", "manifest", release, "--namespace", namespace)

    def uninstall(self, release: str, *, namespace: str) -> str:
        """``helm uninstall --wait``: returns once the release's objects are deleted."""
        return self.run("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")

    @contextlib.contextmanager
    def installed(
        self, release: str, chart: pathlib.Path, *, namespace: str, values: Mapping[str, Any] | None = None
    ) -> Iterator[str]:
        """Install the release for the ``with`` block (yields helm's output, with the notes); uninstall it after."""
        output = self.install(release, chart, namespace=namespace, values=values)
        try:
            yield output
        finally:
            try:
                self.uninstall(release, namespace=namespace)
            except HelmError as e:
                if "not found" not in e.stderr:  # Uninstalled by the test itself.
                    raise

    def lint(self, chart: pathlib.Path, values: Mapping[str, Any] | None = None) -> str:
        """``helm lint --strict`` (warnings fail too); its output."""
        args = ["lint", str(chart), "--strict", "--namespace", NAMESPACE, "--kube-version", KUBERNETES_VERSION]
        if values:
            args += ["--values", str(self.values_file(values))]
        return self.run(*args)


def cluster_helm(binaries: builds.Binaries, cluster: controlplane.Cluster, home: pathlib.Path) -> Helm:
    """helm pointed at the test control plane (skipped without a helm binary; failed when ``$CI`` is set)."""
    return Helm(binary=require_helm(binaries.helm), home=home, kubeconfig=cluster.kubeconfig)


def load_documents(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


# -- looking at rendered objects ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rendered:
    """The objects of one render, with lookups by kind and name."""

    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.of_kind(kind) if o["metadata"]["name"] == name), None)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.find(kind, name)
        if found is None:
            present = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in self.objects)
            raise AssertionError(f"no {kind}/{name} in the render; it has: {', '.join(present)}")
        return found

    def deployment_of(self, component: str) -> dict[str, Any] | None:
        """The Deployment whose pods have ``app.kubernetes.io/component: component``."""
        return next(
            (d for d in self.of_kind("Deployment") if pod_labels(d).get("app.kubernetes.io/component") == component),
            None,
        )

    def workloads(self) -> list[dict[str, Any]]:
        return self.of_kind("Deployment")


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels") or {}
    return labels


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(workload)["containers"]
    if name is None:
        (only,) = containers
        return only
    return next(c for c in containers if c["name"] == name)


def env_of(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The container's env entries by name (the whole entry: ``value`` or ``valueFrom``)."""
    return {entry["name"]: entry for entry in container(workload).get("env") or []}


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a matchLabels-style selector (non-empty) matches ``labels``."""
    return bool(selector) and selector.items() <= labels.items()


# -- validating rendered objects ---------------------------------------------------------------------------


def schema_version() -> str:
    """The Kubernetes version to validate against: the k8s tier's, or the newest that kubernetes-validate has."""
    wanted = KUBERNETES_VERSION.removeprefix("v")
    newest = kubernetes_validate.latest_version()
    as_tuple = [tuple(int(part) for part in version.split(".")[:2]) for version in (wanted, newest)]
    return wanted if as_tuple[0] <= as_tuple[1] else newest


def custom_resource_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """The openAPIV3Schema of each CRD version in ``crds/``, by (apiVersion, kind)."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(SOURCE_CRDS.glob("*.yaml")):
        for crd in load_documents(path.read_text()):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def validation_errors(obj: dict[str, Any], custom: Mapping[tuple[str, str], dict[str, Any]]) -> list[str]:
    """What is wrong with ``obj``: against the strict Kubernetes schemas, or its CRD's schema; [] if valid.

    CRD schemas are OpenAPI 3.0 (``exclusiveMinimum: true``), which is JSON Schema draft 4. CEL rules
    (``x-kubernetes-validations``) are not checked here: the API server checks them in the k8s tier.
    """
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in custom:
        validator = jsonschema.Draft4Validator(custom[key])
        return [f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, schema_version(), strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{where}: {'.'.join(map(str, e.path))}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{where}: {e.message}"]
    return []


def bindings_naming(rendered: Rendered, account: str, namespace: str) -> Iterator[dict[str, Any]]:
    """The RoleBindings and ClusterRoleBindings with the ServiceAccount ``namespace/account`` as a subject."""
    for binding in rendered.of_kind("RoleBinding") + rendered.of_kind("ClusterRoleBinding"):
        for subject in binding.get("subjects") or []:
            if (subject.get("kind"), subject.get("name"), subject.get("namespace")) == (
                "ServiceAccount",
                account,
                namespace,
            ):
                yield binding
                break
