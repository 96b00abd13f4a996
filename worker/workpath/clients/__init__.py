"""Clients of workpath: run routines from any Python program (:class:`workpath.Client`).

- :mod:`~.api`: :class:`~.api.Client` and :class:`~.api.RunHandle` (async);
- :mod:`~.blocking`: :class:`~.blocking.SyncClient`, the same for scripts and web apps without an event loop;
- :mod:`~.frames`: the clients' protocol (``/v1/clients``), run specs and statuses;
- :mod:`~.targets`: what a client talks to, and finding the local service; :mod:`~.streaming`: the service's;
- :mod:`~.clusters`: a Kubernetes cluster's (Routines through the API server: :mod:`~.apiservers` for credentials
  and calls, :mod:`~.watching` for the one watch that awaits them, :mod:`~.resources` for their format).
"""
