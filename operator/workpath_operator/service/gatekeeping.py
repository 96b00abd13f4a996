"""Who may call the directive service: the bearer token of a request, checked before anything else.

The workers' WebSocket and the HTTP runs API take the same token (``Authorization: Bearer ...``); the
authenticator decides whose it is (a shared token, or a Kubernetes ServiceAccount through TokenReview).
"""

from __future__ import annotations

import logging

from aiohttp import web

from workpath_operator.service import authenticating

logger = logging.getLogger("workpath.service")


async def authenticate(request: web.Request, authenticator: authenticating.Authenticator) -> str:
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
