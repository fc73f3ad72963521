"""`loreguard up --with-prometheus`: the generated config, the running binary, the dashboard's URL; the hint."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli import prometheus
from cli.devserver import free_port
from cli.stack import Stack
from core.settings import Settings
from tests.conftest import need


def stack(tmp_path: Path) -> Stack:
    settings = Settings(
        state_dir=tmp_path / "state",
        database_url=f"sqlite:///{tmp_path / 'lg.db'}",
        health_port=18080,
        metrics_port=19464,
        prometheus_port=free_port(),
    )
    s = Stack(settings, with_prometheus=True)
    s.log_dir.mkdir(parents=True)
    s.temporal_metrics_port = 17000
    return s


def test_up_starts_prometheus_on_a_generated_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need(prometheus.prometheus_binary() is not None, "Debian's prometheus binary")
    s = stack(tmp_path)
    try:
        s.start_prometheus()
        assert s.prometheus_url == f"http://127.0.0.1:{s.settings.prometheus_port}"
        assert prometheus.ready(s.prometheus_url)
        config = yaml.safe_load((s.state_dir / "prometheus" / "prometheus.yml").read_text())
        targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
        assert targets == {
            "loreguard-workers": ["127.0.0.1:18080"],
            "loreguard-workers-sdk": ["127.0.0.1:19464"],
            "temporal": ["127.0.0.1:17000"],
        }
        # Children started afterwards (the dashboard) learn where Prometheus is.
        child = s.spawn("probe", ["/bin/sh", "-c", "echo $LOREGUARD_PROMETHEUS_URL"], s.log_dir / "probe.log")
        child.process.wait(10)
        assert s.prometheus_url in (s.log_dir / "probe.log").read_text()
    finally:
        for child in s.children:
            child.process.terminate()
            child.process.wait(10)
    assert "starting Prometheus" in capsys.readouterr().out


def test_up_says_how_to_install_prometheus_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(prometheus, "prometheus_binary", lambda: None)
    s = stack(tmp_path)
    s.start_prometheus()
    assert s.prometheus_url is None and not s.children
    assert "apt-get install --no-install-recommends prometheus" in capsys.readouterr().out
