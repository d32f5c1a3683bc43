"""Calls that wait for a human: the gateway's side of approvals (issue 18 item 3).

After the policy allowed a `tools/call`, `ApprovalGate.check` asks whether the grant that allowed
it (`Decision.matched_grant`) requires an approval for that tool or side effect
(`mcp_sentinel.policy.approvals.ApprovalIndex`, a dict lookup; nothing at all when no grant of the
document has `approval`). If it does, the gateway asks the API (`POST /api/gateway/approvals`,
authenticated by its per-gateway credential) to spend an approval of exactly this call:

* `used`: the call is forwarded, audited `allowed` with reason `approval_used`;
* `pending`: denied `approval_required` (403) with `data.approvalId`, `data.url` and `data.expiresAt`
  (`approval_expired` when the call's previous approval lapsed unused: a new request was started);
* `rejected`: denied `approval_rejected` (403) with `data.approvalId`;
* `limited`: denied `approval_limit` (429): the caller already has the API's cap of pending requests;
* the API unreachable, not configured, or answering anything else: denied `approval_unavailable`
  (503). Fail closed: a call that needs a human never goes through because the check could not run.

A batch holding a call that needs approval is denied whole without asking (`approval_required`,
`data.batch`): spending an approval on a batch another message might still fail would waste it.
Elicitation is not used: the person who must approve is the server's owner, not the client's user.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from mcp_sentinel import jsonrpc
from mcp_sentinel.policy import reasons as R
from mcp_sentinel.policy.approvals import ApprovalIndex, Requirement
from mcp_sentinel.policy.evaluate import CompiledPolicy
from mcp_sentinel.policy.normalize import fold
from mcp_sentinel.policy.types import Decision
from sidecar.exchange import Exchange
from sidecar.state import SidecarState

log = logging.getLogger("sidecar.approval")
PATH = "/api/gateway/approvals"
TIMEOUT_SECONDS = 10.0


class ApprovalGate:
    """Per app: the approval index of the current policy and the client to the API."""

    def __init__(self, state: SidecarState) -> None:
        self.state = state
        self._policy: CompiledPolicy | None = None
        self._index: ApprovalIndex | None = None

    def index(self, policy: CompiledPolicy | None) -> ApprovalIndex | None:
        """The policy's approval rules (None when no grant asks for approvals or the policy observes)."""
        if policy is not self._policy:
            blk = policy.doc.policy if policy is not None else None
            observe = blk is not None and fold(blk.mode) == "observe"
            built = ApprovalIndex(policy.doc) if policy is not None and not observe else None
            self._policy, self._index = policy, built if built else None
        return self._index

    async def check(self, ex: Exchange, insp: jsonrpc.Inspection) -> list[tuple[jsonrpc.Message, Decision]]:
        """The calls to deny for want of an approval (empty: go ahead); updates `ex.decisions` in place."""
        index = self.index(ex.policy)
        if index is None:
            return []
        denied: list[tuple[jsonrpc.Message, Decision]] = []
        for i, (msg, d) in enumerate(ex.decisions):
            if not (msg.is_tool_call and d.allowed):
                continue
            need = index.requirement(d.matched_grant_namespace, d.matched_grant, msg.tool_name,
                                     d.required_side_effect)  # fmt: skip
            if need is None:
                continue
            if insp.batch:
                verdict = _copy(d, allowed=False, status=403, reason=R.APPROVAL_REQUIRED)
                verdict.extra = {"batch": "send calls that need an approval one at a time"}
            else:
                verdict = await self._ask(ex, msg, d, need)
            ex.decisions[i] = (msg, verdict)
            if not verdict.allowed:
                denied.append((msg, verdict))
        return denied

    async def _ask(self, ex: Exchange, msg: jsonrpc.Message, d: Decision, need: Requirement) -> Decision:
        s = self.state.settings
        session = self.state.session
        unavailable = _copy(d, allowed=False, status=503, reason=R.APPROVAL_UNAVAILABLE)
        if not s.approvals_api_url or not s.approvals_credential or session is None:
            log.warning("a call needs an approval but APPROVALS_API_URL or the gateway credential is not set")
            return unavailable
        params = msg.params if isinstance(msg.params, dict) else {}
        arguments = params.get("arguments")
        ident = ex.identity
        body = {
            "tool": msg.tool_name,
            # Absent is `{}`; anything but an object is sent as it is and refused by the API (fail closed).
            "arguments": {} if arguments is None else arguments,
            "humanID": ident.human_id,
            "agentID": ident.agent_id,
            "teamID": ident.team_id,
            "sessionID": ident.session_id,
            "sideEffect": d.required_side_effect,
            "grant": need.grant,
            "grantNamespace": need.grant_namespace,
            "ttlSeconds": need.ttl_seconds,
        }
        try:
            async with session.post(
                s.approvals_api_url + PATH,
                data=json.dumps(body).encode(),
                # The shared session skips automatic Content-Type (it forwards the caller's own).
                headers={"X-Gateway-Credential": s.approvals_credential, "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
            ) as resp:
                if resp.status != 200:
                    log.warning("approvals API answered %s: %s", resp.status, (await resp.text())[:300])
                    return unavailable
                answer: Any = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("approvals API unreachable: %s", exc)
            return unavailable
        if not isinstance(answer, dict):
            return unavailable
        status, approval_id = answer.get("status"), str(answer.get("approvalId", ""))
        if status == "used":
            return _copy(d, allowed=True, status=200, reason=R.APPROVAL_USED)
        if status == "pending":
            # A new request because the last approval of this call lapsed unused: say so (and audit it).
            expired = answer.get("previous") == "expired"
            out = _copy(d, allowed=False, status=403, reason=R.APPROVAL_EXPIRED if expired else R.APPROVAL_REQUIRED)
            out.extra = {"approvalId": approval_id, "url": str(answer.get("url", "")),
                         "expiresAt": str(answer.get("expiresAt", ""))}  # fmt: skip
            return out
        if status == "limited":
            # Too many of this caller's requests wait already (the API's cap): no new one was made.
            return _copy(d, allowed=False, status=429, reason=R.APPROVAL_LIMIT)
        if status == "rejected":
            out = _copy(d, allowed=False, status=403, reason=R.APPROVAL_REJECTED)
            out.extra = {"approvalId": approval_id}
            return out
        return unavailable


def _copy(d: Decision, *, allowed: bool, status: int, reason: str) -> Decision:
    """The evaluator's decision (grant, trust, side effect kept for audit) with a new outcome."""
    return Decision(
        allowed=allowed,
        status=status,
        reason=reason,
        policy_version=d.policy_version,
        required_trust=d.required_trust,
        required_side_effect=d.required_side_effect,
        risk_level=d.risk_level,
        admin_trust=d.admin_trust,
        consented_trust=d.consented_trust,
        effective_trust=d.effective_trust,
        matched_grant=d.matched_grant,
        matched_grant_namespace=d.matched_grant_namespace,
        matched_session=d.matched_session,
        matched_session_namespace=d.matched_session_namespace,
    )
