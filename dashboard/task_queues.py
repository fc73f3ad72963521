"""What the Workers page shows: per task queue, pollers, backlog and its age, rates, the workers polling it, and
how many worker replicas the backlog calls for (one per `tasks_per_replica` pending tasks, within bounds); with the
Temporal + Celery hybrid, the Celery queue's depth and the Celery workers consuming it."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.settings import Settings
from dashboard.formatting import duration
from orchestration.constants import ALL_QUEUES, SCALED_TASK_TYPE
from orchestration.gateway import TemporalGateway
from workers.task_queues import QueueState, describe_task_queues

if TYPE_CHECKING:  # Celery is imported only when the hybrid is on: it costs a Temporal-only dashboard ~14 MB
    from orchestration.celery_app import CeleryQueueState


def recommended_replicas(
    backlog: int | None, *, per_replica: int = 100, minimum: int = 1, maximum: int = 20
) -> int:
    """One replica per `per_replica` pending tasks (rounded up), at least `minimum`, at most `maximum`."""
    wanted = math.ceil(max(backlog or 0, 0) / max(per_replica, 1))
    return max(minimum, min(maximum, wanted))


def describe_queues(gateway: TemporalGateway, queues: tuple[str, ...] = ALL_QUEUES) -> list[QueueState]:
    """DescribeTaskQueue with report_stats for each queue and type; raises TemporalUnavailable when it is down."""
    return gateway.call(lambda client: describe_task_queues(client, gateway.namespace, queues))


def backlog_frame(states: list[QueueState]) -> pd.DataFrame:
    """The Overview's backlog table: a queue Temporal refused to describe shows its error and no figures."""
    return pd.DataFrame(
        [
            {
                "queue": s.queue,
                "type": s.kind,
                "backlog": None if s.error else s.backlog,
                "oldest (s)": None if s.error else s.backlog_age_s,
                "added/s": None if s.error else s.add_rate,
                "dispatched/s": None if s.error else s.dispatch_rate,
                "pollers": None if s.error else s.pollers,
                "error": s.error or "",
            }
            for s in states
        ]
    )


def queue_table(states: list[QueueState]) -> pd.DataFrame:
    """Per queue and task type: pollers, backlog and its age, rates (the recommendation is queue_advice's)."""
    return pd.DataFrame(
        [
            {
                "queue": s.queue,
                "type": s.kind,
                "pollers": s.pollers,
                "backlog": s.backlog,
                "oldest (s)": s.backlog_age_s,
                "added/s": s.add_rate,
                "dispatched/s": s.dispatch_rate,
                "error": s.error or "",
            }
            for s in states
        ],
        columns=["queue", "type", "pollers", "backlog", "oldest (s)", "added/s", "dispatched/s", "error"],
    )


def queue_advice(
    states: list[QueueState], *, per_replica: int, minimum: int, maximum: int, age_target: float
) -> pd.DataFrame:
    """One recommendation per queue, on the task type the autoscaler counts (KEDA's queueTypes): replicas by
    KEDA's rule on the backlog's length, and advice that also weighs how long the oldest task has waited."""
    rows = []
    for s in states:
        if SCALED_TASK_TYPE.get(s.queue) != s.kind:
            continue
        replicas = recommended_replicas(s.backlog, per_replica=per_replica, minimum=minimum, maximum=maximum)
        rows.append(
            {
                "queue": s.queue,
                "type": s.kind,
                "backlog": s.backlog,
                "oldest": duration(s.backlog_age_s) if s.backlog else "—",
                "recommended replicas": replicas,
                "advice": _advice(s, replicas, maximum=maximum, age_target=age_target),
            }
        )
    return pd.DataFrame(
        rows, columns=["queue", "type", "backlog", "oldest", "recommended replicas", "advice"]
    )


def _advice(s: QueueState, replicas: int, *, maximum: int, age_target: float) -> str:
    if s.error:
        return f"unknown: {s.error}"
    late = s.backlog > 0 and s.backlog_age_s > age_target
    if late and s.pollers == 0:
        return f"tasks wait {duration(s.backlog_age_s)} and no worker polls: start a worker for this queue"
    if late and replicas >= maximum:
        return (
            f"tasks wait {duration(s.backlog_age_s)} at the maximum of {maximum} replicas: raise "
            "LOREGUARD_MAX_REPLICAS (and maxReplicaCount) or the workers' concurrency"
        )
    if late:
        return (
            f"tasks wait {duration(s.backlog_age_s)} (over {duration(age_target)}): scale to {replicas}; if "
            f"{replicas} already run, lower the tasks per replica (targetQueueSize)"
        )
    if s.backlog == 0:
        return f"idle: {replicas} (the minimum) is enough"
    return f"{replicas} replica(s) for {s.backlog:,} pending task(s); the oldest waited {duration(s.backlog_age_s)}"


def worker_table(states: list[QueueState]) -> pd.DataFrame:
    rows = [
        {"worker": p.identity, "queue": p.queue, "type": p.kind, "last seen": p.last_access}
        for s in states
        for p in s.workers
    ]
    return pd.DataFrame(rows, columns=["worker", "queue", "type", "last seen"])


# --- the hybrid's Celery queue ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _celery_app(broker: str, backend: str, queue: str) -> Any:
    from orchestration.celery_app import make_celery_app

    return make_celery_app(
        Settings(celery_broker_url=broker, celery_result_backend=backend, celery_queue=queue, _env_file=None)
    )


def describe_celery(settings: Settings) -> CeleryQueueState:
    """The Celery queue's depth (from the broker) and the workers consuming it (a 1 s broadcast)."""
    from orchestration.celery_app import describe_celery_queue

    app = _celery_app(
        settings.celery_broker_url, settings.target_celery_result_backend, settings.celery_queue
    )
    return describe_celery_queue(app, settings.celery_queue)


def celery_queue_table(
    state: CeleryQueueState, *, per_replica: int, minimum: int, maximum: int
) -> pd.DataFrame:
    """One row beside the Temporal task queues: pending tasks, workers, and the same replica rule."""
    return pd.DataFrame(
        [
            {
                "queue": state.queue,
                "broker": state.broker,
                "pending tasks": state.pending,
                "workers": len(state.workers),
                "running now": sum(w.active for w in state.workers),
                "recommended replicas": recommended_replicas(
                    state.pending, per_replica=per_replica, minimum=minimum, maximum=maximum
                ),
                "error": state.error or "",
            }
        ]
    )


def celery_worker_table(state: CeleryQueueState) -> pd.DataFrame:
    rows = [{"worker": w.name, "processes": w.processes, "running now": w.active} for w in state.workers]
    return pd.DataFrame(rows, columns=["worker", "processes", "running now"])
