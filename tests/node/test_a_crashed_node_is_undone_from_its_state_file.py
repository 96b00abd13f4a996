"""The node's teardown leaves the host as it found it, even after a crash: a node whose processes are all SIGKILLed
mid-life (its containers, shims, mounts, iptables rules, cgroups, veths and sysctls left behind) is cleaned up from
its state file alone, and a second cleanup changes nothing. Runs before the session's node starts (one node per
machine): its file name sorts first in this directory."""

from __future__ import annotations

import pathlib

import pytest

from tests.cluster import builds, networking, node, restoring


def test_a_crashed_node_is_undone_from_its_state_file(
    k8s_binaries: builds.Binaries, node_binaries: node.NodeBinaries
) -> None:
    if restoring.STATE_FILE.exists() or (pathlib.Path("/sys/class/net") / networking.BRIDGE).exists():
        pytest.skip("A node is already up on this machine: this test needs the host without one.")
    before = restoring.observe()
    try:
        crashed = node.NodeCluster.start(binaries=k8s_binaries)
    except restoring.NodeBusyError as e:
        pytest.skip(str(e))
    try:
        worker = crashed.images["worker"].reference
        crashed.control_plane.kubectl(
            "run", "sleeper", f"--image={worker}", "--image-pull-policy=Never", "--restart=Never", "--command", "--",
            "python", "-c", "import time; time.sleep(600)",
        )  # fmt: skip
        crashed.control_plane.kubectl("wait", "pod/sleeper", "--for=condition=Ready", "--timeout=60s", timeout=70)
        during = restoring.observe()
    finally:
        crashed.crash()
    assert during != before  # The node did change the host.

    lock = restoring.MachineLock()
    lock.acquire()
    try:
        restoring.restore_leftovers()
        after = restoring.observe()
        restoring.restore_leftovers()  # Nothing left to do: the state file is gone.
    finally:
        lock.release()

    assert not restoring.differences(before, after)
    assert restoring.observe() == after
    assert not restoring.STATE_FILE.exists()
