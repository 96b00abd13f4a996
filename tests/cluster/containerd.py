"""Debian's containerd for the node, run by the test harness with its own configuration, directories and socket.

Everything it can be told to keep elsewhere lives under the node's working directory: state, the CRI's network
namespaces, runc's state, the CNI configuration and IP allocations; its root (images, snapshots) is kept in the
cache between runs, so that an unchanged image is imported once. What it cannot be
told (its shims' sockets under /run/containerd/s) is restored by :mod:`tests.cluster.restoring`.
Images come from docker archives (:mod:`tests.cluster.images`): ``ctr images import``, never a pull.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import time

from tests.cluster import errors, images, processes, waiting

NAMESPACE = "k8s.io"
"""The containerd namespace of the CRI plugin: images must be there for the kubelet to see them."""
IMPORT_TIMEOUT = 120.0


class Containerd:
    """A containerd process: :meth:`start`, :meth:`import_images`, then stop it with :meth:`stop`."""

    def __init__(
        self, *, workdir: pathlib.Path, root: pathlib.Path, cni_bin_dir: pathlib.Path, cni_conf_dir: pathlib.Path
    ) -> None:
        self.workdir = workdir
        self.root = root
        """Images and snapshots: kept between runs (in the cache) so that unchanged images are not imported again."""
        self.socket = workdir / "containerd.sock"
        self.config = workdir / "config.toml"
        self.cni_bin_dir = cni_bin_dir
        self.cni_conf_dir = cni_conf_dir
        self.process: processes.ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        """The CRI endpoint, as the kubelet wants it."""
        return f"unix://{self.socket}"

    def start(self, *, sandbox_image: str, timeout: float = 20.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self._config(sandbox_image=sandbox_image))
        argv = [_which("containerd"), "--config", str(self.config), "--log-level", "warn"]
        self.process = processes.ManagedProcess.start("containerd", argv, log_path=self.workdir / "containerd.log")
        waiting.wait_for(
            self.process.checked(lambda: self.ctr("version", check=False).returncode == 0),
            timeout=timeout,
            what=f"containerd to serve {self.socket} (log: {self.process.log_path})",
        )

    def stop(self, *, timeout: float = 10.0) -> None:
        if self.process is not None:
            processes.stop_all([self.process], timeout=timeout)

    def forget_containers(self) -> None:
        """Delete the containers an earlier run left in the kept root (their processes were killed by its teardown)."""
        leftovers = self.ctr("containers", "list", "--quiet").stdout.split()
        if leftovers:
            self.ctr("containers", "delete", *leftovers, check=False, timeout=60)

    def import_images(self, archives: list[images.Image]) -> dict[str, float]:
        """Import each archive unless containerd has its reference already (and drop earlier versions of ours);
        return the seconds each import took."""
        wanted = {image.reference for image in archives}
        present = set(self.ctr("images", "list", "--quiet").stdout.split())
        stale = [ref for ref in present - wanted if ref.startswith(f"{images.REPOSITORY}/")]
        if stale:
            self.ctr("images", "remove", *stale, check=False)
        took = {}
        for image in archives:
            if image.reference in present:
                continue
            started = time.monotonic()
            self.ctr("images", "import", "--no-unpack=false", str(image.archive), timeout=IMPORT_TIMEOUT)
            took[image.name] = time.monotonic() - started
        return took

    def ctr(self, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        argv = [_which("ctr"), "--address", str(self.socket), "--namespace", NAMESPACE, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise errors.StartupError(f"{' '.join(argv)} failed with code {done.returncode}: {done.stderr.strip()}")
        return done

    def _config(self, *, sandbox_image: str) -> str:
        """containerd 1.6's configuration (version 2). The two CRI settings that matter on this kind of host:

        ``restrict_oom_score_adj``: root here lacks CAP_SYS_RESOURCE, and runc fails every sandbox ("can't get
        final child's PID from pipe: EOF") when asked to lower an oom_score_adj; ``SystemdCgroup = false``: no
        systemd, the kubelet's cgroup driver is cgroupfs.
        """
        root, state = self.root, self.workdir / "state"
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        runc = f"{cri[:-1]}.containerd.runtimes.runc]"
        return f"""version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.workdir / "opt"}"

{cri}
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384

{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

{runc}
  runtime_type = "io.containerd.runc.v2"

{runc[:-1]}.options]
  SystemdCgroup = false
  BinaryName = "{_which("runc")}"
  Root = "{self.workdir / "runc"}"

{cri[:-1]}.cni]
  bin_dir = "{self.cni_bin_dir}"
  conf_dir = "{self.cni_conf_dir}"
  max_conf_num = 1
"""


def _which(name: str) -> str:
    found = shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin:/usr/local/bin")
    if found is None:
        raise errors.StartupError(f"{name} not found: run scripts/setup-node.sh")
    return found
