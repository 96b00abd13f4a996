"""The configuration files of the node's components: kubelet, kube-proxy, CoreDNS. Each setting that differs from
the defaults says why; the ones without which nothing runs on this kind of host come first."""

from __future__ import annotations

import pathlib

import yaml

from tests.cluster import networking

CLUSTER_DOMAIN = "cluster.local"


def kubelet_config(
    path: pathlib.Path,
    *,
    runtime_endpoint: str,
    cgroup_root: str,
    healthz_port: int,
    resolv_conf: pathlib.Path,
    pod_logs_dir: pathlib.Path,
) -> pathlib.Path:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This host is cgroup v1, which the kubelet refuses by default since 1.35.
        "failCgroupV1": False,
        # No systemd here; and every cgroup of the node under one root that teardown removes.
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failSwapOn": False,
        # Imported images cannot be pulled again: never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A shared test machine's disk and memory are not the pods' to protect: evict only in extremis.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "containerRuntimeEndpoint": runtime_endpoint,
        # Served on the bridge for `kubectl logs`; the apiserver has no client certificate for the kubelet, so
        # anonymous requests are allowed (a test VM, nothing else reaches the bridge).
        "address": networking.GATEWAY,
        "port": 10250,
        "readOnlyPort": 0,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "clusterDNS": [networking.GATEWAY],
        "clusterDomain": CLUSTER_DOMAIN,
        # Pods resolve cluster names only: nothing is forwarded to the host's resolver.
        "resolvConf": str(resolv_conf),
        "podLogsDir": str(pod_logs_dir),
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "staticPodPath": "",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusReportFrequency": "10s",
        "shutdownGracePeriod": "0s",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def kube_proxy_config(
    path: pathlib.Path, *, kubeconfig: pathlib.Path, node_name: str, healthz_port: int, metrics_port: int
) -> pathlib.Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "bindAddress": networking.GATEWAY,
        "clusterCIDR": networking.SUBNET,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # Leave the host's conntrack sysctls alone (0: do not set).
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        # No route_localnet sysctl: NodePorts on 127.0.0.1 are not needed.
        "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        "nodePortAddresses": [f"{networking.GATEWAY}/32"],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def corefile(path: pathlib.Path, *, kubeconfig: pathlib.Path, ready_port: int) -> pathlib.Path:
    """Cluster DNS on the bridge address: Services and pods of cluster.local, nothing forwarded anywhere."""
    path.write_text(
        f""".:53 {{
    bind {networking.GATEWAY}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} workpath-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""
    )
    return path
