"""Running LoreGuard's own containers with podman, as compose.yaml and the rendered Kubernetes overlay define them.

The files are what is run: each container gets the command, environment, user, read-only root, scratch space,
mounted secrets and ports its service or pod spec gives it. Only what cannot exist here is replaced: the
temporalio/server and postgres images by this machine's Temporal dev server and PostgreSQL, which a container
reaches through its own network namespace (slirp4netns) at the host's loopback, HOST.

Why not `podman kube play`: podman 4.3 (Debian bookworm) plays Pods and Deployments but no Job, and does not run
httpGet probes; so every container, the setup Job's included, is started with `podman run` from its pod spec,
and the test runs each probe itself.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.devserver import free_port
from tests.deploy.manifests import ROOT, Resource, by_kind, container_env, pod_spec

BASE_IMAGE = "docker.io/library/python:3.11-slim"  # ../shared/containers/setup provides a stand-in
# A tag per checkout: several worktrees (or CI beside a developer) may build at once; the layers are shared.
IMAGE = f"localhost/loreguard:test-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]}"
# Each container has a network namespace of its own (its ports are the ones its files declare, as in a pod),
# with the host's loopback at HOST: where this machine's PostgreSQL, Temporal dev server and OIDC provider listen.
NETWORK = "slirp4netns:allow_host_loopback=true"
HOST = "10.0.2.2"


def podman() -> str | None:
    return shutil.which("podman")


def engine_ready() -> bool:
    """podman and the stand-in base image (../shared/containers/setup installs both)."""
    binary = podman()
    if binary is None:
        return False
    return subprocess.run([binary, "image", "exists", BASE_IMAGE], capture_output=True).returncode == 0


def run(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = podman()
    assert binary is not None
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"podman {' '.join(args[:3])}...: {done.stderr[-3000:]}"
    return done


def build_image() -> float:
    """`podman build` of the repository's Dockerfile (layers reused between runs); the seconds it took."""
    started = time.monotonic()
    run("build", "--network", "host", "--pull=never", "-t", IMAGE, str(ROOT), timeout=900)
    return time.monotonic() - started


def image_size(image: str = IMAGE) -> int:
    return int(run("image", "inspect", image, "--format", "{{.Size}}").stdout.strip())


def size_bytes(quantity: str) -> str:
    """A Kubernetes quantity (256Mi) as podman's tmpfs size (256m)."""
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    for suffix, unit in units.items():
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    return quantity


@dataclass
class RunSpec:
    """What `podman run` needs, read from a compose service or a pod spec."""

    name: str
    command: list[str]
    env: dict[str, str]
    ports: list[int] = field(default_factory=list)  # container ports, each published on a free host port
    user: str | None = None
    read_only: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> size ("" = podman's default)
    mounts: list[tuple[Path, str]] = field(default_factory=list)  # read-only (host path, container path)
    no_new_privileges: bool = False
    drop_capabilities: bool = False
    hosts: dict[str, str] = field(
        default_factory=dict
    )  # name -> address (what the cluster's DNS would answer)
    host_ports: dict[int, int] = field(default_factory=dict)  # container port -> a chosen host port


@dataclass
class Container:
    name: str
    ports: dict[int, int]  # container port -> host port on 127.0.0.1

    def url(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}{path}"

    def logs(self) -> str:
        done = run("logs", self.name, check=False)
        return (done.stdout + done.stderr)[-4000:]

    def state(self) -> dict[str, Any]:
        inspected: list[dict[str, Any]] = json.loads(run("inspect", self.name).stdout)
        state: dict[str, Any] = inspected[0]["State"]
        return state

    def exec(self, command: Sequence[str], timeout: float = 30) -> int:
        return run("exec", self.name, *command, timeout=timeout, check=False).returncode


class Engine:
    """The test's containers (names with a prefix of their own), removed at the end."""

    def __init__(self, image: str = IMAGE) -> None:
        self.image = image
        self.prefix = f"lgtest-{uuid.uuid4().hex[:8]}"
        self.containers: list[Container] = []

    def args(self, spec: RunSpec) -> tuple[list[str], dict[int, int]]:
        ports = {port: spec.host_ports.get(port) or free_port() for port in spec.ports}
        args = ["--network", NETWORK, "--name", f"{self.prefix}-{spec.name}"]
        for port, host in ports.items():
            args += ["-p", f"127.0.0.1:{host}:{port}"]
        for host, address in spec.hosts.items():
            args += ["--add-host", f"{host}:{address}"]
        if spec.user:
            args += ["--user", spec.user]
        if spec.read_only:
            args += ["--read-only", "--read-only-tmpfs=false"]
        for path, size in spec.tmpfs.items():
            args += ["--tmpfs", f"{path}:rw,mode=1777" + (f",size={size}" if size else "")]
        for source, target in spec.mounts:
            args += ["--volume", f"{source}:{target}:ro"]
        if spec.no_new_privileges:
            args += ["--security-opt", "no-new-privileges"]
        if spec.drop_capabilities:
            args += ["--cap-drop", "ALL"]
        for key, value in spec.env.items():
            args += ["--env", f"{key}={value}"]
        return args, ports

    def start(self, spec: RunSpec) -> Container:
        args, ports = self.args(spec)
        run("run", "--detach", *args, self.image, *spec.command)
        container = Container(f"{self.prefix}-{spec.name}", ports)
        self.containers.append(container)
        return container

    def start_all(self, specs: dict[str, RunSpec]) -> dict[str, Container]:
        """Start these containers at once, as compose and the kubelet do (each `podman run` takes seconds)."""
        with ThreadPoolExecutor(max_workers=len(specs) or 1) as pool:
            futures = {name: pool.submit(self.start, spec) for name, spec in specs.items()}
            return {name: future.result() for name, future in futures.items()}

    def run_to_end(self, spec: RunSpec, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        args, _ = self.args(spec)
        return run("run", "--rm", *args, self.image, *spec.command, timeout=timeout, check=False)

    def stop(self, containers: Sequence[Container], grace: int = 30) -> None:
        """SIGTERM (as Kubernetes and compose stop a container), SIGKILL after `grace` seconds."""
        if containers:
            run("stop", "--time", str(grace), *(c.name for c in containers), timeout=grace + 60)

    def remove_all(self) -> None:
        if self.containers:
            run("rm", "--force", "--time", "0", *(c.name for c in self.containers), check=False)


def http_status(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def wait_for(check: Any, budget: float, what: str, container: Container, every: float = 0.25) -> None:
    """Until `check()` is true; fails with the container's log once `budget` seconds have gone."""
    deadline = time.monotonic() + budget
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{container.name}: {what} not within {budget:.0f} s\n{container.logs()}")
        if container.state().get("Status") == "exited":
            raise AssertionError(f"{container.name} exited: {what} never happened\n{container.logs()}")
        time.sleep(every)


# --- Kubernetes: a pod spec of the rendered overlay as `podman run` --------------------------------------------


def pod_run_spec(
    workload: Resource, resources: list[Resource], overrides: dict[str, str], secrets_dir: Path
) -> RunSpec:
    """The pod's one container: command, env (ConfigMap, Secret keys, downward API), runAsUser/Group, read-only
    root, no privilege escalation, no capabilities, emptyDir volumes as tmpfs of their sizeLimit, and Secret
    volumes as read-only folders holding the Secret's keys (written from the rendered Secret)."""
    spec = pod_spec(workload)
    (container,) = spec["containers"]
    security, context = container["securityContext"], spec["securityContext"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    secrets = by_kind(resources, "Secret")
    run_spec = RunSpec(
        name=workload["metadata"]["name"].removeprefix("loreguard-").replace(".", "-"),
        command=list(container["command"]),
        env={**container_env(container, resources), **overrides},
        ports=[p["containerPort"] for p in container.get("ports", [])],
        user=f"{context['runAsUser']}:{context['runAsGroup']}",
        read_only=security.get("readOnlyRootFilesystem", False),
        no_new_privileges=security.get("allowPrivilegeEscalation") is False,
        drop_capabilities=security.get("capabilities", {}).get("drop") == ["ALL"],
    )
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            run_spec.tmpfs[mount["mountPath"]] = size_bytes(str(volume["emptyDir"].get("sizeLimit", "")))
        elif "secret" in volume:
            assert mount.get("readOnly") is True, mount
            data = secrets[volume["secret"]["secretName"]]["stringData"]
            folder = secrets_dir / f"{run_spec.name}-{mount['name']}"
            folder.mkdir(parents=True)
            items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                path = folder / item["path"]
                path.write_text(data[item["key"]])
                path.chmod(0o644)  # the kubelet: defaultMode with the pod's fsGroup; here: readable by 10001
            run_spec.mounts.append((folder, mount["mountPath"]))
        else:
            raise AssertionError(f"unexpected volume {volume}")
    return run_spec


def probe_budget(probe: dict[str, Any]) -> float:
    """How long the kubelet gives a probe before it acts: periodSeconds x failureThreshold."""
    return float(probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))


def wait_for_probe(container: Container, spec: dict[str, Any], probe_name: str) -> None:
    """Run the pod spec's httpGet probe (as the kubelet would) until it answers 2xx within its budget."""
    probe = spec[probe_name]
    ports = {p["name"]: p["containerPort"] for p in spec.get("ports", [])}
    port = probe["httpGet"]["port"]
    url = container.url(ports.get(port, port), probe["httpGet"]["path"])
    wait_for(lambda: 200 <= http_status(url) < 300, probe_budget(probe), f"{probe_name} {url}", container)


@contextmanager
def postgres_database(admin_url: str, name: str) -> Iterator[None]:
    """A database of the test's own on the machine's PostgreSQL, dropped afterwards."""
    from sqlalchemy import text

    from data.db import make_engine

    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
