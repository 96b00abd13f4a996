"""The Kubernetes REST API as JSON in, JSON out, over the generated client's connection pool and credentials.

The generated methods validate request bodies against their models (demanding fields the API does not) and
return models whose every field is Optional; the harness works on the API's own JSON instead, as kopf does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import kubernetes.client
import urllib3

type Json = dict[str, Any]
type Timeout = float | tuple[float, float] | None

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class RawApi:
    """Requests by path, e.g. ``api.get("/api/v1/namespaces/default")``; errors raise ``ApiException``."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client

    def get(self, path: str, *, query: Mapping[str, Any] | None = None, timeout: Timeout = None) -> Json:
        return self.request("GET", path, query=query, timeout=timeout)

    def create(self, path: str, body: Json, *, timeout: Timeout = None) -> Json:
        return self.request("POST", path, body=body, timeout=timeout)

    def replace(self, path: str, body: Json, *, timeout: Timeout = None) -> Json:
        return self.request("PUT", path, body=body, timeout=timeout)

    def patch(self, path: str, body: Json, *, content_type: str = MERGE_PATCH, timeout: Timeout = None) -> Json:
        """A merge patch by default; pass ``STRATEGIC_MERGE_PATCH`` for built-in kinds' list semantics."""
        return self.request("PATCH", path, body=body, content_type=content_type, timeout=timeout)

    def delete(self, path: str, body: Json | None = None, *, timeout: Timeout = None) -> Json:
        return self.request("DELETE", path, body=body, timeout=timeout)

    def exists(self, path: str) -> bool:
        """Whether the object at ``path`` exists (404: no; other errors propagate)."""
        try:
            self.get(path)
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Json | None = None,
        query: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        timeout: Timeout = None,
    ) -> Json:
        """Send a request and return its JSON answer (read in full, so the connection goes back to the pool)."""
        response = self.open(method, path, body=body, query=query, content_type=content_type, timeout=timeout)
        data = response.data
        answer: Json = json.loads(data) if data else {}
        return answer

    def open(
        self,
        method: str,
        path: str,
        *,
        body: Json | None = None,
        query: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        timeout: Timeout = None,
    ) -> urllib3.BaseHTTPResponse:
        """Send a request and return the unread response (e.g. a watch stream); the caller must read or close it.

        Raises ``ApiException`` (with the body read) for a status other than 2xx.
        """
        serialized = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=[(key, _query_value(value)) for key, value in (query or {}).items()],
            header_params={"Accept": JSON, "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        method, url, headers, serialized_body, _ = serialized
        response = self.client.call_api(
            method, url, header_params=headers, body=serialized_body, _request_timeout=timeout
        )
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]  # Into .data, for the exception's body.
            raise kubernetes.client.ApiException.from_response(http_resp=response, body=None, data=None)
        raw: urllib3.BaseHTTPResponse = response.response
        return raw


def _query_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def status_message(error: kubernetes.client.ApiException) -> str:
    """The ``message`` of the Status object in an error response (or the raw body if it is not one)."""
    try:
        message: str = json.loads(error.body or "")["message"]
    except (TypeError, ValueError, KeyError):
        return str(error.body or error.reason)
    return message
