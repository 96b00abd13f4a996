"""Reading what a pod refers to: Secrets, ConfigMaps and ServiceAccount tokens."""

from __future__ import annotations

import base64
from typing import Any

import kubernetes.client

from tests.cluster import errors, responses


class References:
    """Fetches the objects a pod's env and volumes name, as the kubelet does, with the admin's client."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._core = kubernetes.client.CoreV1Api(api)

    def secret(self, namespace: str, name: str, *, optional: bool = False) -> dict[str, bytes] | None:
        """The decoded data of a Secret; None if it is missing and ``optional``."""
        secret = self._read(self._core.read_namespaced_secret, "Secret", namespace, name, optional=optional)
        if secret is None:
            return None
        return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}

    def config_map(self, namespace: str, name: str, *, optional: bool = False) -> dict[str, bytes] | None:
        """The data and binaryData of a ConfigMap; None if it is missing and ``optional``."""
        config_map = self._read(self._core.read_namespaced_config_map, "ConfigMap", namespace, name, optional=optional)
        if config_map is None:
            return None
        data = {key: value.encode() for key, value in (config_map.get("data") or {}).items()}
        binary = {key: base64.b64decode(value) for key, value in (config_map.get("binaryData") or {}).items()}
        return data | binary

    def service_account_token(
        self, pod: dict[str, Any], *, audience: str | None, expiration_seconds: int | None
    ) -> str:
        """A token of the pod's ServiceAccount, bound to the pod (TokenRequest API), as a projected volume gets."""
        namespace, account = pod["metadata"]["namespace"], pod["spec"].get("serviceAccountName") or "default"
        spec: dict[str, Any] = {
            "audiences": [audience] if audience else [],
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }
        if expiration_seconds:
            spec["expirationSeconds"] = expiration_seconds
        try:
            response = self._core.create_namespaced_service_account_token(
                account, namespace, {"spec": spec}, _preload_content=False
            )
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                raise errors.MissingReferenceError(f"ServiceAccount {namespace}/{account} not found") from e
            raise
        token: str = responses.json_of(response)["status"]["token"]
        return token

    @staticmethod
    def _read(read: Any, kind: str, namespace: str, name: str, *, optional: bool) -> dict[str, Any] | None:
        try:
            response = read(name, namespace, _preload_content=False)
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise
            if optional:
                return None
            raise errors.MissingReferenceError(f"{kind} {namespace}/{name} not found") from e
        found: dict[str, Any] = responses.json_of(response)
        return found
