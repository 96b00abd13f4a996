"""What the node tier needs of the host, checked before it changes anything, with messages that name what is missing.

The fixture turns :class:`PrerequisiteError` into a skip, or a failure when ``$CI`` is set (CI runs as root on a
machine that ``scripts/setup-node.sh`` prepared, so there a missing piece is a bug, not a choice).
"""

from __future__ import annotations

import os
import pathlib
import shutil

from tests.cluster import errors

SETUP_COMMAND = "bash scripts/setup-node.sh"
CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
CGROUP_CONTROLLERS = ("cpu", "memory", "pids", "cpuset")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
CNI_PLUGIN_DIRS = (pathlib.Path("/usr/lib/cni"), pathlib.Path("/opt/cni/bin"))


class PrerequisiteError(errors.ClusterError):
    """The host lacks something the node tier needs (root, cgroups, a package); the message names it."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError(
            f"The node tier runs a real kubelet and containerd and needs root (euid is {os.geteuid()})."
        )


def require_commands(*names: str, why: str) -> None:
    """Each of ``names`` on PATH (with /usr/sbin and /sbin, where Debian puts runc, iptables and debootstrap)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [name for name in names if shutil.which(name, path=path) is None]
    if missing:
        raise PrerequisiteError(f"{', '.join(missing)} not found ({why}): run `{SETUP_COMMAND}` as root.")


def require_cgroups() -> None:
    """cgroup controllers the kubelet needs: v1 hierarchies per controller, or v2's cgroup.controllers."""
    v2 = CGROUP_ROOT / "cgroup.controllers"
    if v2.exists():
        available = set(v2.read_text().split())
        missing = [name for name in CGROUP_CONTROLLERS if name not in available]
    else:
        missing = [name for name in CGROUP_CONTROLLERS if not (CGROUP_ROOT / name).is_dir()]
    if missing:
        raise PrerequisiteError(
            f"No cgroup support for {', '.join(missing)} under {CGROUP_ROOT}: the kubelet cannot run pods here."
        )


def cni_plugin_dir() -> pathlib.Path:
    """The directory with the CNI plugins the node's network uses (Debian's containernetworking-plugins)."""
    for directory in CNI_PLUGIN_DIRS:
        if all((directory / plugin).exists() for plugin in CNI_PLUGINS):
            return directory
    raise PrerequisiteError(
        f"CNI plugins {', '.join(CNI_PLUGINS)} not found in {' or '.join(map(str, CNI_PLUGIN_DIRS))}: "
        f"run `{SETUP_COMMAND}` (package containernetworking-plugins)."
    )


def check_host() -> pathlib.Path:
    """Everything at once, in the order a person would fix it; return the CNI plugin directory."""
    require_root()
    require_cgroups()
    require_commands(
        "containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip", "conntrack", "sysctl",
        why="the node runs pods with containerd and runc, and Services with iptables",
    )  # fmt: skip
    return cni_plugin_dir()
