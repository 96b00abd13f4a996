"""The generated client's answers, typed as the API server sends them.

The generated models make every field Optional, even those the API server always fills in (an object's metadata
and name, a pod's status), and ``CustomObjectsApi`` answers are typed ``object`` though they are the JSON objects.
"""

from __future__ import annotations

from typing import Any, Protocol

import kubernetes.client


class _Object(Protocol):
    @property
    def metadata(self) -> kubernetes.client.V1ObjectMeta | None: ...


def required[T](value: T | None) -> T:
    """``value``, which the API server always sends (asserted: None fails here, not one attribute later)."""
    assert value is not None
    return value


def name(obj: _Object) -> str:
    """The object's name (every object the API server answers with has metadata and a name)."""
    return required(required(obj.metadata).name)


def json_object(answer: object) -> dict[str, Any]:
    """A ``CustomObjectsApi`` answer (typed ``object``): the custom object, or a list of them, as JSON."""
    assert isinstance(answer, dict), answer
    return answer
