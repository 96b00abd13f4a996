"""Who may talk to the service: the authenticator protocol, the shared token, and a chain of authenticators.

The service asks an :class:`Authenticator` about the bearer token of every worker
connection and every runs API request, before anything else is read. In a cluster
the Kubernetes side adds a TokenReview authenticator (``kube.reviewing``).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Protocol


class Authenticator(Protocol):
    """Checks the bearer token a worker or client presents; returns who it is, or None."""

    async def authenticate(self, token: str) -> str | None: ...


class SharedTokenAuthenticator:
    """One shared secret for every worker (local mode and simple setups)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the shared token must not be empty")
        self._token = token.encode()

    async def authenticate(self, token: str) -> str | None:
        return "shared-token" if hmac.compare_digest(token.encode(), self._token) else None


class AnyOfAuthenticator:
    """Accepts what any of its authenticators accepts, asking them in order."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        if not authenticators:
            raise ValueError("at least one authenticator is needed")
        self._authenticators = tuple(authenticators)

    async def authenticate(self, token: str) -> str | None:
        for authenticator in self._authenticators:
            identity = await authenticator.authenticate(token)
            if identity is not None:
                return identity
        return None
