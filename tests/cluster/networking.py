"""The node's network: a bridge on the host, the CNI configuration that puts pods on it, and a guard that keeps
pod traffic on this machine.

The bridge (:data:`BRIDGE`, :data:`GATEWAY`) exists before the apiserver starts, which binds to the gateway
address: pods reach the apiserver, CoreDNS and each other there, and nothing else. Pods get a default route
through the host (the bridge plugin's ``isGateway``), so :func:`guard_egress` drops whatever they send that would
leave through another interface; with ``ipMasq`` off nothing is masqueraded either.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

from tests.cluster import errors

BRIDGE = "wpnode0"
SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
PREFIX_LENGTH = 24
SERVICE_SUBNET = "10.96.0.0/24"
GUARD_CHAIN = "WORKPATH-NODE-EGRESS"
NETWORK_NAME = "workpath"


def create_bridge() -> None:
    """The bridge with the gateway address, up (it has no carrier until a pod joins; the address works anyway)."""
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{GATEWAY}/{PREFIX_LENGTH}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def write_cni_config(directory: pathlib.Path, *, ipam_dir: pathlib.Path) -> pathlib.Path:
    """The conflist containerd's CRI reads: bridge (gateway, hairpin, no masquerade), host-local IPs, portmap."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    path = directory / "10-workpath.conflist"
    path.write_text(json.dumps(config, indent=2))
    return path


def guard_egress() -> None:
    """Drop pod packets that the host would forward anywhere but back to the bridge (all traffic stays here)."""
    _iptables("-N", GUARD_CHAIN)
    _iptables("-A", GUARD_CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "RETURN")
    _iptables("-A", GUARD_CHAIN, "-i", BRIDGE, "-j", "DROP")
    _iptables("-I", "FORWARD", "1", "-j", GUARD_CHAIN)


def _ip(*args: str) -> None:
    _run(["ip", *args])


def _iptables(*args: str) -> None:
    # mangle's FORWARD runs before filter's, where kube-proxy and the kubelet put their ACCEPT rules.
    _run(["iptables", "-w", "5", "-t", "mangle", *args])


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise errors.StartupError(f"{' '.join(argv)} failed with code {done.returncode}: {done.stderr.strip()}")
