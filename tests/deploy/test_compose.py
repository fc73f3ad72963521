"""compose.yaml: valid against the Compose specification, secrets only from .env, only the dashboard published,
Temporal on PostgreSQL with its schema set up by admin-tools, health checks and grace periods."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.compose_files import VARIABLE, MissingVariable, env_example, load
from tests.deploy.manifests import ROOT

COMPOSE_FILES = [ROOT / "compose.yaml", ROOT / "deploy" / "compose.ops.yaml"]
WORKERS = ["worker-scheduler", "worker-ingestion", "worker-processing", "worker-evaluation"]


def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as check-jsonschema vendors it."""
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(vendored.read_text())
    return schema


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(ROOT / "compose.yaml", env_example())


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_the_compose_files_match_the_compose_specification(path: Path) -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    for document in (load(path), load(path, env_example())):  # as written, and as compose reads it
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_mistake() -> None:
    schema = compose_schema()
    broken = load(ROOT / "compose.yaml", env_example())
    broken["services"]["dashboard"]["healthcheck"]["retrys"] = 3
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_every_required_secret_is_in_env_example_and_a_missing_one_stops_the_start() -> None:
    text = (ROOT / "compose.yaml").read_text()
    required = {m["name"] for m in VARIABLE.finditer(text) if m["op"] in (":?", "?")}
    assert {"POSTGRES_PASSWORD", "DASHBOARD_COOKIE_SECRET", "GRAFANA_ADMIN_PASSWORD"} <= required
    example = env_example()
    assert required <= set(example)
    referenced = {m["name"] for m in VARIABLE.finditer(text)}
    assert set(example) <= referenced | {"GRAFANA_PORT", "TEMPORAL_UI_PORT"}, "an unused .env.example entry"
    for name in sorted(required):
        with pytest.raises(MissingVariable, match=name):
            load(ROOT / "compose.yaml", {k: v for k, v in example.items() if k != name})
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True, check=False
    ).returncode
    assert ignored == 0, ".env must stay out of git"


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    raw = load(ROOT / "compose.yaml")
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            # (LOREGUARD_DASHBOARD_SECRETS is the path of the mounted secrets file, not a secret)
            if re.search(r"PASSWORD|PWD|SECRET|API_KEY|TOKEN", key) and key != "LOREGUARD_DASHBOARD_SECRETS":
                assert re.fullmatch(r"\$\{[A-Z_]+(:?[-?][^}]*)?\}", str(value)), (name, key, value)
        url = env.get("LOREGUARD_DATABASE_URL")
        if url:
            assert "${POSTGRES_PASSWORD:?" in url, name


def test_only_the_dashboard_is_published(compose: dict[str, Any]) -> None:
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"dashboard"}
    assert compose["services"]["dashboard"]["ports"] == ["8501:8501"]
    # The operators' override publishes Grafana and the Temporal UI on this machine's loopback only.
    ops = load(ROOT / "deploy" / "compose.ops.yaml", env_example())
    for service in ops["services"].values():
        assert all(str(port).startswith("127.0.0.1:") for port in service["ports"])


def test_temporal_runs_on_postgresql_with_its_schema_set_up_by_admin_tools(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "auto-setup" not in (ROOT / "compose.yaml").read_text()
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/server:")
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["depends_on"]["temporal-schema"] == {"condition": "service_completed_successfully"}
    schema = services["temporal-schema"]
    assert schema["image"].startswith("temporalio/admin-tools:")
    assert schema["image"].split(":")[1] == temporal["image"].split(":")[1], "schema tool and server agree"
    assert schema["command"] == ["/deploy/temporal/setup-schema.sh"]
    script = (ROOT / "deploy" / "temporal" / "setup-schema.sh").read_text()
    for word in ("temporal-sql-tool", "setup-schema", "update-schema", '}:temporal"', '}:visibility"'):
        assert word in script, word
    namespace = services["temporal-namespace"]
    assert namespace["depends_on"]["temporal"] == {"condition": "service_healthy"}
    assert services["setup"]["depends_on"]["temporal-namespace"] == {
        "condition": "service_completed_successfully"
    }
    for path in (ROOT / "deploy" / "temporal").glob("*.sh"):
        assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0, path
    # No test search attributes: the only custom ones are LoreGuard's, registered by `loreguard setup`.
    assert "SEARCH_ATTRIBUTE" not in (ROOT / "compose.yaml").read_text().upper()
    dynamic = yaml.safe_load((ROOT / "deploy/temporal/dynamicconfig/loreguard.yaml").read_text())
    assert dynamic["matching.backlogMetricsEmitInterval"][0]["value"]


def test_workers_and_dashboard_have_health_checks_and_grace_periods(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in WORKERS:
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "http://127.0.0.1:8080/health/live" in check, name
        assert services[name]["stop_grace_period"], name
        assert services[name]["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
        # The worker's own grace is 10 s under compose's, as on Kubernetes (docker stops it with SIGTERM).
        period = services[name]["stop_grace_period"]
        seconds = int(period[:-1]) * (60 if period.endswith("m") else 1)
        grace = float(services[name]["environment"]["LOREGUARD_WORKER_SHUTDOWN_GRACE_SECONDS"])
        assert grace + 10 == seconds, name
    dashboard = services["dashboard"]
    assert "/_stcore/health" in " ".join(dashboard["healthcheck"]["test"])
    assert dashboard["stop_grace_period"]


def test_the_hybrid_profile_adds_a_healthy_broker_and_celery_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    redis, celery = services["redis"], services["celery-worker"]
    assert redis["profiles"] == celery["profiles"] == ["celery"]  # off unless `--profile celery`
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert celery["command"] == ["loreguard", "celery-worker"]
    assert celery["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert celery["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
    assert "control.ping" in " ".join(celery["healthcheck"]["test"]) and celery["stop_grace_period"]
    env = services["worker-processing"]["environment"]
    assert env["LOREGUARD_CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert (
        env["LOREGUARD_PROCESSING_BACKEND"] == "temporal"
    )  # .env.example's default; celery turns the hybrid on


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, source)


def test_the_environment_of_each_loreguard_service_makes_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    from core.settings import Settings

    for key in list(os.environ):
        if key.startswith("LOREGUARD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no .env file
    services = {n: s for n, s in compose["services"].items() if (s.get("command") or [""])[0] == "loreguard"}
    assert set(WORKERS) | {"setup", "dashboard"} <= set(services)
    for name, service in services.items():
        with monkeypatch.context() as patch:
            for key, value in service["environment"].items():
                patch.setenv(key, str(value))
            settings = Settings()
        assert settings.environment == "production", name
        assert settings.notify_channels == ["log"] and settings.smtp_to == [], name
        assert settings.target_database_url == "postgresql://loreguard:changethis@postgresql:5432/loreguard"
        assert settings.metrics_address == "0.0.0.0" and settings.health_port == 8080, name


def test_the_dashboard_reads_its_sign_in_from_a_read_only_secret_file(compose: dict[str, Any]) -> None:
    """compose mounts the file secret dashboard-auth (read-only, as compose mounts secrets) where
    LOREGUARD_DASHBOARD_SECRETS points; the file stays out of git and of the image; the example file is
    complete but for its placeholders, which the dashboard refuses in production."""
    import tomllib

    from core.signin import auth_problems

    dashboard = compose["services"]["dashboard"]
    (secret,) = dashboard["secrets"]
    assert dashboard["environment"]["LOREGUARD_DASHBOARD_SECRETS"] == f"/run/secrets/{secret['target']}"
    source = compose["secrets"][secret["source"]]["file"]
    assert source == "./dashboard-secrets.toml"
    for ignore in (".gitignore", ".dockerignore"):
        assert source.removeprefix("./") in (ROOT / ignore).read_text().splitlines(), ignore
    example = tomllib.loads((ROOT / "deploy" / "dashboard-secrets.example.toml").read_text())["auth"]
    problems = auth_problems(example, address="0.0.0.0", environment="production")
    assert len(problems) == 1 and "cookie_secret" in problems[0], problems
    public = env_example()["LOREGUARD_PUBLIC_DASHBOARD_URL"]
    assert example["redirect_uri"] == public + "/oauth2callback"
    # Only the dashboard gets it.
    assert [n for n, s in compose["services"].items() if s.get("secrets")] == ["dashboard"]
