"""Who talks to the operator in the trust tests: ServiceAccount tokens (bound to a pod or not), worker pods, a
worker connection that only says ``v1.ready``, and calls of the runs API."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import kubernetes.client

from tests.kube import operators
from workpath import directives

AUDIENCE = "workpath"
TOKEN_DIR = "/var/run/secrets/workpath"


def token(
    core: kubernetes.client.CoreV1Api,
    namespace: str,
    account: str,
    *,
    audiences: tuple[str, ...] = (AUDIENCE,),
    pod: kubernetes.client.V1Pod | None = None,
) -> str:
    """A token of ``account`` (TokenRequest) for ``audiences`` (none: the API server's own), bound to ``pod``."""
    spec: dict[str, Any] = {"audiences": list(audiences), "expirationSeconds": 600}
    if pod is not None:
        assert pod.metadata is not None
        spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name, "uid": pod.metadata.uid}
    request = kubernetes.client.AuthenticationV1TokenRequest.model_validate({"spec": spec})
    status = core.create_namespaced_service_account_token(account, namespace, request).status
    assert status is not None
    return str(status.token)


def grant_routines(k8s_api: kubernetes.client.ApiClient, namespace: str, account: str, verbs: list[str]) -> None:
    """Let ServiceAccount ``account`` do ``verbs`` on Routines in ``namespace`` (a Role and its binding)."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(k8s_api)
    rules = [{"apiGroups": ["workpath.dev"], "resources": ["routines"], "verbs": verbs}]
    rbac.create_namespaced_role(
        namespace, kubernetes.client.V1Role.model_validate({"metadata": {"name": account}, "rules": rules})
    )
    rbac.create_namespaced_role_binding(
        namespace,
        kubernetes.client.V1RoleBinding.model_validate(
            {
                "metadata": {"name": account},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            }
        ),
    )


def parked_pod(core: kubernetes.client.CoreV1Api, namespace: str, name: str, account: str) -> kubernetes.client.V1Pod:
    """A pod of ``account`` that no node takes (it stays Pending): something to bind a token to."""
    body = kubernetes.client.V1Pod.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "serviceAccountName": account,
                "automountServiceAccountToken": False,
                "nodeSelector": {"workpath.dev/test": "nowhere"},
                "containers": [{"name": "main", "image": "process-kubelet/python", "command": ["true"]}],
            },
        }
    )
    return core.create_namespaced_pod(namespace, body)


def worker_pod(
    name: str, *, account: str, url: str, modules: tuple[str, ...] = (operators.WORKLOAD,)
) -> kubernetes.client.V1Pod:
    """A pod running ``workpath worker`` as a chart's worker does: a projected token for the audience
    ``workpath``, bound to the pod, and the pod's name as worker ID."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": account,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 2,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "worker",
                    "image": "process-kubelet/python",
                    "command": ["workpath", "worker", *modules, "--app-dir", str(operators.REPO)],
                    "env": [
                        {"name": "WORKPATH_URL", "value": url},
                        {"name": "WORKPATH_TOKEN_FILE", "value": f"{TOKEN_DIR}/token"},
                        {"name": "WORKPATH_SLOTS", "value": "4"},
                        {"name": "WORKPATH_BACKOFF_CAP", "value": "0.5"},
                        {"name": "WORKPATH_WORKER_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "volumeMounts": [{"name": "token", "mountPath": TOKEN_DIR}],
                }
            ],
            "volumes": [
                {
                    "name": "token",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"audience": AUDIENCE, "expirationSeconds": 600, "path": "token"}}
                        ]
                    },
                }
            ],
        },
    }
    return kubernetes.client.V1Pod.model_validate(pod)


def announce(url: str, bearer: str, worker_id: str) -> tuple[int, directives.Payload | None, bool]:
    """Connect to the workers' socket with ``bearer`` and say ``v1.ready`` as ``worker_id``: the HTTP status of
    the upgrade, the first frame answered within a second (None if none), and whether the service closed."""

    async def attempt() -> tuple[int, directives.Payload | None, bool]:
        ready = directives.Ready(worker_id=directives.WorkerID(worker_id), routines=["*"], slots=100)
        async with aiohttp.ClientSession() as http:
            try:
                ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {bearer}"}, heartbeat=None)
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status, None, True
            async with ws:
                await ws.send_str(directives.encode(ready))
                answer: directives.Payload | None = None
                closed = False
                for _ in range(2):
                    try:
                        message = await ws.receive(timeout=1.0)
                    except TimeoutError:
                        break
                    if message.type is aiohttp.WSMsgType.TEXT:
                        answer = answer or directives.decode_from_service(message.data)
                    else:
                        closed = message.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
                        break
                return 101, answer, closed

    return asyncio.run(attempt())


def call(
    port: int, method: str, path: str, bearer: str, *, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any] | list[Any]]:
    """One request of the runs API: its HTTP status and decoded JSON body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), _decoded(response.read())
    except urllib.error.HTTPError as e:
        return e.code, _decoded(e.read())


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return {"text": raw.decode(errors="replace")}
