"""Where a :class:`workpath.Client` sends its runs: the target protocol, and finding the local service.

A :class:`Target` is what the client needs of a place that runs routines: submit runs (many at once), be told
how each ends, read a run's status, cancel it, stream its log lines. The client is the same whatever the target:

- :class:`~workpath.clients.streaming.ServiceTarget`: the directive service's clients' WebSocket
  (``/v1/clients``), local mode (``workpath dev``) or the operator's (with ``namespace``);
- :class:`~workpath.clients.clusters.ClusterTarget`: a Kubernetes cluster, where runs are Routines created with
  the API server (kubeconfig or in-cluster credentials) and awaited through one watch of their status.

:func:`locate` finds the local service as ``workpath run`` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from workpath import directives, errors
from workpath.clients import frames

#: Where ``workpath dev`` writes its URL and token (in the directory it was started in).
STATE_FILE = pathlib.Path(".workpath") / "dev.json"
URL_VARIABLE = "WORKPATH_API_URL"
TOKEN_VARIABLE = "WORKPATH_TOKEN"


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """A submitted run as its target answered: its run ID and the future of its outcome, or why it was refused."""

    run_id: directives.RunID | None
    outcome: asyncio.Future[frames.Outcome] | None
    routine: frames.RoutineRef | None = None
    refusal: directives.ErrorInfo | None = None


class Target(Protocol):
    """What :class:`workpath.Client` needs of a place that runs routines."""

    async def open(self) -> None:
        """Connect; raise :class:`~workpath.errors.ClientError` saying what to fix when it cannot."""

    async def close(self) -> None:
        """Disconnect; runs submitted go on."""

    async def submit(self, specs: Sequence[frames.RunSpec]) -> list[Ticket]:
        """Start these runs; one ticket each, in order."""

    def follow(self, run_id: directives.RunID) -> asyncio.Future[frames.Outcome]:
        """The outcome of a run already submitted (by anyone), once it ends."""

    async def read(self, run_id: directives.RunID) -> frames.Status:
        """The run's status now."""

    def cancel(self, run_id: directives.RunID, *, reason: str) -> asyncio.Future[frames.Status]:
        """Cancel the run (sent at once, without awaiting); its status once the target answers."""

    def logs(self, run_id: directives.RunID, *, follow: bool) -> AsyncIterator[directives.Log]:
        """The run's log lines so far; with ``follow``, then new ones until it ends."""


@dataclasses.dataclass(frozen=True, slots=True)
class Location:
    """Where the service is, its token, and where each came from (for errors that say what to fix)."""

    url: str
    token: str
    url_from: str
    token_from: str


def locate(url: str | None = None, *, token: str | None = None, state_file: pathlib.Path = STATE_FILE) -> Location:
    """The service's URL and token: as given, else ``$WORKPATH_API_URL`` / ``$WORKPATH_TOKEN``, else what
    ``workpath dev`` wrote to ``.workpath/dev.json`` (as ``workpath run`` finds them)."""
    url_from, token_from = "url=", "token="
    if url is None and os.environ.get(URL_VARIABLE):
        url, url_from = os.environ[URL_VARIABLE], f"${URL_VARIABLE}"
    if token is None and os.environ.get(TOKEN_VARIABLE):
        token, token_from = os.environ[TOKEN_VARIABLE], f"${TOKEN_VARIABLE}"
    if url is None or token is None:
        saved = _read_state(state_file)
        if url is None:
            url, url_from = str(saved["url"]), str(state_file)
        if token is None:
            token, token_from = str(saved["token"]), f"{state_file} (written by each 'workpath dev' start)"
    return Location(url=url.rstrip("/"), token=token, url_from=url_from, token_from=token_from)


def _read_state(path: pathlib.Path) -> dict[str, object]:
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise errors.ClientError(
            f"no workpath service to talk to: {path} is not here; start 'workpath dev MODULE' in this directory "
            f"(it writes {path}), or give url= and token= (or ${URL_VARIABLE} and ${TOKEN_VARIABLE})"
        ) from None
    except (OSError, ValueError) as exc:
        raise errors.ClientError(f"cannot read {path} ({exc}); give url= and token= instead") from None
    if not isinstance(saved, dict) or "url" not in saved or "token" not in saved:
        raise errors.ClientError(f"{path} has no url and token; restart 'workpath dev', or give url= and token=")
    return saved
