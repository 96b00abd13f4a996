"""Where a command talks to: the local service, or a cluster (its API server, and its operator's service).

- local mode: ``--url``/``--token``, else ``$WORKPATH_API_URL``/``$WORKPATH_TOKEN``, else ``.workpath/dev.json``
  (written by ``workpath dev`` in this directory), as :func:`workpath.clients.targets.locate` finds them;
- a cluster (``-n``/``-A``): Routines and Events are read from the API server with the kubeconfig's credentials
  (in-cluster in a pod); what only the operator knows (workers, log lines, submitting a run) is asked of its
  service at ``--url`` (``$WORKPATH_API_URL``), with ``--token`` or else the kubeconfig user's own token, so that
  Kubernetes RBAC on Routines decides, as for kubectl.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import uuid

from workpath import errors as workpath_errors
from workpath.clients import targets
from workpath_operator.commands import calling, errors

#: The namespace of a cluster command without ``-n`` (``logs NAME``): the kubeconfig context's, else this one.
DEFAULT_NAMESPACE = "default"


def local_api(args: argparse.Namespace, *, state_file: pathlib.Path = targets.STATE_FILE) -> calling.ServiceApi:
    """The local service's API, found as ``workpath run`` finds it; a :class:`CommandError` says how to start one."""
    if args.url is None and args.token is None and not os.environ.get(targets.URL_VARIABLE) and not state_file.exists():
        raise errors.CommandError(
            f"no workpath service to talk to: {state_file} is not here; start 'workpath dev MODULE' in this "
            f"directory (it writes {state_file}), or pass --url and --token (or ${targets.URL_VARIABLE} and "
            f"${targets.TOKEN_VARIABLE}); for a cluster, pass -n NAMESPACE",
            code=errors.EXIT_USAGE,
        )
    try:
        location = targets.locate(args.url, token=args.token, state_file=state_file)
    except workpath_errors.ClientError as exc:
        message = str(exc).replace("url= and token=", "--url and --token")
        raise errors.CommandError(message, code=errors.EXIT_USAGE) from None
    return calling.ServiceApi(
        dataclasses.replace(
            location,
            url_from="--url" if location.url_from == "url=" else location.url_from,
            token_from="--token" if location.token_from == "token=" else location.token_from,
        )
    )


async def operator_api(args: argparse.Namespace, *, namespace: str | None) -> calling.ServiceApi:
    """The operator's service, for a command with ``-n``: its URL must be given; its token defaults to the
    kubeconfig user's (RBAC on Routines in ``namespace`` decides what it may do)."""
    url, url_from = args.url, "--url"
    if url is None and os.environ.get(targets.URL_VARIABLE):
        url, url_from = os.environ[targets.URL_VARIABLE], f"${targets.URL_VARIABLE}"
    if url is None:
        raise errors.CommandError(
            "which operator? pass --url of its directive service (or set $WORKPATH_API_URL), e.g. "
            "--url http://127.0.0.1:7740 after 'kubectl -n workpath port-forward svc/workpath 7740'",
            code=errors.EXIT_USAGE,
        )
    token, token_from = args.token, "--token"
    if token is None and os.environ.get(targets.TOKEN_VARIABLE):
        token, token_from = os.environ[targets.TOKEN_VARIABLE], f"${targets.TOKEN_VARIABLE}"
    if token is None:
        token, token_from = await _kubeconfig_token(), "your kubeconfig user"
    location = targets.Location(url=url.rstrip("/"), token=token, url_from=url_from, token_from=token_from)
    return calling.ServiceApi(location, namespace=namespace)


async def _kubeconfig_token() -> str:
    from workpath_operator.kube import clients  # the Kubernetes client takes a while to import

    try:
        header = await clients.authorization(await clients.load_configuration())
    except clients.ApiError as exc:
        raise errors.CommandError(f"cannot read your credentials: {exc.message}; or pass --token") from exc
    if header is None or not header.startswith("Bearer "):
        raise errors.CommandError(
            "your kubeconfig user has no bearer token for the operator's service (it checks tokens with the API "
            'server): pass --token, e.g. --token "$(kubectl create token NAME)"'
        )
    return header.removeprefix("Bearer ")


def is_run_id(text: str) -> bool:
    """Whether ``text`` is a run ID (a UUID) rather than a Routine's name."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def namespace_of(args: argparse.Namespace) -> str | None:
    """The namespace a cluster command is about: ``-n``, None with ``-A`` (every one), else the kubeconfig
    context's (as kubectl)."""
    if getattr(args, "all_namespaces", False):
        return None
    return str(args.namespace) if args.namespace else context_namespace()


def context_namespace() -> str:
    """The namespace of the kubeconfig's current context, else ``default`` (as kubectl does)."""
    import kubernetes_asyncio.config

    try:
        _, current = kubernetes_asyncio.config.list_kube_config_contexts()
    except (kubernetes_asyncio.config.ConfigException, OSError):
        return DEFAULT_NAMESPACE
    return str(((current or {}).get("context") or {}).get("namespace") or DEFAULT_NAMESPACE)
