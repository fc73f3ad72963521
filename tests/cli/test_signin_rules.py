"""The dashboard's start-up rule: without sign-in it serves only loopback; outside development its cookie secret
must be real. `loreguard dashboard` and `loreguard up` refuse before anything listens, and say how to fix it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.devserver import free_port, port_open
from core.signin import auth_problems, loopback

SCRIPT = Path(sys.executable).with_name("loreguard")
AUTH = """[auth]
redirect_uri = "https://ops.example.org/oauth2callback"
cookie_secret = "{secret}"
client_id = "loreguard"
client_secret = "from-the-provider"
server_metadata_url = "https://login.example.org/.well-known/openid-configuration"
"""


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`loreguard *args`, expected to finish: a command the start-up rule should refuse fails fast, with the
    reason, the moment it starts listening (or `up` starts its Temporal server) instead of running on."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    clean.update(LOREGUARD_STATE_DIR=str(tmp_path / "state"), **env)
    port = int(env["LOREGUARD_DASHBOARD_PORT"]) if "LOREGUARD_DASHBOARD_PORT" in env else None
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [str(SCRIPT), *args],
            env=clean,
            cwd=tmp_path,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    started = None
    while proc.poll() is None:
        if port is not None and port_open("127.0.0.1", port):
            started = f"it listens on port {port}"
        elif (tmp_path / "state" / "temporal.db").exists():
            started = "it started its Temporal server"
        elif time.monotonic() > deadline:
            started = "it neither refused nor finished within 60 s"
        if started is not None:
            os.killpg(proc.pid, signal.SIGKILL)  # `up` and what it started (its Temporal server)
            proc.wait()
            pytest.fail(
                f"`loreguard {' '.join(args)}` was not refused at start ({started}): the dashboard's start-up "
                f"sign-in rule (core/signin.py auth_problems) did not apply\n{err.read_text()[-2000:]}"
            )
        time.sleep(0.05)
    return subprocess.CompletedProcess(args, proc.returncode, out.read_text(), err.read_text())


@pytest.mark.parametrize(
    ("command", "address", "named"),
    [
        (["dashboard"], "0.0.0.0", "0.0.0.0"),
        (["dashboard"], "", "every interface"),  # Streamlit's empty address: all of them
        (["up", "--no-demo"], "0.0.0.0", "0.0.0.0"),
    ],
)
def test_a_public_address_without_sign_in_is_refused_at_start(
    tmp_path: Path, command: list[str], address: str, named: str
) -> None:
    port = free_port()
    result = run(tmp_path, *command, LOREGUARD_DASHBOARD_ADDRESS=address, LOREGUARD_DASHBOARD_PORT=str(port))

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"would listen on {named}" in result.stderr and "without sign-in" in result.stderr
    assert "[auth]" in result.stderr and "LOREGUARD_DASHBOARD_ADDRESS=127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not port_open("127.0.0.1", port)  # nothing listens
    assert not (tmp_path / "state" / "temporal.db").exists()  # `up` started nothing


def test_production_refuses_a_placeholder_cookie_secret(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(AUTH.format(secret="changethis"))

    result = run(
        tmp_path,
        "dashboard",
        LOREGUARD_ENVIRONMENT="production",
        LOREGUARD_DASHBOARD_ADDRESS="0.0.0.0",
        LOREGUARD_DASHBOARD_SECRETS=str(secrets),
    )

    assert result.returncode == 2
    assert "cookie_secret must be a random secret of at least 32 characters in production" in result.stderr


def test_the_rule_itself() -> None:
    real = {
        "redirect_uri": "https://ops.example.org/oauth2callback",
        "cookie_secret": "9f2c4e1a7b3d5f6e8a0c2e4f6a8b0d1e3f5a7c9e1b3d5f7a9c1e3f5a7b9d1e3f",
        "client_id": "loreguard",
        "client_secret": "x",
        "server_metadata_url": "https://login.example.org/.well-known/openid-configuration",
    }
    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost")
    assert not loopback("0.0.0.0") and not loopback("10.0.0.5") and not loopback("")
    assert auth_problems(None, address="127.0.0.1", environment="production") == []
    assert auth_problems(real, address="0.0.0.0", environment="production") == []
    assert (
        auth_problems({**real, "cookie_secret": "changethis"}, address="0.0.0.0", environment="development")
        == []
    )
    assert auth_problems({**real, "redirect_uri": ""}, address="0.0.0.0", environment="development") == [
        "[auth] redirect_uri is missing"
    ]


def test_a_command_line_user_without_the_role_is_refused_with_status_3(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    env = {"LOREGUARD_FOLDER_ROOTS": f'["{tmp_path}"]'}
    assert run(tmp_path, "migrate", **env).returncode == 0

    result = run(
        tmp_path, "source", "add", "docs", "--kind", "folder", "--location", str(folder),
        LOREGUARD_CLI_ROLES='["viewer"]', **env,
    )  # fmt: skip

    assert result.returncode == 3, result.stderr
    assert (
        "You need the operator or admin role to register, edit, pause, resume or refresh sources"
        in result.stderr
    )
    assert "(you have: viewer)" in result.stderr
