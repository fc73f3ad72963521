"""Temporal beyond one machine: TLS (mutual) and API-key settings reach every connection LoreGuard makes.

The dev server cannot do TLS, so a TLS-terminating proxy on loopback (tests/support/tls.py) stands in front of
it: a real handshake with a throwaway CA, a server certificate and a client certificate."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import TLSConfig

from cli.devserver import DevServer
from core.settings import Settings
from orchestration.client import TemporalSettingsError, connect, temporal_target
from orchestration.gateway import TemporalGateway, TemporalUnavailable
from tests.conftest import TemporalNamespace
from tests.support.tls import SERVER_NAME, Pki, TlsProxy, make_pki

SCRIPT = Path(sys.executable).with_name("loreguard")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def tls_settings(pki: Pki, address: str, namespace: str = "default", **more: object) -> Settings:
    values: dict[str, object] = {
        "temporal_address": address,
        "temporal_namespace": namespace,
        "temporal_tls_ca_file": pki.ca,
        "temporal_tls_cert_file": pki.client_cert,
        "temporal_tls_key_file": pki.client_key,
        "temporal_tls_server_name": SERVER_NAME,
    }
    values.update(more)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def tls_env(pki: Pki, address: str, namespace: str) -> dict[str, str]:
    return {
        "LOREGUARD_TEMPORAL_ADDRESS": address,
        "LOREGUARD_TEMPORAL_NAMESPACE": namespace,
        "LOREGUARD_TEMPORAL_TLS_CA_FILE": str(pki.ca),
        "LOREGUARD_TEMPORAL_TLS_CERT_FILE": str(pki.client_cert),
        "LOREGUARD_TEMPORAL_TLS_KEY_FILE": str(pki.client_key),
        "LOREGUARD_TEMPORAL_TLS_SERVER_NAME": SERVER_NAME,
    }


# --- the settings build the SDK's connection options ------------------------------------------------------


def test_no_tls_settings_mean_a_plain_connection() -> None:
    target = temporal_target(
        Settings(_env_file=None, temporal_address="temporal:7233", temporal_namespace="ns")
    )
    assert (target.address, target.namespace, target.tls, target.api_key) == (
        "temporal:7233",
        "ns",
        False,
        None,
    )
    assert not target.secure


def test_tls_files_and_server_name_become_a_tls_config(pki: Pki) -> None:
    target = temporal_target(tls_settings(pki, "temporal.example.org:7233"))
    assert target.tls == TLSConfig(
        server_root_ca_cert=pki.ca.read_bytes(),
        client_cert=pki.client_cert.read_bytes(),
        client_private_key=pki.client_key.read_bytes(),
        domain=SERVER_NAME,
    )
    assert target.api_key is None
    assert "BEGIN" not in repr(target)  # no key material in logs


def test_an_api_key_implies_tls_with_the_system_cas() -> None:
    settings = Settings(
        _env_file=None,
        temporal_address="ns.a1b2c.tmprl.cloud:7233",
        temporal_namespace="ns.a1b2c",
        temporal_api_key=SecretStr("cloud-key-123"),
    )
    target = temporal_target(settings)
    assert target.tls is True and target.api_key == "cloud-key-123"
    assert "cloud-key-123" not in repr(target) and "cloud-key-123" not in repr(settings)


def test_tls_without_files_uses_the_system_cas() -> None:
    assert temporal_target(Settings(_env_file=None, temporal_tls=True)).tls is True


def test_a_client_certificate_needs_its_key(pki: Pki) -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings(_env_file=None, temporal_tls_cert_file=pki.client_cert)


def test_an_unreadable_tls_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(
        TemporalSettingsError, match=r"LOREGUARD_TEMPORAL_TLS_CA_FILE: cannot read .*nope\.pem"
    ):
        temporal_target(Settings(_env_file=None, temporal_tls_ca_file=missing))


def test_the_cli_refuses_an_unreadable_tls_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    env["LOREGUARD_TEMPORAL_TLS_CA_FILE"] = str(tmp_path / "missing-ca.pem")
    done = subprocess.run(
        [str(SCRIPT), "batches"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done
    assert "LOREGUARD_TEMPORAL_TLS_CA_FILE" in done.stderr and "missing-ca.pem" in done.stderr


# --- real handshakes on loopback ---------------------------------------------------------------------------


@pytest.mark.temporal
async def test_every_connection_goes_through_mutual_tls(
    pki: Pki, namespace: TemporalNamespace, tmp_path: Path
) -> None:
    with TlsProxy(pki, namespace.address) as proxy:
        settings = tls_settings(pki, proxy.address, namespace.name)

        # orchestration.client.connect: workers, `setup`, `up`
        client = await connect(settings)
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace.name)
        )
        assert described.namespace_info.name == namespace.name
        assert proxy.client_subjects == ["loreguard-worker"]  # the client certificate was presented

        # TemporalGateway: the dashboard and the operations layer
        gateway = TemporalGateway(temporal_target(settings), connect_timeout=10)
        try:
            count = await asyncio.to_thread(gateway.call, lambda c: c.count_workflows(), timeout=10)
            assert count.count == 0
        finally:
            gateway.close()

        # The CLI and the worker process read the same settings from the environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
        env.update(tls_env(pki, proxy.address, namespace.name))
        env["LOREGUARD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'app.db'}"
        done = await asyncio.to_thread(
            subprocess.run,
            [str(SCRIPT), "setup"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "search attributes registered" in done.stdout
        env.update(LOREGUARD_HEALTH_PORT="-1", LOREGUARD_METRICS_PORT="0", LOREGUARD_PROCESSING_PROCESSES="1")
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [str(SCRIPT), "worker", "--queue", "loreguard-ingestion"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            for _ in range(600):
                if "worker ready" in log.read_text() or worker.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            assert "worker ready" in log.read_text(), log.read_text()
        finally:
            worker.terminate()
            assert await asyncio.to_thread(worker.wait, 60) == 0
        assert proxy.handshakes >= 4


@pytest.mark.temporal
async def test_tls_mistakes_are_refused_with_a_clear_reason(
    pki: Pki, namespace: TemporalNamespace, dev_server: DevServer, tmp_path: Path
) -> None:
    stranger = make_pki(tmp_path / "other", ca_name="Some other CA")
    with TlsProxy(pki, namespace.address) as proxy:
        cases = {
            "not signed by a trusted CA": tls_settings(pki, proxy.address, temporal_tls_ca_file=stranger.ca),
            "not valid for the name other.example.org": tls_settings(
                pki, proxy.address, temporal_tls_server_name="other.example.org"
            ),
            "may want a client certificate": Settings(
                _env_file=None,
                temporal_address=proxy.address,
                temporal_tls_ca_file=pki.ca,
                temporal_tls_server_name=SERVER_NAME,
            ),
            "may require TLS": Settings(_env_file=None, temporal_address=proxy.address),
        }
        for expected, settings in cases.items():
            gateway = TemporalGateway(temporal_target(settings), connect_timeout=10)
            try:
                with pytest.raises(TemporalUnavailable) as refused:
                    await asyncio.to_thread(gateway.call, lambda c: c.count_workflows(), timeout=10)
            finally:
                gateway.close()
            assert expected in str(refused.value), (expected, str(refused.value))

    # A TLS client against the plain dev server: the CLI says what is wrong and exits 1.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    env.update(tls_env(pki, dev_server.address, namespace.name))
    env["LOREGUARD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'app.db'}"
    done = await asyncio.to_thread(
        subprocess.run,
        [str(SCRIPT), "setup"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done
    assert f"cannot reach Temporal at {dev_server.address} over TLS" in done.stderr
    assert "the server does not speak TLS" in done.stderr
    # ... while a plain client is welcome there.
    plain = await Client.connect(dev_server.address, namespace=namespace.name)
    assert plain.namespace == namespace.name
