"""The Celery side of the Temporal + Celery hybrid: the app (broker, queue, delivery guarantees), task names, and
what the broker says about the queue and its workers. No task code here: the tasks live in workers/celery_tasks.py.

Delivery: a task is acknowledged only after it ran (`acks_late`), a task whose worker process died is re-queued
(`task_reject_on_worker_lost`), and a worker takes one task at a time (prefetch 1). When a whole worker dies
(kill -9), RabbitMQ re-delivers its unacknowledged tasks at once; Redis does once they are older than the
visibility timeout. The stage steps are idempotent, keyed by (batch, sequence), so a re-delivered task redoes
only what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from celery import Celery

from core.settings import Settings

PROCESS_TASK = "loreguard.process_range"  # normalize, extract, clarify a range of a batch's documents
EVALUATE_TASK = "loreguard.evaluate_range"  # evaluate and store a range
RESULT_TTL = timedelta(days=1)
INSPECT_TIMEOUT = 1.0  # seconds the Workers page waits for workers to answer


def make_celery_app(settings: Settings) -> Celery:
    """A Celery app for `settings` (one per process; nothing connects until it is used)."""
    app = Celery("loreguard", set_as_current=False)
    app.conf.update(
        broker_url=settings.celery_broker_url,
        result_backend=settings.target_celery_result_backend,
        task_default_queue=settings.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=RESULT_TTL,
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout_seconds},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


@dataclass(frozen=True)
class CeleryQueueState:
    """The Celery queue's depth and the workers consuming it, for the Workers page."""

    broker: str
    queue: str
    pending: int | None  # messages waiting in the broker (None: the broker did not answer)
    workers: tuple[CeleryWorker, ...]
    error: str | None = None


@dataclass(frozen=True)
class CeleryWorker:
    name: str
    active: int  # tasks running now
    processes: int


def describe_celery_queue(app: Celery, queue: str) -> CeleryQueueState:
    """Queue depth from the broker (a passive declare), workers from a broadcast ping with a short timeout."""
    broker = safe_broker_url(app.conf.broker_url)
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=INSPECT_TIMEOUT)
            with conn.channel() as channel:
                _, pending, _ = channel.queue_declare(queue=queue, passive=True)
    except Exception as exc:  # a missing queue (nothing sent yet) is an empty one
        if "NOT_FOUND" in str(exc) or "no queue" in str(exc).lower():
            pending = 0
        else:
            return CeleryQueueState(broker, queue, None, (), f"{type(exc).__name__}: {exc}")
    inspect = app.control.inspect(timeout=INSPECT_TIMEOUT)
    try:
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
        stats = inspect.stats() or {}
    except Exception as exc:
        return CeleryQueueState(broker, queue, pending, (), f"{type(exc).__name__}: {exc}")
    workers = tuple(
        CeleryWorker(
            name=name,
            active=len(active.get(name) or []),
            processes=len(((stats.get(name) or {}).get("pool") or {}).get("processes") or []),
        )
        for name, consumed in sorted(queues.items())
        if any(q.get("name") == queue for q in consumed or [])
    )
    return CeleryQueueState(broker, queue, pending, workers)


def safe_broker_url(url: str) -> str:
    """The broker's address without its password, fit for a page or a log."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***@' if user else ''}{host}"


def delete_queue(app: Celery, queue: str) -> None:
    """Remove a queue and what waits in it (tests and benchmarks use queues of their own)."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_purge(queue)
        client = getattr(channel, "client", None)
        if client is not None:  # Redis: the queue is its list; kombu keeps its binding in a key of its own
            client.delete(f"_kombu.binding.{queue}")
        else:
            channel.queue_delete(queue)
