"""Who may talk to the service: identities, the authenticator protocol, the shared token, a chain of authenticators.

The service asks an :class:`Authenticator` about the bearer token of every worker
connection and every runs API request, before anything else is read. The answer is an
:class:`Identity`: who the token belongs to, and for a Kubernetes token bound to a pod,
which pod. In a cluster the Kubernetes side adds a TokenReview authenticator
(``kube.reviewing``).

A worker ID is bound to the identity that first connected with it (:attr:`Identity.holder`):
the pod (by UID) when the token is bound to one, else the user. The shared token is one
identity for everyone who knows it, so it binds nothing beyond knowing the token.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Mapping, Sequence
from typing import Protocol

#: The username of whoever presents the shared token.
SHARED_TOKEN_USER = "shared-token"


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who a bearer token belongs to, as the authenticator (or Kubernetes' TokenReview) said."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    #: Extra attributes of the user (TokenReview's ``status.user.extra``), passed on to authorization as they are.
    extra: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: The pod a bound ServiceAccount token was issued for (its name and UID), if any.
    pod_name: str | None = None
    pod_uid: str | None = None
    #: Whether Kubernetes vouched for it (TokenReview), so that Kubernetes RBAC can be asked about it.
    kubernetes: bool = False

    @property
    def holder(self) -> str:
        """What a worker ID is bound to: this pod (a pod's new token is the same pod), else this user."""
        if self.pod_uid:
            return f"pod:{self.pod_uid}"
        return f"user:{self.username}" if self.kubernetes else self.username

    def __str__(self) -> str:
        return f"{self.username} (pod {self.pod_name})" if self.pod_name else self.username


SHARED_TOKEN = Identity(SHARED_TOKEN_USER)


class Authenticator(Protocol):
    """Checks the bearer token a worker or client presents; returns who it is, or None."""

    async def authenticate(self, token: str) -> Identity | None: ...


class SharedTokenAuthenticator:
    """One shared secret for every worker and client (local mode and simple setups).

    It proves that the caller knows the token, nothing more: everyone who has it is the same identity, so one
    holder of the token can announce another's worker ID, and the runs API cannot tell callers apart.
    """

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the shared token must not be empty")
        self._token = token.encode()

    async def authenticate(self, token: str) -> Identity | None:
        return SHARED_TOKEN if hmac.compare_digest(token.encode(), self._token) else None


class AnyOfAuthenticator:
    """Accepts what any of its authenticators accepts, asking them in order."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        if not authenticators:
            raise ValueError("at least one authenticator is needed")
        self._authenticators = tuple(authenticators)

    async def authenticate(self, token: str) -> Identity | None:
        for authenticator in self._authenticators:
            identity = await authenticator.authenticate(token)
            if identity is not None:
                return identity
        return None
