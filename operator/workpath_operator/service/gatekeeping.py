"""Who may call the directive service: the bearer token of a request, and the worker ID a connection claims.

The workers' WebSocket and the HTTP runs API take a bearer token (``Authorization: Bearer ...``); the
authenticator decides whose it is (a shared token, or a Kubernetes identity through TokenReview). A worker
connection then claims a worker ID in its ``v1.ready``: a pod may only be the worker named after it (the roster
checks the rest: that no other identity holds the ID).
"""

from __future__ import annotations

import logging

from aiohttp import web

from workpath import directives, errors
from workpath_operator.service import authenticating

logger = logging.getLogger("workpath.service")


async def authenticate(request: web.Request, authenticator: authenticating.Authenticator) -> authenticating.Identity:
    """The identity behind the request's bearer token; 401 without a token, or with one that is refused."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise web.HTTPUnauthorized(
            text="missing bearer token: send 'Authorization: Bearer <token>'\n",
            headers={"WWW-Authenticate": "Bearer"},
        )
    identity = await authenticator.authenticate(token.strip())
    if identity is None:
        logger.warning("refused a connection from %s: bad token", request.remote)
        raise web.HTTPUnauthorized(text="token refused\n", headers={"WWW-Authenticate": "Bearer"})
    return identity


def check_worker_id(identity: authenticating.Identity, worker_id: directives.WorkerID) -> None:
    """A pod's token announces the pod's own name as worker ID, or it is refused (a pod cannot pose as another)."""
    if identity.pod_name is not None and worker_id != identity.pod_name:
        raise errors.DirectiveError(
            directives.ErrorCode.WORKER_ID_REFUSED,
            f"worker ID {worker_id!r} refused: the token is pod {identity.pod_name}'s, whose worker ID is its pod "
            f"name; set WORKPATH_WORKER_ID to the pod's name (fieldRef metadata.name)",
            in_reply_to=directives.Ready.KEY,
        )
