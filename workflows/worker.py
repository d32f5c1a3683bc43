"""The worker: every workflow and activity, on every task queue, with Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from mcp_sentinel.env import SettingsError, choice, integer, number, text
from mcp_sentinel.kube.objects import Cluster
from mcp_sentinel.kube.server_render import RenderSettings
from workflows.approvals.activities import ApprovalActivities, AuditSink, StoreSink
from workflows.approvals.workflows import ApprovalWorkflow
from workflows.client import TASK_QUEUES, TemporalSettings, ensure_reconcile_schedule, ensure_server_reconcile_schedule
from workflows.lifecycle.activities import LifecycleActivities
from workflows.lifecycle.workflows import TASK_QUEUE as LIFECYCLE_QUEUE
from workflows.lifecycle.workflows import ServerLifecycle, ServerReconcile
from workflows.provisioning.activities import ProvisioningActivities, TeamStore
from workflows.provisioning.workflows import DeprovisionTeam, ProvisionTeam
from workflows.reconcile.activities import PolicyActivities
from workflows.reconcile.workflows import PolicyReconcile
from workflows.restarts.activities import KubernetesRestarts, RestartActivities, RestartBackend
from workflows.restarts.workflows import RestartComponent
from workflows.sessions.activities import SessionActivities
from workflows.sessions.workflows import SessionExpiry

log = logging.getLogger("workflows.worker")

WORKFLOWS: Sequence[type] = (
    ProvisionTeam, DeprovisionTeam, RestartComponent, SessionExpiry, PolicyReconcile, ServerLifecycle, ServerReconcile,
    ApprovalWorkflow,
)  # fmt: skip


@dataclass(frozen=True)
class WorkerSettings:
    """Worker configuration; every field has an environment variable (see `from_env`)."""

    temporal: TemporalSettings = TemporalSettings()
    kubeconfig: str = ""
    postgres_dsn: str = ""
    policy_output_dir: str = ""
    restart_backend: str = "kubernetes"
    restart_namespace: str = "mcp-sentinel"
    run_dir: str = ""
    metrics_port: int = 9105
    metrics_host: str = "127.0.0.1"
    cluster_name: str = "local"
    reconcile_every_seconds: float = 300.0
    server_reconcile_every_seconds: float = 300.0
    task_queue_prefix: str = ""
    render: RenderSettings = RenderSettings()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerSettings:
        """`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `KUBECONFIG`, `POSTGRES_DSN`, `POLICY_OUTPUT_DIR`,
        `RESTART_BACKEND` (kubernetes|local), `RESTART_NAMESPACE`, `SENTINEL_RUN_DIR` (local backend),
        `METRICS_PORT`, `METRICS_HOST`, `MCP_CLUSTER_NAME`, `RECONCILE_INTERVAL_SECONDS` (0 disables),
        `TASK_QUEUE_PREFIX` (isolates several stacks on one Temporal namespace); server lifecycle:
        `SERVER_RECONCILE_INTERVAL_SECONDS` (0 disables), `MCP_GATEWAY_IMAGE`, `MCP_PUBLIC_BASE_URL`,
        `AGENT_TOKEN_ISSUER`, `ROLLOUT_PROGRESS_DEADLINE_SECONDS`."""
        backend = choice(environ, "RESTART_BACKEND", "kubernetes", ("kubernetes", "local"))
        if backend == "local" and not text(environ, "SENTINEL_RUN_DIR"):
            raise SettingsError("RESTART_BACKEND=local needs SENTINEL_RUN_DIR (the local stack's run folder)")
        return cls(
            temporal=TemporalSettings.from_env(environ),
            kubeconfig=text(environ, "KUBECONFIG"),
            postgres_dsn=text(environ, "POSTGRES_DSN"),
            policy_output_dir=text(environ, "POLICY_OUTPUT_DIR"),
            restart_backend=backend,
            restart_namespace=text(environ, "RESTART_NAMESPACE", cls.restart_namespace),
            run_dir=text(environ, "SENTINEL_RUN_DIR"),
            metrics_port=integer(environ, "METRICS_PORT", cls.metrics_port, minimum=0, maximum=65535),
            metrics_host=text(environ, "METRICS_HOST", cls.metrics_host),
            cluster_name=text(environ, "MCP_CLUSTER_NAME", cls.cluster_name),
            reconcile_every_seconds=number(environ, "RECONCILE_INTERVAL_SECONDS", cls.reconcile_every_seconds,
                                           minimum=0),
            server_reconcile_every_seconds=number(environ, "SERVER_RECONCILE_INTERVAL_SECONDS",
                                                  cls.server_reconcile_every_seconds, minimum=0),
            task_queue_prefix=text(environ, "TASK_QUEUE_PREFIX"),
            render=RenderSettings(
                gateway_image=text(environ, "MCP_GATEWAY_IMAGE") or RenderSettings.gateway_image,
                cluster_name=text(environ, "MCP_CLUSTER_NAME", cls.cluster_name),
                public_base_url=text(environ, "MCP_PUBLIC_BASE_URL").rstrip("/"),
                token_issuer=text(environ, "AGENT_TOKEN_ISSUER"),
                progress_deadline_seconds=integer(environ, "ROLLOUT_PROGRESS_DEADLINE_SECONDS", 300, minimum=1),
            ),
        )


class _UnconfiguredTeams:
    """Stands in when POSTGRES_DSN is unset: provisioning fails clearly (and retries once it is fixed)."""

    async def _fail(self, *_args: Any) -> Any:
        raise RuntimeError("POSTGRES_DSN is not set: the worker cannot reach the identity store")

    ensure_team = delete_team = ensure_membership = remove_membership = _fail


def build_activities(
    settings: WorkerSettings,
    *,
    cluster: Cluster | None = None,
    teams: TeamStore | None = None,
    restart_backend: RestartBackend | None = None,
    approval_sink: AuditSink | None = None,
) -> list[Callable[..., Any]]:
    """Every activity, bound to real clients built from settings (any of them can be passed in)."""
    if cluster is None:
        from mcp_sentinel.kube.objects import KubeCluster

        cluster = KubeCluster(settings.kubeconfig)
    if teams is None:
        if settings.postgres_dsn:
            from workflows.provisioning.teams import IdentityTeamStore

            teams = IdentityTeamStore(settings.postgres_dsn)
        else:
            teams = _UnconfiguredTeams()
    if restart_backend is None:
        if settings.restart_backend == "local":
            # The local backend belongs to the local stack, which injects it (python -m localstack.worker).
            raise SettingsError("RESTART_BACKEND=local: run the worker through `python -m localstack.worker`")
        restart_backend = KubernetesRestarts(cluster, settings.restart_namespace)
    prov = ProvisioningActivities(teams, cluster)
    policy = PolicyActivities(
        cluster,
        output_dir=Path(settings.policy_output_dir) if settings.policy_output_dir else None,
        cluster_name=settings.cluster_name,
    )
    life = LifecycleActivities(cluster, settings.render, output_dir=policy.output_dir)
    sess = SessionActivities(cluster)
    rst = RestartActivities(restart_backend)
    approvals = ApprovalActivities(approval_sink or StoreSink(settings.postgres_dsn))
    return [
        prov.ensure_team,
        prov.delete_team,
        prov.apply_object,
        prov.delete_object,
        prov.ensure_membership,
        prov.remove_membership,
        policy.list_servers,
        policy.render_server,
        policy.report_drift,
        life.apply,
        life.rollout_state,
        life.mark_good,
        life.roll_back,
        life.report,
        life.clean_up,
        life.list_servers,
        sess.mark,
        rst.list_components,
        rst.trigger,
        rst.wait_ready,
        approvals.record,
    ]


def new_worker(
    client: Client, task_queue: str, activities: Sequence[Callable[..., Any]], executor: ThreadPoolExecutor
) -> Worker:
    """A worker for every workflow and the given activities on one task queue."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=list(activities),
        activity_executor=executor,
        max_concurrent_activities=16,
    )


async def run_worker(settings: WorkerSettings, stop: asyncio.Event, **overrides: Any) -> None:
    """Serve every task queue until `stop` is set; metrics on `metrics_host:metrics_port`."""
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"{settings.metrics_host}:{settings.metrics_port}")
        )
    )
    client = await Client.connect(settings.temporal.address, namespace=settings.temporal.namespace, runtime=runtime)
    activities = build_activities(settings, **overrides)
    queues = [settings.task_queue_prefix + q for q in TASK_QUEUES]
    if settings.reconcile_every_seconds > 0:
        await ensure_reconcile_schedule(
            client,
            timedelta(seconds=settings.reconcile_every_seconds),
            task_queue=queues[-1],
            schedule_id=settings.task_queue_prefix + "policy-reconcile",
        )
    if settings.server_reconcile_every_seconds > 0:
        await ensure_server_reconcile_schedule(
            client,
            timedelta(seconds=settings.server_reconcile_every_seconds),
            task_queue=settings.task_queue_prefix + LIFECYCLE_QUEUE,
            schedule_id=settings.task_queue_prefix + "server-reconcile",
        )
    with ThreadPoolExecutor(max_workers=16 * len(queues)) as executor:
        workers = [new_worker(client, q, activities, executor) for q in queues]
        runs = [asyncio.create_task(w.run()) for w in workers]
        log.info("worker serving %s on %s", ", ".join(queues), settings.temporal.address)
        await stop.wait()
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*runs, return_exceptions=True)
