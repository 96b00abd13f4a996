"""On the test control plane, a worker is its pod. A worker pod of an allowed ServiceAccount runs Routines; while it
holds them, every other identity that announces its worker ID is refused with ``worker_id_refused`` and closed (a
pod of the same account, the account's token bound to no pod, the shared token), a pod of another ServiceAccount is
refused at the door (401), and the Routines finish on the first worker, each run once, with its results."""

from __future__ import annotations

import pathlib

import kubernetes.client

from tests.cluster import kubelet, lookups, waiting
from tests.kube import identities, operators, routines
from workpath import directives

WORKER_ACCOUNT = "workpath-worker"
RUNS = 3


def test_a_worker_id_belongs_to_its_pod_and_other_accounts_are_refused(
    harness: operators.Harness,
    k8s_api: kubernetes.client.ApiClient,
    k8s_namespace: str,
    process_kubelet: kubelet.ProcessKubelet,
    tmp_path: pathlib.Path,
) -> None:
    namespace = k8s_namespace
    core = kubernetes.client.CoreV1Api(k8s_api)
    for account in (WORKER_ACCOUNT, "intruder"):
        core.create_namespaced_service_account(
            namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": account}})
        )
    harness.start_operator(args=("--allowed-service-account", f"{namespace}:{WORKER_ACCOUNT}"))
    core.create_namespaced_pod(namespace, identities.worker_pod("worker-a", account=WORKER_ACCOUNT, url=harness.url))
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    markers.mkdir()
    for n in range(RUNS):
        routines.create(
            k8s_api, namespace, f"held-{n}", routineID="k8s.block", params={"markers": str(markers), "gate": str(gate)}
        )
    waiting.wait_for(
        lambda: len(list(markers.glob("started.*"))) == RUNS,
        timeout=60,
        what=f"worker-a to start the {RUNS} runs",
    )

    lurker = identities.parked_pod(core, namespace, "lurker", "intruder")
    status, _, _ = identities.announce(harness.url, identities.token(core, namespace, "intruder", pod=lurker), "lurker")
    assert status == 401, "a pod of a ServiceAccount that is neither allowed nor a pool's must not connect"

    impostor = identities.parked_pod(core, namespace, "impostor", WORKER_ACCOUNT)
    for who, bearer in [
        ("another pod of the workers' account", identities.token(core, namespace, WORKER_ACCOUNT, pod=impostor)),
        ("the workers' account, bound to no pod", identities.token(core, namespace, WORKER_ACCOUNT)),
        ("the shared token", harness.token),
    ]:
        status, answer, closed = identities.announce(harness.url, bearer, "worker-a")
        assert status == 101, who
        assert isinstance(answer, directives.Error) and answer.code == directives.ErrorCode.WORKER_ID_REFUSED, (
            who,
            answer,
        )
        assert closed, f"{who}: the refused connection must be closed"

    assert lookups.pod_is_ready(core.read_namespaced_pod("worker-a", namespace))
    gate.touch()
    for n in range(RUNS):
        done = routines.wait_for_phase(k8s_api, namespace, f"held-{n}", *routines.FINISHED, timeout=60)
        status = done["status"]
        assert (status["phase"], status["worker"], status["attempt"]) == ("Succeeded", "worker-a", 1), status
        assert status["result"] == "opened on attempt 1"
    assert len(list(markers.glob("started.*"))) == RUNS and not list(markers.glob("cancelled.*"))
