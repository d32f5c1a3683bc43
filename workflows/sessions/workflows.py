"""SessionExpiry: one durable timer per MCPAgentSession with `expiresAt`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.reconcile.activities import PolicyActivities, RenderRequest
    from workflows.sessions.activities import MarkSession, SessionActivities

TASK_QUEUE = "sentinel-sessions"

# The session must end up marked and the policy re-rendered: keep retrying (the API server or
# renderer may be down for a while), but cap each attempt.
ACT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
ACT_TIMEOUT = timedelta(seconds=60)


@dataclass
class SessionExpiryInput:
    """The session and its current expiry (RFC 3339); server fields let a delete still re-render."""

    namespace: str
    name: str
    expires_at: str
    server: str = ""
    server_namespace: str = ""


@dataclass
class SessionExpiryResult:
    """`outcome` is `expired`, `revoked` or `deleted`."""

    outcome: str
    expires_at: str
    policy_changed: bool = False
    policy_error: str = ""


def session_workflow_id(namespace: str, name: str) -> str:
    """Stable per session, so the API can signal without storing anything."""
    return f"session-expiry/{namespace}/{name}"


def parse_time(value: str) -> datetime:
    """RFC 3339 (with `Z`) to an aware datetime."""
    return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))


@workflow.defn(name="SessionExpiry")
class SessionExpiry:
    """Sleeps until expiry; `extend` moves the deadline, `revoke` and `delete` end it early."""

    @workflow.init
    def __init__(self, inp: SessionExpiryInput) -> None:
        self._expires_at = parse_time(inp.expires_at)
        self._action = ""

    @workflow.signal
    def extend(self, expires_at: str) -> None:
        """New expiry (RFC 3339); an earlier time shortens the session."""
        self._expires_at = parse_time(expires_at)

    @workflow.signal
    def revoke(self) -> None:
        """Revoke now: mark revoked and re-render."""
        self._action = self._action or "revoked"

    @workflow.signal
    def delete(self) -> None:
        """The session was deleted: stop the timer (and re-render without it)."""
        self._action = self._action or "deleted"

    @workflow.query
    def expires_at(self) -> str:
        """The current expiry."""
        return _rfc3339(self._expires_at)

    def _changed(self, seen: datetime) -> Callable[[], bool]:
        return lambda: bool(self._action) or self._expires_at != seen

    @workflow.run
    async def run(self, inp: SessionExpiryInput) -> SessionExpiryResult:
        """Wait, then act exactly once."""
        server_ns, server = inp.server_namespace or inp.namespace, inp.server
        while True:
            await self._wait(inp)
            result = SessionExpiryResult(self._action, _rfc3339(self._expires_at))
            if self._action not in ("expired", "revoked"):
                break
            marked = await workflow.execute_activity_method(
                SessionActivities.mark,
                MarkSession(
                    inp.namespace,
                    inp.name,
                    self._action.capitalize(),
                    _rfc3339(workflow.now()),
                    _rfc3339(self._expires_at),
                ),
                start_to_close_timeout=ACT_TIMEOUT,
                retry_policy=ACT_RETRY,
            )
            if marked.extended_to and self._action == "expired":
                self._expires_at, self._action = parse_time(marked.extended_to), ""
                continue
            if marked.server:
                server_ns, server = marked.namespace, marked.server
            if not marked.found:
                result.outcome = "deleted"
            break
        if server:
            rendered = await workflow.execute_activity_method(
                PolicyActivities.render_server,
                RenderRequest(server_ns, server, f"session-{result.outcome}"),
                start_to_close_timeout=ACT_TIMEOUT,
                retry_policy=ACT_RETRY,
            )
            result.policy_changed, result.policy_error = rendered.changed, rendered.error
        return result

    async def _wait(self, inp: SessionExpiryInput) -> None:
        while not self._action:
            remaining = (self._expires_at - workflow.now()).total_seconds()
            if remaining <= 0:
                self._action = "expired"
                return
            try:
                await workflow.wait_condition(self._changed(self._expires_at), timeout=timedelta(seconds=remaining))
            except TimeoutError:
                continue
            if not self._action and workflow.info().is_continue_as_new_suggested():
                # Many extensions grow the history; carry the current expiry into a fresh run.
                workflow.continue_as_new(
                    SessionExpiryInput(
                        inp.namespace, inp.name, _rfc3339(self._expires_at), inp.server, inp.server_namespace
                    )
                )


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
