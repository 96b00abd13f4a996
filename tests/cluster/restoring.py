"""Leaving the host as the node tier found it: what it saves before changing anything, and the teardown from that.

A real kubelet, containerd, the CNI plugins and kube-proxy change the host: sysctls, iptables chains and rules,
mounts, cgroups, network interfaces, files under /var and /run, and processes (the containerd shims) that outlive
their parent. :func:`snapshot` records what is there before the node starts; the :class:`HostState` is written to
a state file (:data:`STATE_FILE`) before the first change, so that :func:`restore` can undo everything even after
a crashed run (the next start, or ``testcluster down``, finds the file and restores from it). Every step of
:func:`restore` is idempotent and runs even when an earlier one failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

from tests.cluster import builds, errors

logger = logging.getLogger(__name__)

STATE_FILE = builds.cache_dir() / "node" / "state.json"
LOCK_FILE = STATE_FILE.with_name("lock")
"""Held (flock) by the one process that owns this machine's node: one node per machine (fixed bridge and ports)."""
SYSCTLS = (
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
)
"""What the kubelet (overcommit, panic, keys), the bridge plugin (ip_forward) and kube-proxy may set."""
WATCHED_PATHS = (
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/var/log/pods",
    "/var/log/containers",
    "/var/run/netns",
    "/run/containerd",
    "/opt/containerd",
    "/etc/cni",
    "/run/kubernetes",
    "/var/run/kubernetes",
)
"""Where the kubelet, containerd and CNI write even when told to use other directories."""
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle", "raw")
CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
KILL_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class HostState:
    """The host before the node started, and the names of what the node makes (to find it after a crash)."""

    workdir: str
    bridge: str
    cgroup_name: str
    containerd_socket: str
    kube_proxy: str
    sysctls: dict[str, str]
    paths: dict[str, list[str] | None]
    """Each watched path's entries (None: it did not exist)."""
    iptables: dict[str, list[str]]
    """``iptables -t TABLE -S`` lines by ``"iptables nat"`` etc."""
    interfaces: list[str]

    def save(self) -> None:
        STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
        temporary = STATE_FILE.with_suffix(".tmp")
        temporary.write_text(json.dumps(dataclasses.asdict(self), indent=1))
        temporary.replace(STATE_FILE)

    @classmethod
    def load(cls) -> HostState | None:
        try:
            return cls(**json.loads(STATE_FILE.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as e:
            raise errors.ClusterError(f"Cannot read the node's state file {STATE_FILE}: {e}; check the host.") from e


@dataclasses.dataclass(frozen=True)
class Observation:
    """What a test compares before and after a node's life: everything :func:`restore` promises to put back."""

    sysctls: dict[str, str]
    paths: dict[str, list[str] | None]
    iptables: dict[str, list[str]]
    interfaces: list[str]
    mounts: list[str]
    cgroups: list[str]


def snapshot(
    *, workdir: pathlib.Path, bridge: str, cgroup_name: str, socket: pathlib.Path, kube_proxy: str
) -> HostState:
    """The host now, before the node changes it."""
    seen = observe()
    return HostState(
        workdir=str(workdir),
        bridge=bridge,
        cgroup_name=cgroup_name,
        containerd_socket=str(socket),
        kube_proxy=kube_proxy,
        sysctls=seen.sysctls,
        paths=seen.paths,
        iptables=seen.iptables,
        interfaces=seen.interfaces,
    )


def observe() -> Observation:
    return Observation(
        sysctls={name: value for name in SYSCTLS if (value := _sysctl(name)) is not None},
        paths={path: _entries(pathlib.Path(path)) for path in WATCHED_PATHS},
        iptables={f"{command} {table}": _iptables_rules(command, table) for command in IPTABLES for table in TABLES},
        interfaces=sorted(os.listdir("/sys/class/net")),
        mounts=sorted(_mount_points()),
        cgroups=sorted(str(path) for path in CGROUP_ROOT.glob("*/*") if path.is_dir()),
    )


def differences(before: Observation, after: Observation) -> dict[str, tuple[object, object]]:
    """What differs between two observations, by field: ``{name: (before, after)}``."""
    return {
        field.name: (getattr(before, field.name), getattr(after, field.name))
        for field in dataclasses.fields(before)
        if getattr(before, field.name) != getattr(after, field.name)
    }


def restore(state: HostState) -> list[str]:
    """Undo everything the node did; return what could not be undone (empty: the host is as it was)."""
    problems: list[str] = []
    steps: tuple[tuple[str, Callable[[], object]], ...] = (
        ("kill the node's processes", lambda: _kill_leftovers(state)),
        ("unmount", lambda: _unmount_under(state.workdir, "/run/containerd", "/var/run/netns", "/run/netns")),
        ("remove cgroups", lambda: _remove_cgroups(state.cgroup_name)),
        ("kube-proxy --cleanup", lambda: _kube_proxy_cleanup(state.kube_proxy)),
        ("restore iptables", lambda: _restore_iptables(state.iptables)),
        ("remove interfaces", lambda: _remove_interfaces(state.bridge, keep=state.interfaces)),
        ("restore sysctls", lambda: _restore_sysctls(state.sysctls)),
        ("restore paths", lambda: _restore_paths(state.paths)),
        ("remove the working directory", lambda: shutil.rmtree(state.workdir, ignore_errors=True)),
    )
    for what, step in steps:
        try:
            step()
        except Exception as e:  # Keep going: each later step undoes something else.
            logger.exception("Node teardown: %s failed.", what)
            problems.append(f"{what}: {e}")
    if not problems:
        STATE_FILE.unlink(missing_ok=True)
    return problems


class MachineLock:
    """The machine's node lock: :meth:`acquire` or raise :class:`~tests.cluster.errors.NodeBusyError`; the kernel
    releases it when the owner dies, so a crashed run never blocks the next one (which restores after it)."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def acquire(self) -> None:
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise NodeBusyError(
                f"Another node tier runs on this machine (pid {owner}; lock {LOCK_FILE}): one node per machine."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class NodeBusyError(errors.ClusterError):
    """Another process owns this machine's node."""


def restore_leftovers() -> None:
    """Restore the host from the state file of an earlier run that did not tear down (crashed or killed).

    Call it holding the :class:`MachineLock`: then the run that wrote the state file is dead.
    """
    state = HostState.load()
    if state is None:
        return
    logger.warning("A node tier's state file is left from an earlier run (%s); restoring the host from it.", STATE_FILE)
    problems = restore(state)
    if problems:
        raise errors.ClusterError(f"Restoring the host after an earlier node run failed: {'; '.join(problems)}")


# -- processes -----------------------------------------------------------------------------------------------------


def _kill_leftovers(state: HostState) -> None:
    """SIGKILL the shims of our containerd and every process in the node's cgroups, until none is left."""
    deadline = time.monotonic() + KILL_TIMEOUT
    while pids := _shim_pids(state.containerd_socket) | _cgroup_pids(state.cgroup_name):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise errors.ClusterError(f"processes {sorted(pids)} survive SIGKILL")
        time.sleep(0.1)


def _shim_pids(socket: str) -> set[int]:
    found: set[int] = set()
    for proc in pathlib.Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and socket.encode() in argv:
                found.add(int(proc.name))
    return found


def _cgroup_dirs(name: str) -> list[pathlib.Path]:
    """The node's cgroup directories in every hierarchy, deepest first."""
    roots = [path for path in CGROUP_ROOT.glob(f"*/{name}") if path.is_dir()]
    roots += [CGROUP_ROOT / name] if (CGROUP_ROOT / name).is_dir() else []
    found = [directory for root in roots for directory in root.rglob("*") if directory.is_dir()] + roots
    return sorted(found, key=lambda path: len(path.parts), reverse=True)


def _cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for directory in _cgroup_dirs(name):
        with contextlib.suppress(OSError):
            pids.update(int(line) for line in (directory / "cgroup.procs").read_text().split())
    return pids


def _remove_cgroups(name: str) -> None:
    for directory in _cgroup_dirs(name):
        with contextlib.suppress(FileNotFoundError):
            directory.rmdir()


# -- mounts --------------------------------------------------------------------------------------------------------


def _mount_points() -> list[str]:
    points = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        points.append(fields[4].encode().decode("unicode_escape"))
    return points


def _unmount_under(*prefixes: str) -> None:
    """Unmount everything mounted at or under the prefixes, deepest first (lazily if busy)."""
    inside = [p for p in _mount_points() if any(p == x or p.startswith(x.rstrip("/") + "/") for x in prefixes)]
    for point in sorted(set(inside), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
            _run(["umount", "--lazy", point], check=False)


# -- iptables ------------------------------------------------------------------------------------------------------


def _iptables_rules(command: str, table: str) -> list[str]:
    if shutil.which(command) is None and not pathlib.Path(f"/usr/sbin/{command}").exists():
        return []
    done = subprocess.run(
        [command, "-w", "5", "-t", table, "-S"], capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout.splitlines() if done.returncode == 0 else []


def _kube_proxy_cleanup(kube_proxy: str) -> None:
    if os.access(kube_proxy, os.X_OK):
        _run([kube_proxy, "--cleanup", "--v=0"], check=False)


def _restore_iptables(before: dict[str, list[str]]) -> None:
    """Delete every rule and chain that was not there before (the kubelet's KUBE-*, CNI's, ours)."""
    for key, rules in before.items():
        command, table = key.split()
        now = _iptables_rules(command, table)
        for rule in now:
            if rule.startswith("-A ") and rule not in rules:
                _run([command, "-w", "5", "-t", table, "-D", *shlex.split(rule)[1:]], check=False)
        new_chains = [rule.split()[1] for rule in now if rule.startswith("-N ") and rule not in rules]
        for chain in new_chains:
            _run([command, "-w", "5", "-t", table, "-F", chain], check=False)
        for chain in new_chains:
            _run([command, "-w", "5", "-t", table, "-X", chain], check=False)


# -- interfaces, sysctls, paths ------------------------------------------------------------------------------------


def _remove_interfaces(bridge: str, *, keep: list[str]) -> None:
    """The bridge, and the veths that appeared since (the host ends of pod interfaces)."""
    appeared = set(os.listdir("/sys/class/net")) - set(keep)
    for name in sorted(name for name in appeared if name == bridge or name.startswith("veth")):
        _run(["ip", "link", "delete", name], check=False)


def _sysctl(name: str) -> str | None:
    path = pathlib.Path("/proc/sys") / name.replace(".", "/")
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _restore_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        if _sysctl(name) != value:
            (pathlib.Path("/proc/sys") / name.replace(".", "/")).write_text(value)


def _entries(path: pathlib.Path) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return []


def _restore_paths(before: dict[str, list[str] | None]) -> None:
    """Remove the watched paths that did not exist, and the entries that appeared in those that did."""
    for name, entries in before.items():
        path = pathlib.Path(name)
        if entries is None:
            _remove(path)
            continue
        for entry in set(_entries(path) or []) - set(entries):
            _remove(path / entry)


def _remove(path: pathlib.Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _run(argv: list[str], *, check: bool = True) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if check and done.returncode != 0:
        raise errors.ClusterError(f"{' '.join(argv)} failed with code {done.returncode}: {done.stderr.strip()}")
