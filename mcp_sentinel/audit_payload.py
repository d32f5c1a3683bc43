"""The audit payload: the `data` of every event the sidecar writes, defined once.

`FIELDS` is the contract. The sidecar builds `AuditPayload` dicts from it (`sidecar/record.py`),
ingest refuses an event whose payload gives a known field the wrong JSON type
(`payload_errors`, functions/ingest/app.py), storage materialises the fields that have a
`column` (`mcp_sentinel/storage/schema.py`) and the queries read those columns by the same
names (`mcp_sentinel/storage/queries.py`). tests/storage/test_audit_payload_parity.py holds the
four together. Unknown keys are allowed (other producers add their own); a known key with the
wrong type is not, since the materialised column would silently read it as "".

Stdlib only: the sidecar imports it, and its import graph stays free of pydantic.
"""

# No `from __future__ import annotations`: TypedDict reads `Required[...]` from evaluated annotations.
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Required, TypedDict


@dataclass(frozen=True, slots=True)
class PayloadField:
    """One payload key: its JSON types, its ClickHouse column type when materialised, whether always written."""

    name: str
    kinds: tuple[type, ...]
    column: str = ""
    always: bool = False


_S = (str,)
_I = (int,)
_LC = "LowCardinality(String)"

# Decision attributes copied from `mcp_sentinel.policy.types.Decision` when non-empty.
DECISION_FIELDS: Final = (
    "matched_grant",
    "matched_grant_namespace",
    "matched_session",
    "matched_session_namespace",
    "required_trust",
    "required_side_effect",
    "risk_level",
    "admin_trust",
    "consented_trust",
    "effective_trust",
    "would_deny_reason",
)

FIELDS: Final[tuple[PayloadField, ...]] = (
    # Materialised, in the column order of the events table.
    PayloadField("server", _S, _LC, always=True),
    PayloadField("namespace", _S, _LC, always=True),
    PayloadField("team_id", _S, _LC, always=True),  # the server's owning team
    PayloadField("cluster", _S, _LC, always=True),
    PayloadField("human_id", _S, _LC, always=True),
    PayloadField("agent_id", _S, _LC, always=True),
    PayloadField("session_id", _S, "String", always=True),  # unique per session: no LowCardinality
    PayloadField("decision", _S, _LC, always=True),
    PayloadField("tool_name", _S, _LC),
    PayloadField("reason", _S, _LC, always=True),
    PayloadField("rpc_method", _S, _LC),
    PayloadField("subject_team_id", _S, _LC, always=True),  # the caller's team
    # Only in the payload JSON.
    PayloadField("method", _S, always=True),
    PayloadField("path", _S, always=True),
    PayloadField("status", _I, always=True),
    PayloadField("latency_ms", _I, always=True),
    PayloadField("bytes_in", _I, always=True),
    PayloadField("bytes_out", _I, always=True),
    PayloadField("policy_version", _S, always=True),
    PayloadField("prompt_name", _S),
    PayloadField("resource_uri", _S),
    PayloadField("rpc_id", (str, int)),  # the JSON-RPC id as sent
    PayloadField("trace_id", _S),
    *(PayloadField(name, _S) for name in DECISION_FIELDS),
)

MATERIALIZED: Final[tuple[PayloadField, ...]] = tuple(f for f in FIELDS if f.column)
_KINDS: Final[dict[str, tuple[type, ...]]] = {f.name: f.kinds for f in FIELDS}


class AuditPayload(TypedDict, total=False):
    """The static shape of `FIELDS` (a test holds the two equal)."""

    server: Required[str]
    namespace: Required[str]
    team_id: Required[str]
    cluster: Required[str]
    human_id: Required[str]
    agent_id: Required[str]
    session_id: Required[str]
    decision: Required[str]
    tool_name: str
    reason: Required[str]
    rpc_method: str
    subject_team_id: Required[str]
    method: Required[str]
    path: Required[str]
    status: Required[int]
    latency_ms: Required[int]
    bytes_in: Required[int]
    bytes_out: Required[int]
    policy_version: Required[str]
    prompt_name: str
    resource_uri: str
    rpc_id: str | int
    trace_id: str
    matched_grant: str
    matched_grant_namespace: str
    matched_session: str
    matched_session_namespace: str
    required_trust: str
    required_side_effect: str
    risk_level: str
    admin_trust: str
    consented_trust: str
    effective_trust: str
    would_deny_reason: str


_TYPE_NAMES = {str: "a string", int: "an integer"}


def payload_errors(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for every known field whose value has the wrong JSON type; [] when it conforms."""
    out: list[tuple[str, str]] = []
    kinds = _KINDS
    for name, value in payload.items():
        want = kinds.get(name)
        # `type(...) in`: a JSON boolean is a Python bool, which must not pass as an integer.
        if want is not None and type(value) not in want:
            out.append((name, "must be " + " or ".join(_TYPE_NAMES[k] for k in want)))
    return out
