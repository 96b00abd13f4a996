"""The k8s tier: tests against a real kube-apiserver + etcd + kube-controller-manager (see tests/cluster)."""
