"""A real Kubernetes control plane as local processes: etcd, kube-apiserver, kube-controller-manager.

>>> with Cluster.start() as cluster:
...     cluster.kubectl("get", "namespaces")

Everything lives in one temporary directory (logs, keys, kubeconfig, etcd data) that :meth:`Cluster.stop`
removes. The project's CRDs are installed before the controller-manager starts, so that its garbage collector
knows their types from the beginning (it rediscovers new types only every ~30 s).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import pathlib
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
import types
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any, Self

import kubernetes.client
import yaml

from tests.cluster import audit, builds, credentials, errors, processes, rawapi, timestamps, waiting

logger = logging.getLogger(__name__)

CRDS_DIR = builds.HERE.parent.parent / "crds"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24"
CRD_CREATE_DELAY = datetime.timedelta(seconds=2)
LOOPBACK = "127.0.0.1"
STOP_TIMEOUT = 10.0
"""Seconds between SIGTERM and SIGKILL when the control plane stops."""


@dataclasses.dataclass(frozen=True)
class _Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int

    @classmethod
    def pick(cls) -> _Ports:
        return cls(processes.free_port(), processes.free_port(), processes.free_port())


class Cluster:
    """A running control plane. Create it with :meth:`start`; stop it with :meth:`stop` (or ``with``)."""

    def __init__(
        self,
        *,
        binaries: builds.Binaries,
        workdir: pathlib.Path,
        ports: _Ports,
        address: str = LOOPBACK,
        identities: Sequence[credentials.Identity] = (),
    ) -> None:
        self.binaries = binaries
        self.workdir = workdir
        self.ports = ports
        self.address = address
        """Where kube-apiserver binds and what it advertises (a real node's pods need a non-loopback address)."""
        self.identities = tuple(identities)
        """Extra users of the token file (a real node's kubelet, kube-proxy, scheduler, DNS)."""
        self.server = f"https://{address}:{ports.apiserver}"
        self.kubeconfig = workdir / "kubeconfig"
        self.audit_log = workdir / "audit.log"
        """Every request a ServiceAccount made, one JSON audit event a line (see :mod:`tests.cluster.audit`)."""
        self.ca_file = workdir / "pki" / "apiserver" / "apiserver.crt"
        """The apiserver's self-signed serving certificate (with its CA); trust it to talk to the server."""
        self.admin = credentials.Identity(user="workpath-admin", groups=("system:masters",))
        self.boot_seconds: float | None = None
        self.milestones: dict[str, float] = {}
        """Seconds from the start of the boot to each of its steps (etcd, kube-apiserver, crds, ...)."""
        self._processes: dict[str, processes.ManagedProcess] = {}
        self._stopped = False

    # -- starting and stopping --------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        binaries: builds.Binaries | None = None,
        crds: Iterable[pathlib.Path] | None = None,
        workdir_parent: pathlib.Path | None = None,
        timeout: float = 60.0,
        attempts: int = 3,
        address: str = LOOPBACK,
        identities: Sequence[credentials.Identity] = (),
    ) -> Cluster:
        """Start etcd, kube-apiserver and kube-controller-manager; return once all are ready.

        ``crds``: CRD manifests to install before the controllers start (default: every file in ``crds/``).
        A start that loses a race for its free ports is retried, up to ``attempts`` times in all.
        ``address``: where the apiserver binds and what it advertises (the node tier's bridge address);
        ``identities``: extra users of its token file.
        """
        found = binaries or builds.Binaries.find()
        crd_paths = sorted(CRDS_DIR.glob("*.yaml")) if crds is None else list(crds)
        for attempt in range(1, attempts + 1):
            workdir = pathlib.Path(tempfile.mkdtemp(prefix="workpath-cluster-", dir=workdir_parent))
            cluster = cls(binaries=found, workdir=workdir, ports=_Ports.pick(), address=address, identities=identities)
            try:
                cluster._boot(crd_paths=crd_paths, timeout=timeout)
            except errors.StartupError as e:
                cluster.stop()
                if not e.port_conflict or attempt == attempts:
                    raise
                logger.warning("Control plane lost a race for its ports; retrying (%s).", e)
            except BaseException:
                cluster.stop()
                raise
            else:
                return cluster
        raise AssertionError("unreachable")  # pragma: no cover

    def _boot(self, *, crd_paths: Sequence[pathlib.Path], timeout: float) -> None:
        started = time.monotonic()
        deadline = started + timeout
        pki = self.workdir / "pki"
        pki.mkdir()
        service_account_key = pki / "service-account.key"
        service_account_public_key = pki / "service-account.pub"
        credentials.write_service_account_keys(service_account_key, service_account_public_key)
        controller_manager = credentials.Identity(user="system:kube-controller-manager", groups=("system:masters",))
        credentials.write_token_file(pki / "tokens.csv", [self.admin, controller_manager, *self.identities])
        credentials.write_kubeconfig(self.kubeconfig, server=self.server, ca_file=self.ca_file, identity=self.admin)
        controller_manager_kubeconfig = self.workdir / "kube-controller-manager.kubeconfig"
        credentials.write_kubeconfig(
            controller_manager_kubeconfig, server=self.server, ca_file=self.ca_file, identity=controller_manager
        )

        etcd = self._start_process("etcd", self._etcd_argv())
        waiting.wait_for(
            etcd.checked(lambda: _http_ok(f"http://127.0.0.1:{self.ports.etcd_client}/health")),
            timeout=deadline - time.monotonic(),
            what=f"etcd to be healthy (log: {etcd.log_path})",
            ignore=(OSError,),
        )
        self.milestones["etcd healthy"] = time.monotonic() - started

        apiserver = self._start_process(
            "kube-apiserver",
            self._apiserver_argv(
                service_account_key=service_account_key, service_account_public_key=service_account_public_key, pki=pki
            ),
        )
        waiting.wait_for(
            apiserver.checked(self._apiserver_ready),
            timeout=deadline - time.monotonic(),
            what=f"kube-apiserver /readyz (log: {apiserver.log_path})",
            ignore=(OSError, ssl.SSLError),
        )
        self.milestones["kube-apiserver ready"] = time.monotonic() - started

        crd_names = self.install_crds(crd_paths, timeout=deadline - time.monotonic(), writable=False)
        self.milestones["CRDs established"] = time.monotonic() - started
        manager = self._start_process(
            "kube-controller-manager",
            self._controller_manager_argv(
                kubeconfig=controller_manager_kubeconfig, service_account_key=service_account_key
            ),
        )
        with self.api() as client:
            api = rawapi.RawApi(client)
            # Proof that the controllers run: the ServiceAccount controller and the root-CA publisher act.
            waiting.wait_for(
                manager.checked(
                    lambda: (
                        api.exists("/api/v1/namespaces/default/serviceaccounts/default")
                        and api.exists("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
                    )
                ),
                timeout=deadline - time.monotonic(),
                what=f"kube-controller-manager to run its controllers (log: {manager.log_path})",
            )
            self.milestones["controllers running"] = time.monotonic() - started
            _await_writable(api, crd_names)  # Mostly passed by now.
        self.boot_seconds = self.milestones["CRDs writable"] = time.monotonic() - started
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.milestones.items())
        logger.info("Control plane %s at %s: %s.", self.binaries.version, self.server, steps)

    def stop(self, *, timeout: float = STOP_TIMEOUT) -> None:
        """Stop every process (SIGTERM, SIGKILL after ``timeout``) and remove the working directory."""
        if self._stopped:
            return
        self._stopped = True
        # In reverse order of start: an apiserver whose etcd is gone takes its full timeout to give up.
        for process in reversed(self._processes.values()):
            processes.stop_all([process], timeout=timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.stop()

    def _start_process(self, name: str, argv: Sequence[str]) -> processes.ManagedProcess:
        process = processes.ManagedProcess.start(name, argv, log_path=self.workdir / "logs" / f"{name}.log")
        self._processes[name] = process
        return process

    def _etcd_argv(self) -> list[str]:
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        return [
            str(self.binaries.etcd),
            "--name=workpath",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=workpath={peer}",
            "--logger=zap",
            "--log-level=warn",
        ]

    def _apiserver_argv(
        self, *, service_account_key: pathlib.Path, service_account_public_key: pathlib.Path, pki: pathlib.Path
    ) -> list[str]:
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={self.ports.apiserver}",
            f"--cert-dir={self.ca_file.parent}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={service_account_public_key}",
            f"--service-account-signing-key-file={service_account_key}",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            *self._endpoint_argv(),
            "--profiling=false",
            # What ServiceAccounts ask of the API, to prove the chart's RBAC is exactly what the operator uses.
            f"--audit-policy-file={audit.write_policy(pki / 'audit-policy.yaml')}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=100ms",
        ]

    def _endpoint_argv(self) -> list[str]:
        if self.address == LOOPBACK:
            # The endpoint reconciler cannot publish a loopback address for the `kubernetes` Service.
            return ["--endpoint-reconciler-type=none"]
        # A real node: pods reach `kubernetes.default` (10.96.0.1) at the advertised address; the apiserver
        # reaches the kubelet (logs, exec) at the node's InternalIP.
        return ["--kubelet-preferred-address-types=InternalIP,Hostname"]

    def _controller_manager_argv(self, *, kubeconfig: pathlib.Path, service_account_key: pathlib.Path) -> list[str]:
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={kubeconfig}",
            "--secure-port=0",  # Not served: readiness is proven by what the controllers do.
            "--controllers=*",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={service_account_key}",
            f"--root-ca-file={self.ca_file}",
            "--profiling=false",
        ]

    def _apiserver_ready(self) -> bool:
        if not self.ca_file.exists():
            return False
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return _http_ok(f"{self.server}/readyz", ssl_context=context, token=self.admin.token)

    # -- using it -----------------------------------------------------------------------------------------

    @property
    def token(self) -> str:
        """The admin's bearer token (group ``system:masters``)."""
        return self.admin.token

    def logs(self, component: str) -> pathlib.Path:
        """The log file of ``etcd``, ``kube-apiserver`` or ``kube-controller-manager``."""
        return self._processes[component].log_path

    def check_alive(self) -> None:
        """Raise :class:`StartupError` (with the log's tail) if a control-plane process has died."""
        for process in self._processes.values():
            process.raise_if_exited(during="while the cluster was in use")

    def env(self) -> dict[str, str]:
        """Environment variables that point clients (kubectl, kopf, helm) at this cluster."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the project's kubectl against this cluster; raise with its stderr if ``check`` and it fails."""
        argv = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False, env=self._client_env()
        )
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
        return done

    def _client_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("KUBE")}
        return env | self.env()

    def configuration(self) -> kubernetes.client.Configuration:
        """A fresh client configuration for the admin (not the client library's global default)."""
        configuration = kubernetes.client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"BearerToken": self.admin.token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return configuration

    def api(self) -> kubernetes.client.ApiClient:
        """A new synchronous API client for the admin; close it (``with cluster.api() as api: ...``)."""
        return kubernetes.client.ApiClient(self.configuration())

    def install_crds(self, paths: Iterable[pathlib.Path], *, timeout: float = 30.0, writable: bool = True) -> list[str]:
        """Create (or replace) the CRDs in ``paths``, wait until each is Established; return their names.

        With ``writable``, also wait until their objects can be created without delay (see :func:`_await_writable`).
        """
        with self.api() as client:
            api = rawapi.RawApi(client)
            names = [_apply_crd(api, manifest) for path in paths for manifest in _load_manifests(path)]
            for name in names:
                waiting.wait_for(
                    lambda name=name: _established_at(api, name),  # type: ignore[misc]
                    timeout=timeout,
                    what=f"CRD {name} to be Established",
                )
            if writable:
                _await_writable(api, names)
            return names

    def create_namespace(
        self, prefix: str = "test", *, labels: dict[str, str] | None = None, timeout: float = 30.0
    ) -> str:
        """Create a namespace with a unique name, wait for its ``default`` ServiceAccount, return its name.

        Pods cannot be created in a namespace before the ServiceAccount controller made that account.
        """
        name = _dns_label(prefix, suffix=secrets.token_hex(3))
        with self.api() as client:
            api = rawapi.RawApi(client)
            api.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels or {}}})
            waiting.wait_for(
                lambda: api.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
                timeout=timeout,
                what=f"the default ServiceAccount of namespace {name}",
            )
        return name

    def delete_namespace(self, name: str, *, wait: bool = False, timeout: float = 60.0) -> None:
        """Delete a namespace (and so everything in it); with ``wait``, until it is gone."""
        with self.api() as client:
            api = rawapi.RawApi(client)
            try:
                api.delete(f"/api/v1/namespaces/{name}")
            except kubernetes.client.ApiException as e:
                if e.status != 404:
                    raise
            if wait:
                waiting.wait_for(
                    lambda: not api.exists(f"/api/v1/namespaces/{name}"),
                    timeout=timeout,
                    what=f"namespace {name} to be deleted",
                )


def _http_ok(url: str, *, ssl_context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2, context=ssl_context) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False  # Up, but not ready (e.g. /readyz answers 500 while post-start hooks run).


def _load_manifests(path: pathlib.Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


_CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _apply_crd(api: rawapi.RawApi, manifest: dict[str, Any]) -> str:
    name: str = manifest["metadata"]["name"]
    try:
        try:
            api.create(_CRDS, manifest)
        except kubernetes.client.ApiException as e:
            if e.status != 409:
                raise
            current = api.get(f"{_CRDS}/{name}")
            version = current["metadata"]["resourceVersion"]
            api.replace(f"{_CRDS}/{name}", manifest | {"metadata": manifest["metadata"] | {"resourceVersion": version}})
    except kubernetes.client.ApiException as e:
        raise errors.StartupError(f"The API server refused CRD {name}: {rawapi.status_message(e)}") from e
    return name


def _established_at(api: rawapi.RawApi, name: str) -> datetime.datetime | None:
    """When the CRD became Established; None while it is not."""
    conditions = api.get(f"{_CRDS}/{name}/status").get("status", {}).get("conditions") or []
    established = (c for c in conditions if c["type"] == "Established" and c["status"] == "True")
    moment = next((c["lastTransitionTime"] for c in established), None)
    return datetime.datetime.fromisoformat(moment) if moment else None


def _await_writable(api: rawapi.RawApi, names: Sequence[str]) -> None:
    """Wait out the apiserver's "just created" window of the CRDs.

    The apiserver delays every create of a custom object by 2 s while its CRD has been Established for less than
    2 s (apiextensions-apiserver, customresource_handler.go), so that a test's first create would take 2 s.
    """
    established = [_established_at(api, name) for name in names]
    latest = max((moment for moment in established if moment is not None), default=None)
    if latest is not None:
        writable_at = latest + CRD_CREATE_DELAY
        waiting.wait_for(
            lambda: timestamps.now() >= writable_at,
            timeout=CRD_CREATE_DELAY.total_seconds() + 5,
            what=f"the CRDs' create delay to pass ({', '.join(names)})",
            interval=0.1,
        )


def _dns_label(prefix: str, *, suffix: str) -> str:
    """``prefix-suffix`` made into a valid DNS label (lowercase alphanumerics and '-', at most 63 chars)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-") or "test"
    return f"{cleaned[: 62 - len(suffix)].rstrip('-')}-{suffix}"
