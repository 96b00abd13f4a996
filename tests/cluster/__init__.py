"""A real Kubernetes control plane for the test suite, and a kubelet that runs pods as local processes.

- ``build.sh``: builds kube-apiserver, kube-controller-manager and helm from Go modules, fetches etcd (cached).
- :mod:`~tests.cluster.controlplane`: :class:`Cluster`, etcd + kube-apiserver + kube-controller-manager.
- :mod:`~tests.cluster.kubelet`: :class:`ProcessKubelet`, fake nodes whose pods are local processes.
- :mod:`~tests.cluster.fixtures`: the pytest plugin (``k8s_cluster``, ``process_kubelet``, ``k8s_namespace``).
- ``testcluster`` (``python -m tests.cluster``): the same cluster for people, ``up`` / ``down`` / ``status``.
"""
