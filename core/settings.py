"""The one settings object per process: read from LOREGUARD_* environment variables and `.env`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.identity import NotAnIdentity, normalized
from core.roles import Role

# What the library collects, written as a person would describe it: the semantic evaluator compares meaning,
# so a description ("ransomware ... attacks") finds "LockBit hits hospitals" without the word "security".
DEFAULT_TOPICS = (
    "ransomware, data breaches, hacking and other cyber attacks",
    "software vulnerabilities, security flaws and patches",
    "regulatory compliance, audits and fines for breaking regulations",
    "data protection, privacy law and rules for safeguarding personal information",
    "IT outages, cyber incidents and incident response at organisations",
    "threat intelligence about hackers, state-sponsored groups and malware",
)
# Everyday senses of the topic words; the semantic evaluator counts likeness to these against a document.
DEFAULT_OFF_TOPICS = (
    "sports matches, players, referees and football clubs",
    "weather forecasts, storms, rain and heat",
    "pensions, social security benefits, rents and deposits, mortgages, interest rates and household money",
    "food, restaurants, cooking and farming",
    "films, books, music, museums and board games",
    "wildlife, plants, forests and nature",
    "roads, trains, ferries and travel",
    "stock markets and company earnings",
    "schools, families and parental leave",
    "crime, courts and police",
)

NotifyChannel = Literal["log", "webhook", "email", "pagerduty"]


class Settings(BaseSettings):
    """LoreGuard configuration. Built once at process start and passed down; never read at import time."""

    model_config = SettingsConfigDict(env_prefix="LOREGUARD_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    state_dir: Path = Path(".loreguard")

    # Database: a SQLite file under the state dir unless a URL is given (PostgreSQL supported).
    database_url: str | None = None

    # Temporal: where the frontend is, and how to reach one beyond this machine (TLS, mTLS, an API key).
    temporal_address: str | None = Field(
        default=None, description="host:port of the Temporal frontend; default 127.0.0.1:<temporal_port>"
    )
    temporal_namespace: str = "default"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_tls: bool = Field(
        default=False,
        description="connect to Temporal over TLS with the system's CAs; implied by any TLS file, a server "
        "name or an API key",
    )
    temporal_tls_ca_file: Path | None = Field(
        default=None, description="PEM file of the CA that signed the Temporal frontend's certificate"
    )
    temporal_tls_cert_file: Path | None = Field(
        default=None, description="PEM client certificate for mTLS (with temporal_tls_key_file)"
    )
    temporal_tls_key_file: Path | None = Field(
        default=None, description="PEM private key of the client certificate (a secret: mount it as a file)"
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="name the server certificate is checked against (and SNI), if not the host"
    )
    temporal_api_key: SecretStr | None = Field(
        default=None, description="Temporal Cloud API key (sent as a bearer token; implies TLS)"
    )

    # Workers: concurrency per task queue, the CPU pool, liveness and shutdown.
    ingestion_concurrency: int = 50
    processing_concurrency: int = 10
    evaluation_concurrency: int = 5
    evaluation_rate_limit: float = Field(
        default=50.0, gt=0, description="evaluation activities per second across the task queue"
    )
    processing_processes: int = Field(default=0, ge=0, description="CPU worker processes; 0 = one per core")
    heartbeat_seconds: float = Field(
        default=30.0, ge=1, description="a chunk activity silent this long is retried elsewhere"
    )
    cancel_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="a running activity tells Temporal it is alive (and learns of a cancellation) this often",
    )
    worker_wait_for_schema: bool = Field(
        default=False,
        description="a worker whose database schema is older than its code does not poll until `loreguard setup` "
        "has migrated it (alive, not ready, meanwhile); compose and deploy/k8s turn it on for rollouts",
    )
    worker_shutdown_grace_seconds: float = Field(
        default=50.0,
        ge=0,
        description="on SIGTERM a worker stops polling and gives its running activities this long to finish "
        "before they are cancelled (delivered at their next heartbeat) and retried elsewhere; keep it about "
        "10 s under the pod's terminationGracePeriodSeconds (deploy/k8s sets it per task queue)",
    )

    # Worker metrics and health: the SDK's (temporal_*) on metrics_port (0 = off); LoreGuard's own (loreguard_*)
    # with /health/live and /health/ready on health_port (0 = any free port, -1 = off).
    metrics_address: str = Field(
        default="127.0.0.1", description="bind address of both; 0.0.0.0 in containers"
    )
    metrics_port: int = Field(default=9464, ge=0, le=65535, description="Temporal SDK Prometheus exporter")
    health_port: int = Field(default=8080, ge=-1, le=65535, description="/metrics (LoreGuard) and /health")

    # Batches: how a batch is cut into chunks and child workflows.
    chunk_size: int = Field(default=200, ge=1, le=2000, description="documents per processing activity")
    chunks_per_child: int = Field(default=100, ge=1, description="chunks handled by one child workflow run")
    chunk_window: int = Field(default=20, ge=1, le=200, description="chunks in flight per child workflow")
    max_children: int = Field(default=8, ge=1, le=200, description="chunk-range children in flight per batch")

    # Temporal + Celery hybrid: with `celery`, the chunk activities hand their documents to Celery workers
    # (`loreguard celery-worker`) through a broker and wait for them; the workflows stay the same.
    processing_backend: Literal["temporal", "celery"] = Field(
        default="temporal",
        description="temporal: chunk activities run the stages in the Temporal worker's CPU pool; celery: they "
        "enqueue the chunk's documents as Celery tasks and wait for them",
    )
    celery_broker_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="the Celery broker: Redis (redis://host:6379/0) or RabbitMQ (amqp://user:pass@host:5672//)",
    )
    celery_result_backend: str | None = Field(
        default=None,
        description="where Celery task results wait for the chunk activity; default: the broker when it is "
        "Redis, else redis://127.0.0.1:6379/0",
    )
    celery_queue: str = Field(
        default="processing", min_length=1, description="the Celery queue of the stages"
    )
    celery_task_documents: int = Field(
        default=50,
        ge=1,
        le=2000,
        description="documents per Celery task: a chunk is split into tasks this big",
    )
    celery_concurrency: int = Field(
        default=0, ge=0, description="processes of one `loreguard celery-worker`; 0 = one per core"
    )
    celery_visibility_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Redis broker: a task taken by a worker that died unacknowledged is delivered again once it "
        "is this old (RabbitMQ re-delivers at once); keep it above the longest task",
    )

    # Gathering limits: a source is untrusted input, so what it may reach and consume is bounded here.
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="JSON list of host names, IP addresses and CIDR networks sources may reach although they "
        "are not public (loopback, private, link-local, ...); empty = public addresses only",
    )
    folder_roots: list[Path] = Field(
        default_factory=list,
        description="JSON list of folders a folder source must lie inside; empty = the bundled sample folder "
        "data/samples and <state_dir>/imports",
    )
    folder_allow_hard_links: bool = Field(
        default=False,
        description="read a folder source's files that have more than one hard link (whose other names may lie "
        "outside every root); by default they are skipped as failed documents",
    )
    fetch_timeout_seconds: float = 20.0
    fetch_deadline_seconds: float = Field(
        default=120.0, gt=0, description="overall time for one fetch (all redirects and the whole body)"
    )
    max_document_bytes: int = 20 * 1024 * 1024
    max_pdf_pages: int = Field(default=500, ge=1, description="pages of a PDF whose text is extracted")
    max_documents_per_batch: int = Field(
        default=100_000,
        ge=1,
        description="documents one batch gathers; the rest of a larger source is not gathered, only counted "
        "as skipped on the batch",
    )
    ingest_flush_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1,
        description="ingest writes its buffered documents once their raw bytes reach this total "
        "(or 500 documents)",
    )
    document_time_limit_seconds: float = Field(
        default=120.0,
        ge=0,
        description="seconds one document may spend in normalize and extract in the CPU process pool; a "
        "document over it fails alone with that reason; 0 = no limit",
    )
    parse_memory_mb: int = Field(
        default=2048,
        ge=0,
        description="address space (MiB, RLIMIT_AS) of each process that parses what a source sent: the CPU "
        "pool's processes and the short-lived processes that parse feeds and run the dashboard's dry run; a "
        "document or feed needing more fails alone with that reason; 0 = no limit",
    )
    raw_retention: Literal["drop", "keep"] = Field(
        default="drop",
        description="drop: a document's raw bytes are deleted once it is stored or found unchanged (a retry "
        "still has the bytes of every document it processes again); keep: raw bytes stay in the database",
    )

    # Clarification: an optional external service that adds notes to each document.
    clarification_url: str | None = None

    # Evaluator: which one, what the library is about, and the model evaluator's API.
    evaluator: Literal["semantic", "keywords", "openai"] = Field(
        default="semantic",
        description="semantic (default, offline model), keywords, or openai; builtin = keywords",
    )
    topics: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TOPICS),
        description="topic descriptions a person writes (semantic); words or phrases to count (keywords)",
    )
    off_topics: list[str] = Field(
        default_factory=lambda: list(DEFAULT_OFF_TOPICS),
        description="what the library is not about, where topic words have other senses (semantic only)",
    )
    embedding_precision: Literal["int8", "fp32"] = Field(
        default="int8",
        description="semantic: int8 weights (a copy of the shipped model quantized once, 2.4x faster) or fp32",
    )
    model_cache: Path | None = Field(
        default=None,
        description="where the semantic model's int8 copy is kept (default ~/.cache/loreguard)",
    )
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr = SecretStr("")
    openai_model: str = "gpt-4o-mini"
    openai_timeout_seconds: float = 30.0
    openai_price_per_million_tokens: float | None = Field(
        default=None,
        ge=0,
        description="the model's price in your currency per million tokens: batches, sources and the "
        "re-evaluation preview then show the cost of the tokens the API reported",
    )

    # Review inbox: uncertain verdicts wait for a person.
    review_below_confidence: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="a verdict with less confidence than this goes to the review inbox (as 'review' verdicts do)",
    )
    review_overdue_hours: float = Field(
        default=48.0, gt=0, description="a document waiting in the review inbox longer than this is overdue"
    )

    # Failed batches: when a batch fails, and how long it waits for an operator's decision.
    max_failed_share: float = Field(
        default=0.5, ge=0, le=1, description="a batch whose failed share of documents exceeds this fails"
    )
    approval_timeout_hours: float = Field(
        default=24.0, gt=0, description="how long a failed batch waits for approve/reject"
    )

    # SLA and freshness: documents on time after their batch's start, the monitor's thresholds, stale sources.
    sla_target_hours: float = Field(default=4.0, gt=0, description="a document is on time within this")
    sla_target_share: float = Field(default=0.95, gt=0, le=1, description="share of documents on time")
    sla_warning_hours: float = Field(default=4.0, gt=0, description="a batch running longer raises WARNING")
    sla_critical_hours: float = Field(default=8.0, gt=0, description="a batch running longer raises CRITICAL")
    stale_after_intervals: float = Field(
        default=2.0,
        gt=0,
        description="a source with no new document for this many refresh intervals is stale",
    )
    stale_after_failures: int = Field(
        default=3, ge=1, description="a source whose last this-many batches all failed is stale"
    )
    sla_check_minutes: float = Field(default=5.0, gt=0, description="how often the SLA monitor runs")

    # Notifications: any of log, webhook (Slack incoming-webhook compatible), email (SMTP), pagerduty.
    notify_channels: list[NotifyChannel] = Field(default_factory=lambda: list[NotifyChannel](["log"]))
    webhook_url: SecretStr | None = Field(
        default=None, description="Slack-compatible incoming webhook; a secret (its path is a token)"
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "loreguard@localhost"
    smtp_to: list[str] = Field(default_factory=list)
    pagerduty_routing_key: SecretStr | None = Field(
        default=None,
        description="Events API v2 integration (routing) key for the pagerduty channel; a secret",
    )
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="PagerDuty Events API v2 endpoint"
    )
    public_dashboard_url: str = "http://127.0.0.1:8501"

    # Sign-in and roles: who may do what (core/roles.py). The dashboard's sign-in itself is Streamlit's OpenID
    # Connect, configured in the [auth] section of a Streamlit secrets file.
    admins: list[str] = Field(
        default_factory=list,
        description="JSON list of verified e-mails or issuer-qualified subjects (https://issuer|subject) that "
        "are admins whatever their claims: the first admin",
    )
    roles_claim: str = Field(
        default="groups", description="the ID-token claim that lists a person's groups or roles"
    )
    role_mapping: dict[str, Role] = Field(
        default_factory=dict,
        description='JSON object: a value of the roles claim -> a LoreGuard role, e.g. {"ops-team": "operator"}; '
        "a value that is itself a role name (viewer, analyst, operator, manager, admin) needs no entry",
    )
    cli_roles: list[Role] = Field(
        default_factory=lambda: [Role.ADMIN],
        description="roles of whoever runs `loreguard` commands (they hold the database's credentials anyway)",
    )
    dashboard_secrets: Path | None = Field(
        default=None,
        description="the Streamlit secrets file with the [auth] section (default: Streamlit's own places)",
    )

    # Dashboard: where it listens, the one time zone of every page, chart and export.
    dashboard_port: int = 8501
    dashboard_address: str = "127.0.0.1"
    timezone: str = Field(
        default="UTC",
        description="IANA time zone (e.g. Europe/Berlin) in which every dashboard page, chart and CSV export "
        "shows times, always labelled, and whose calendar days the SLA rollups count (the workers write them: "
        "give every process the same zone); the database keeps UTC",
    )

    # Prometheus (optional): rates and latency percentiles for the dashboard; the app DB when unset.
    prometheus_url: str | None = None
    prometheus_timeout_seconds: float = Field(default=1.0, gt=0, le=1.0)

    # Workers page: replicas recommended per task queue (one per tasks_per_replica pending tasks, within
    # bounds), the backlog's history (sampled by the scheduler queue's worker) and its age target.
    tasks_per_replica: int = Field(default=100, ge=1)
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=20, ge=1)
    backlog_sample_seconds: float = Field(
        default=30.0,
        gt=0,
        description="the worker serving the scheduler queue records each task queue's backlog in the app "
        "database this often, whether or not anyone watches: the Workers page's history when no Prometheus "
        "answers",
    )
    backlog_retention_hours: float = Field(
        default=168.0, gt=0, description="backlog samples older than this are deleted when a new one is taken"
    )
    backlog_age_target_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Workers page: a queue whose oldest pending task waited longer than this is flagged, "
        "whatever its length (KEDA scales on length alone)",
    )

    # Local stack (`loreguard up`): its optional Prometheus and how often it restarts a crashed process.
    prometheus_port: int = Field(default=9090, ge=1, le=65535, description="`up --with-prometheus`")
    supervisor_max_restarts: int = Field(
        default=5,
        ge=0,
        description="`up` restarts a crashed worker or dashboard at most this often per window",
    )
    supervisor_restart_window_seconds: float = Field(
        default=300.0, gt=0, description="the window of supervisor_max_restarts; then `up` gives up"
    )

    # Checks: refuse a configuration that cannot work, naming the setting to fix.
    @field_validator("admins")
    @classmethod
    def _admins_are_identities(cls, admins: list[str]) -> list[str]:
        # A bare subject (say "248289761001", or an old entry written before issuers were required) could be
        # issued by any provider: refuse to start rather than guess which one it meant.
        try:
            return [normalized(entry) for entry in admins]
        except NotAnIdentity as exc:
            raise ValueError(f"LOREGUARD_ADMINS: {exc}") from None

    @field_validator("evaluator", mode="before")
    @classmethod
    def _old_evaluator_names(cls, value: Any) -> Any:
        # Configs written before the semantic default said "builtin" for the keyword evaluator.
        return "keywords" if isinstance(value, str) and value.strip().lower() == "builtin" else value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as UTC or Europe/Berlin"
            ) from exc
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.evaluator == "openai":
            key = self.openai_api_key.get_secret_value()
            if self.environment == "production" and key in ("", "changethis", "sk-..."):
                raise ValueError("LOREGUARD_OPENAI_API_KEY must be set to a real key in production")
        if "webhook" in self.notify_channels and not self.webhook_url:
            raise ValueError("LOREGUARD_WEBHOOK_URL is needed for the webhook notification channel")
        if "email" in self.notify_channels and not self.smtp_to:
            raise ValueError("LOREGUARD_SMTP_TO is needed for the email notification channel")
        return self

    @model_validator(mode="after")
    def _check_deploy_runtime(self) -> Settings:
        if bool(self.temporal_tls_cert_file) != bool(self.temporal_tls_key_file):
            raise ValueError(
                "LOREGUARD_TEMPORAL_TLS_CERT_FILE and LOREGUARD_TEMPORAL_TLS_KEY_FILE go together (mTLS)"
            )
        if "pagerduty" in self.notify_channels and not self.pagerduty_routing_key:
            raise ValueError(
                "LOREGUARD_PAGERDUTY_ROUTING_KEY is needed for the pagerduty notification channel"
            )
        return self

    # Derived values: what the code uses when a setting is left unset.
    @property
    def target_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def target_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'loreguard.db').resolve()}"

    @property
    def cpu_processes(self) -> int:
        return self.processing_processes or (os.cpu_count() or 1)

    @property
    def shows_tokens(self) -> bool:
        """Whether tokens and cost are worth showing (and summing over every verdict): the model evaluator
        reports them, or a price is set."""
        return self.evaluator == "openai" or self.openai_price_per_million_tokens is not None

    @property
    def target_celery_result_backend(self) -> str:
        if self.celery_result_backend:
            return self.celery_result_backend
        if self.celery_broker_url.startswith(("redis://", "rediss://")):
            return self.celery_broker_url
        return "redis://127.0.0.1:6379/0"
