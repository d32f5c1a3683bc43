"""How Go's `encoding/json` matches object keys to struct fields (stdlib only: the sidecar imports it).

Go MCP servers and the system we re-imagine decode with it, so both the policy decoder (which mirrors
it) and the gateway's request inspection (which must refuse what it would read differently) need the
same folding.
"""

from __future__ import annotations


def key_fold(key: str) -> str:
    """The key as Go's case-insensitive field match sees it: EqualFold also folds the long s and the
    Kelvin sign onto ASCII letters."""
    return key.replace("\u017f", "s").replace("\u212a", "k").lower()
