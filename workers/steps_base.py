"""What every batch step shares: its clients (database, HTTP, evaluator, clarifier) and a transaction helper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.urls import hide_userinfo_in_logs
from guard.fetching import Fetcher
from workers.metrics import WorkerMetrics
from workers.stages.clarify import ClarificationClient
from workers.stages.evaluate import Evaluator

Heartbeat = Callable[..., None]


def no_heartbeat(*_details: Any) -> None:
    pass


class StepsBase:
    """The clients of the batch steps; the step classes below add the work."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        http: httpx.Client,
        evaluator: Evaluator,
        clarifier: ClarificationClient | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.http = http
        self.fetcher = Fetcher.from_settings(settings)  # sources' URLs: address policy, byte and time limits
        hide_userinfo_in_logs()  # httpx logs each request's URL at INFO: never with a user name or password
        self.evaluator = evaluator
        self.metrics: WorkerMetrics | None = None  # set in the worker process; pool processes report instead
        self.clarifier = clarifier

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session
