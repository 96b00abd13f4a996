"""The ``workpath`` commands of the control plane, with kubectl's habits: ``get``, ``describe``, ``cancel``,
``workers``, ``logs`` and ``run``, against local mode (``workpath dev``: a URL and a token) or a cluster (the
kubeconfig, ``-n``/``-A``).

- :mod:`~.arguments`: the flags commands share, params, running a command's coroutine;
- :mod:`~.locating`: where a command talks to: the local service, or a cluster's API server and operator;
- :mod:`~.calling`: the service's HTTP API (runs, logs, workers); :mod:`~.clusters`: Routines and Events;
- :mod:`~.rendering`: tables, descriptions, progress, JSON and YAML (rich, loaded only by the commands that print);
- :mod:`~.runs` (``get``, ``describe``, ``cancel``, ``logs``), :mod:`~.running` (``run``), :mod:`~.workers`.

``workpath_operator.cli`` plugs them into ``workpath`` through the ``workpath.commands`` entry points.
"""
