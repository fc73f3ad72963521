"""The alerting rules: valid for promtool, unit-tested with `promtool test rules` (each alert fires from the series
that mean trouble and stays silent otherwise), and the same in compose's rule file and Kubernetes' PrometheusRule."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import need
from tests.deploy.manifests import K8S, ROOT

RULES = ROOT / "deploy" / "prometheus-alerts.yml"
RULE_TESTS = ROOT / "tests" / "deploy" / "alerts_test.yml"
PROMETHEUS_RULE = K8S / "components" / "monitoring" / "prometheusrule.yaml"


def promtool() -> str:
    binary = shutil.which("promtool")
    need(binary is not None, "promtool (Debian's prometheus)")
    assert binary is not None
    return binary


def groups() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return loaded


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups() for rule in group["rules"] if "alert" in rule}


def run_rule_tests(test_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )


def test_the_rule_file_passes_promtool() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_the_issue_asks_for_is_there() -> None:
    """Workers absent or down, backlog count and age, no free task slots, the failure share, a batch past the
    SLA's warning, Temporal unreachable, and the SLA monitor's dead-man's switch."""
    wanted = {
        "LoreGuardQueueWorkersAbsent",
        "LoreGuardQueueWorkersDown",
        "LoreGuardBacklogTooLong",
        "LoreGuardBacklogTooOld",
        "LoreGuardNoFreeTaskSlots",
        "LoreGuardFailureShareHigh",
        "LoreGuardBatchPastSlaWarning",
        "LoreGuardTemporalUnreachable",
        "LoreGuardSlaMonitorSilent",
    }
    assert wanted <= set(alerts())
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_the_rule_unit_tests_pass() -> None:
    done = run_rule_tests(RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_fires_in_a_unit_test_and_is_silent_on_a_healthy_stack() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {c["alertname"] for case in cases for c in case["alert_rule_test"] if c["exp_alerts"]}
    assert fired == set(alerts())
    healthy = cases[0]["alert_rule_test"]
    assert {c["alertname"] for c in healthy if c["exp_alerts"] == []} == set(alerts())


@pytest.mark.parametrize("alert", sorted(alerts()))
def test_the_unit_tests_catch_an_alert_that_never_fires(alert: str, tmp_path: Path) -> None:
    """The unit tests can fail: with this one alert's expression made to select nothing, promtool fails, and says
    which alert."""
    broken = yaml.safe_load(RULES.read_text())
    for group in broken["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(1) unless vector(1)"
    (tmp_path / "deploy").mkdir()
    (tmp_path / "tests" / "deploy").mkdir(parents=True)
    (tmp_path / "deploy" / RULES.name).write_text(yaml.safe_dump(broken, sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / "tests" / "deploy" / RULE_TESTS.name)
    done = run_rule_tests(tmp_path / "tests" / "deploy" / RULE_TESTS.name)
    assert done.returncode != 0
    assert f"alertname: {alert}," in done.stdout + done.stderr


def test_kubernetes_gets_the_same_rules_as_compose() -> None:
    (resource,) = [d for d in yaml.safe_load_all(PROMETHEUS_RULE.read_text()) if d]
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == groups()
