"""WorkerPool resources: the spec as a model, and the Deployment the operator runs for a pool.

Pure functions, no I/O. :func:`spec_of` reads a WorkerPool's spec with the same rules the CRD's schema and CEL
enforce at admission, so that a pool admitted before a CRD update (or where CEL is off) is reported as
``InvalidSpec`` with the reason instead of crashing the controller. :func:`render_deployment` gives the whole
Deployment of a pool: its pods run ``workpath worker MODULES --pool NAME --slots N --drain-timeout S``, reach the
directive service at :attr:`WorkerConnection.url` and prove who they are with a projected ServiceAccount token,
under the restricted Pod Security Standard, with exec probes on the worker's status file (``workpath probe``; the
chart's static worker Deployment is the model).

To tell whether the live Deployment needs the rendered one applied again, the controller has two checks: the
``workpath.dev/template-hash`` annotation (:func:`template_hash`) changes exactly when the rendered pod template
does, i.e. on a spec change; :func:`differences` finds hand edits, by checking that every field the operator
renders is still there with its value (fields the API server or others add are ignored).
"""

from __future__ import annotations

import decimal
import fnmatch
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal, Self

import pydantic

from workpath import directives, errors
from workpath_operator.kube import worker_pods
from workpath_operator.service import demand

GROUP: Final = "workpath.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "workerpools"
KIND: Final = "WorkerPool"
API_VERSION: Final = f"{GROUP}/{VERSION}"

POOL_LABEL: Final = "workpath.dev/pool"
"""The label of a pool's Deployment and pods, with the pool's name: the Deployment's selector."""
TEMPLATE_HASH_ANNOTATION: Final = "workpath.dev/template-hash"
POD_DELETION_COST_ANNOTATION: Final = "controller.kubernetes.io/pod-deletion-cost"

#: Condition types of a WorkerPool's status.
READY: Final = "Ready"
SCALING_LIMITED: Final = "ScalingLimited"
INVALID_SPEC: Final = "InvalidSpec"

MAX_NAME: Final = 63
"""A pool's name is a label value (``workpath.dev/pool``): at most 63 characters."""
CONTAINER: Final = "worker"
TOKEN_DIR: Final = "/var/run/secrets/workpath"
TOKEN_FILE: Final = f"{TOKEN_DIR}/token"
WORKER_UID: Final = 10001
"""The user of the worker images (images/worker.Dockerfile)."""
GRACE_MARGIN_SECONDS: Final = 15
"""Added to the drain timeout for the pods' grace period: the worker's confirm timeout (5 s) and some slack."""
STATUS_FILE: Final = "/tmp/workpath/status"
"""Where a worker keeps its state for its probes: in the pod's /tmp emptyDir (the root filesystem is read-only)."""

IMAGE_PATTERN: Final = (
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
"""An image reference as the OCI distribution grammar has it: [registry[:port]/]path[:tag][@digest]."""
MODULE_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
ROUTINE_PATTERN: Final = r"^[A-Za-z0-9_.*?\[\]!-]+$"
"""A routine ID or an ``fnmatch`` glob of routine IDs."""

Body = Mapping[str, Any]


class InvalidPoolError(errors.WorkpathError):
    """A WorkerPool the API server accepted but the operator cannot run; the message is the InvalidSpec reason."""


class _Fields(pydantic.BaseModel):
    """camelCase in the resource, snake_case in Python; unknown fields refused (the API server prunes them)."""

    model_config = pydantic.ConfigDict(
        alias_generator=directives.wire_name,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="forbid",
    )


Quantity = int | str


class Resources(_Fields):
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}


class EnvVar(_Fields):
    name: str = pydantic.Field(min_length=1)
    value: str | None = None
    value_from: dict[str, Any] | None = None


class Toleration(_Fields):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class SecretReference(_Fields):
    name: str = pydantic.Field(min_length=1)


class PoolSpec(_Fields):
    """The ``spec`` of a WorkerPool: defaults and rules as in ``crds/workerpools.workpath.dev.yaml``."""

    image: str
    modules: tuple[str, ...]
    routines: tuple[str, ...]
    slots: int = pydantic.Field(default=10, ge=1, le=10_000)
    min_replicas: int = pydantic.Field(default=0, ge=0)
    max_replicas: int = pydantic.Field(default=10, ge=1, le=10_000)
    scale_down_delay_seconds: int = pydantic.Field(default=60, ge=0, le=86_400)
    drain_timeout_seconds: int = pydantic.Field(default=30, ge=0, le=3600)
    resources: Resources = Resources()
    env: tuple[EnvVar, ...] = ()
    service_account_name: str | None = pydantic.Field(default=None, max_length=253)
    pod_labels: dict[str, str] = {}
    pod_annotations: dict[str, str] = {}
    node_selector: dict[str, str] = {}
    tolerations: tuple[Toleration, ...] = ()
    affinity: dict[str, Any] = {}
    priority_class_name: str | None = pydantic.Field(default=None, max_length=253)
    image_pull_secrets: tuple[SecretReference, ...] = ()

    @pydantic.field_validator("image")
    @classmethod
    def _image_is_a_reference(cls, image: str) -> str:
        if not re.fullmatch(IMAGE_PATTERN, image):
            raise ValueError(f"{image!r} is not an image reference like registry.example/team/worker:1.0")
        return image

    @pydantic.field_validator("modules")
    @classmethod
    def _modules_are_module_paths(cls, modules: tuple[str, ...]) -> tuple[str, ...]:
        if not modules:
            raise ValueError("list at least one module with @workpath.routine functions, e.g. examples.reports")
        bad = [module for module in modules if not re.fullmatch(MODULE_PATTERN, module)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a module path like examples.reports")
        return modules

    @pydantic.field_validator("routines")
    @classmethod
    def _routines_are_patterns(cls, routines: tuple[str, ...]) -> tuple[str, ...]:
        if not routines:
            raise ValueError("list at least one routine ID or pattern the pool serves, e.g. reports.*")
        bad = [pattern for pattern in routines if not re.fullmatch(ROUTINE_PATTERN, pattern)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a routine ID or glob pattern like reports.*")
        return routines

    @pydantic.field_validator("pod_labels")
    @classmethod
    def _labels_leave_ours_alone(cls, labels: dict[str, str]) -> dict[str, str]:
        if POOL_LABEL in labels:
            raise ValueError(f"podLabels must not set {POOL_LABEL}; the operator sets it to select the pool's pods")
        return labels

    @pydantic.field_validator("pod_annotations")
    @classmethod
    def _annotations_leave_the_cost_alone(cls, annotations: dict[str, str]) -> dict[str, str]:
        if POD_DELETION_COST_ANNOTATION in annotations:
            raise ValueError(
                f"podAnnotations must not set {POD_DELETION_COST_ANNOTATION}: "
                "the operator sets it to scale down idle workers first"
            )
        return annotations

    @pydantic.field_validator("env")
    @classmethod
    def _env_names_are_unique(cls, env: tuple[EnvVar, ...]) -> tuple[EnvVar, ...]:
        names = [var.name for var in env]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"env names {', '.join(repeated)} more than once; give each variable once")
        return env

    @pydantic.model_validator(mode="after")
    def _replicas_in_order(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})")
        return self

    def serves(self, routine_id: str) -> bool:
        """Whether a run of ``routine_id`` can count toward this pool: one of its patterns matches it."""
        return any(fnmatch.fnmatchcase(routine_id, pattern) for pattern in self.routines)


def spec_of(body: Body) -> PoolSpec:
    """The spec of a WorkerPool; :class:`InvalidPoolError` gives the reason it cannot be run."""
    name = str(body.get("metadata", {}).get("name", ""))
    if len(name) > MAX_NAME:
        raise InvalidPoolError(
            f"the WorkerPool's name is {len(name)} characters; at most {MAX_NAME} fit the {POOL_LABEL} label"
        )
    try:
        return PoolSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as exc:
        problems = "; ".join(_problem(problem) for problem in exc.errors(include_url=False)[:5])
        raise InvalidPoolError(f"the WorkerPool's spec cannot be run: {problems}") from None


def _problem(problem: Any) -> str:
    where = ".".join(str(part) for part in ("spec", *problem["loc"]))
    return f"{where}: {str(problem['msg']).removeprefix('Value error, ')}"


def claiming_pool(routine_id: str, pools: Mapping[str, PoolSpec]) -> str | None:
    """The pool a run of ``routine_id`` that names no pool counts toward; None if no pool serves it.

    Two pools may claim the same routine ID; the choice is :func:`demand.choose_pool`'s, the same everywhere:
    the pool with the most specific matching pattern (an exact ID beats a glob, a longer literal prefix beats a
    shorter one), then the pool whose name sorts first.
    """
    return demand.choose_pool({name: spec.routines for name, spec in pools.items()}, routine_id)


# -- the Deployment ------------------------------------------------------------------------------------------


class WorkerConnection(pydantic.BaseModel):
    """How worker pods reach the directive service and prove who they are; the same for every pool."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    url: str = pydantic.Field(pattern=r"^wss?://\S+$")
    """The directive service's WebSocket URL through its Service: ws://NAME.NAMESPACE.svc:PORT/v1/workers."""
    token_audience: str = pydantic.Field(default="workpath", min_length=1)
    """The audience of the workers' projected tokens, which the operator's TokenReview checks."""
    token_expiration_seconds: int = pydantic.Field(default=600, ge=600)
    """Lifetime of a projected token; the API server accepts at least 600 s, the kubelet renews it at 80%."""


def deployment_name(pool: str) -> str:
    """The name of a pool's Deployment."""
    return f"{pool}-workers"


def selector_labels(pool: str) -> dict[str, str]:
    """The labels that select a pool's pods: the Deployment's selector, and how to list its pods."""
    return {POOL_LABEL: pool}


def render_deployment(body: Body, *, spec: PoolSpec, connection: WorkerConnection, replicas: int) -> dict[str, Any]:
    """The whole Deployment of the WorkerPool ``body``, owned by it, with ``replicas`` pods.

    Its metadata has the :func:`template_hash` of its pod template; ``replicas`` is not part of the hash,
    since the autoscaler changes it without rolling the pods.
    """
    metadata = body["metadata"]
    name = str(metadata["name"])
    labels = _labels(name)
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name),
            "namespace": metadata["namespace"],
            "labels": labels,
            "annotations": {},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": name,
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(name)},
            "template": {
                "metadata": _without_empty(
                    {
                        "labels": spec.pod_labels | labels | worker_pods.WORKER_LABELS,
                        "annotations": spec.pod_annotations,
                    }
                ),
                "spec": _pod_spec(name, spec, connection),
            },
        },
    }
    deployment["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION] = template_hash(deployment)
    return deployment


def template_hash(deployment: Body) -> str:
    """A stable hash of a Deployment's selector and pod template (not its replicas): 16 hex digits."""
    spec = deployment["spec"]
    canonical = json.dumps({"selector": spec["selector"], "template": spec["template"]}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _labels(pool: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/part-of": "workpath",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/managed-by": "workpath-operator",
        **selector_labels(pool),
    }


def _pod_spec(pool: str, spec: PoolSpec, connection: WorkerConnection) -> dict[str, Any]:
    optional = {
        "serviceAccountName": spec.service_account_name,
        "priorityClassName": spec.priority_class_name,
        "imagePullSecrets": [secret.model_dump() for secret in spec.image_pull_secrets],
        "nodeSelector": spec.node_selector,
        "tolerations": [toleration.model_dump(exclude_none=True) for toleration in spec.tolerations],
        "affinity": spec.affinity,
    }
    return {
        # Workers never call the Kubernetes API: no API token. They get a token for the operator instead.
        "automountServiceAccountToken": False,
        # Service links would put WORKPATH_PORT=tcp://... into the environment, where the worker reads settings.
        "enableServiceLinks": False,
        # A worker drains on SIGTERM: it finishes its runs (or hands them back) before it exits.
        "terminationGracePeriodSeconds": spec.drain_timeout_seconds + GRACE_MARGIN_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": WORKER_UID,
            "runAsGroup": WORKER_UID,
            "fsGroup": WORKER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(pool, spec, connection)],
        "volumes": [
            {
                # A token only the operator accepts (audience), short-lived and renewed by the kubelet.
                "name": "workpath-token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": connection.token_audience,
                                "expirationSeconds": connection.token_expiration_seconds,
                                "path": "token",
                            }
                        }
                    ]
                },
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        ],
        **_without_empty(optional),
    }


def _container(pool: str, spec: PoolSpec, connection: WorkerConnection) -> dict[str, Any]:
    command = ["workpath", "worker", *spec.modules, "--pool", pool, "--slots", str(spec.slots)]
    command += ["--drain-timeout", str(spec.drain_timeout_seconds)]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "command": command,
        "env": _env(spec, connection),
        **_probes(),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "workpath-token", "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    resources = _without_empty(spec.resources.model_dump())
    if resources:
        container["resources"] = resources
    return container


def _env(spec: PoolSpec, connection: WorkerConnection) -> list[dict[str, Any]]:
    """The operator's WORKPATH_* variables, then the spec's; one of the spec's replaces ours of the same name."""
    ours: dict[str, dict[str, Any]] = {
        "WORKPATH_URL": {"name": "WORKPATH_URL", "value": connection.url},
        "WORKPATH_TOKEN_FILE": {"name": "WORKPATH_TOKEN_FILE", "value": TOKEN_FILE},
        "WORKPATH_WORKER_ID": {
            "name": "WORKPATH_WORKER_ID",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        },
        # The worker writes its state there, and `workpath probe` (run in the container) reads it from there.
        "WORKPATH_STATUS_FILE": {"name": "WORKPATH_STATUS_FILE", "value": STATUS_FILE},
    }
    for var in spec.env:
        ours[var.name] = var.model_dump(exclude_none=True)
    return list(ours.values())


def _probes() -> dict[str, Any]:
    """Exec probes of the worker's status file: a worker serves no port, and a fixed one would collide on a host.

    Each probe starts a Python process (~0.2 s of CPU), so they are spaced out. Startup: up to 3 minutes to import
    the routines and start the event loop. Readiness: connected to the directive service and not draining, twice
    in a row to fail, so a quick reconnect does not flap. Liveness: the worker refreshes its file every 5 s and
    ``workpath probe live`` fails past 15 s; three failures 20 s apart restart a worker whose event loop is stuck,
    never one that merely reconnects.
    """
    return {
        "startupProbe": _probe("live", period=2, failures=90),
        "readinessProbe": _probe("ready", period=10, failures=2),
        "livenessProbe": _probe("live", period=20, failures=3),
    }


def _probe(kind: str, *, period: int, failures: int) -> dict[str, Any]:
    command = ["workpath", "probe", kind]
    return {"exec": {"command": command}, "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": failures}


def _without_empty(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` without the unset and empty ones: the API server would drop them, and so would a diff."""
    return {key: value for key, value in fields.items() if value not in (None, "", {}, [])}


# -- drift ---------------------------------------------------------------------------------------------------

_QUANTITY_KEYS = frozenset({"requests", "limits", "sizeLimit"})
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SUFFIXES: dict[str, decimal.Decimal] = {
    "": decimal.Decimal(1),
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
}
_SUFFIXES |= {suffix: decimal.Decimal(10) ** (3 * (i + 1)) for i, suffix in enumerate("kMGTPE")}
_SUFFIXES |= {suffix + "i": decimal.Decimal(2) ** (10 * (i + 1)) for i, suffix in enumerate("KMGTPE")}


def differences(rendered: Any, live: Any) -> list[str]:
    """Where ``live`` departs from ``rendered``: the paths of rendered fields that are missing or changed.

    Fields only in ``live`` (defaults the API server fills in, annotations others add, status) do not count;
    lists must have the same length, element by element. Resource quantities compare by value ("1000m" is
    "1"), as the API server rewrites them in canonical form.
    """
    return list(_differences(rendered, live, path="", quantity=False))


def _differences(rendered: Any, live: Any, *, path: str, quantity: bool) -> Iterator[str]:
    if isinstance(rendered, Mapping):
        if not isinstance(live, Mapping):
            yield path or "."
            return
        for key, value in rendered.items():
            where = f"{path}.{key}"
            if key not in live:
                yield where
            else:
                yield from _differences(value, live[key], path=where, quantity=quantity or key in _QUANTITY_KEYS)
    elif isinstance(rendered, list):
        if not isinstance(live, list) or len(live) != len(rendered):
            yield path
            return
        for index, (value, other) in enumerate(zip(rendered, live, strict=True)):
            yield from _differences(value, other, path=f"{path}[{index}]", quantity=quantity)
    elif rendered != live and not (quantity and _amount(rendered) is not None and _amount(rendered) == _amount(live)):
        yield path


def _amount(quantity: Any) -> decimal.Decimal | None:
    """The value of a Kubernetes quantity ("1.5Gi", "250m", 2), or None if it is not one."""
    match = _QUANTITY.match(str(quantity)) if isinstance(quantity, int | str) else None
    if match is None:
        return None
    number, exponent, suffix = match.groups()
    scale = decimal.Decimal(10) ** int(exponent) if exponent else _SUFFIXES[suffix or ""]
    return decimal.Decimal(number) * scale
