"""``workpath.Client.for_cluster`` reads Kubernetes credentials with kubernetes_asyncio, an extra: without it, the
client is refused at once with the command that installs it, and the rest of the client does not need it."""

from __future__ import annotations

import sys

import pytest

import workpath


def test_without_kubernetes_asyncio_the_cluster_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "kubernetes_asyncio"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "kubernetes_asyncio", None)  # as if not installed: importing it fails
    with pytest.raises(workpath.ClientError, match=r"pip install 'workpath\[cluster\]'"):
        workpath.Client.for_cluster("reports")
    with pytest.raises(workpath.ClientError, match=r"pip install 'workpath\[cluster\]'"):
        workpath.SyncClient.for_cluster("reports")
    assert workpath.Client.for_service("http://127.0.0.1:1", token="t") is not None
