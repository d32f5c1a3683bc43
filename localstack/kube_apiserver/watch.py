"""Watch events of the local Kubernetes API server: what a watcher receives, and which events it may see."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from localstack.kube_apiserver.admission import Key
from localstack.kube_apiserver.selectors import Predicate
from localstack.kube_apiserver.status import (
    JSON,
)


@dataclass
class Event:
    """One committed change, kept in the bounded history and fanned out to watchers."""

    rv: int
    type: str
    key: Key
    obj: JSON
    old: JSON | None = None


@dataclass(eq=False)
class Watcher:
    """A live watch: which resource, which namespace, and the queue its stream drains."""

    key: Key
    namespace: str | None
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)


def event_filter(pred: Predicate) -> Callable[[Event], str | None]:
    """Map a raw event to the type a selector-filtered watcher sees (or None to skip it).

    An object that stops matching a selector is reported DELETED and one that starts matching
    is ADDED, as the real watch cache does.
    """

    def visible(event: Event) -> str | None:
        new_ok = pred(event.obj)
        if event.type == "MODIFIED":
            old_ok = event.old is not None and pred(event.old)
            if new_ok and old_ok:
                return "MODIFIED"
            if new_ok:
                return "ADDED"
            return "DELETED" if old_ok else None
        return event.type if new_ok else None

    return visible
