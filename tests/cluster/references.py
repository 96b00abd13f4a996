"""Reading what a pod refers to: Secrets, ConfigMaps and ServiceAccount tokens."""

from __future__ import annotations

import base64
from typing import Any

import kubernetes.client

from tests.cluster import errors, rawapi


class References:
    """Fetches the objects a pod's env and volumes name, as the kubelet does (with the harness's client)."""

    def __init__(self, api: rawapi.RawApi) -> None:
        self._api = api

    def secret(self, namespace: str, name: str, *, optional: bool = False) -> dict[str, bytes] | None:
        """The decoded data of a Secret; None if it is missing and ``optional``."""
        secret = self._read("Secret", "secrets", namespace, name, optional=optional)
        if secret is None:
            return None
        return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}

    def config_map(self, namespace: str, name: str, *, optional: bool = False) -> dict[str, bytes] | None:
        """The data and binaryData of a ConfigMap; None if it is missing and ``optional``."""
        config_map = self._read("ConfigMap", "configmaps", namespace, name, optional=optional)
        if config_map is None:
            return None
        data = {key: value.encode() for key, value in (config_map.get("data") or {}).items()}
        binary = {key: base64.b64decode(value) for key, value in (config_map.get("binaryData") or {}).items()}
        return data | binary

    def service_account_token(
        self, pod: dict[str, Any], *, audience: str | None, expiration_seconds: int | None
    ) -> str:
        """A token of the pod's ServiceAccount, bound to the pod (TokenRequest API), as a projected volume gets."""
        metadata = pod["metadata"]
        namespace, account = metadata["namespace"], pod["spec"].get("serviceAccountName") or "default"
        spec: dict[str, Any] = {
            "audiences": [audience] if audience else [],
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": metadata["name"], "uid": metadata["uid"]},
        }
        if expiration_seconds:
            spec["expirationSeconds"] = expiration_seconds
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
        try:
            request = self._api.create(
                path, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
            )
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                raise errors.MissingReferenceError(f"ServiceAccount {namespace}/{account} not found") from e
            raise
        token: str = request["status"]["token"]
        return token

    def _read(self, kind: str, plural: str, namespace: str, name: str, *, optional: bool) -> dict[str, Any] | None:
        try:
            return self._api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise
            if optional:
                return None
            raise errors.MissingReferenceError(f"{kind} {namespace}/{name} not found") from e
