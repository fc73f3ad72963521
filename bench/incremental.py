"""Incremental refresh: what a second refresh of an unchanged source costs, against the first, in one run.

    .venv/bin/python bench/incremental.py --docs 10000

The real stack: a Temporal dev server (SQLite, WAL) and one worker process (all queues, CPU pool over all
cores, the configured evaluator), batches started through the operations layer as the CLI does.
(1) first refresh of a folder of generated documents vs (2) a second refresh of the unchanged folder: wall
    time of each, the ratio (goal <= 5%), evaluator calls (the worker's loreguard_evaluator_calls counter)
    and documents read;
(3) one file changed: documents processed (goal: exactly 1);
(4) a feed on a loopback server honouring ETag / Last-Modified, refreshed twice: the body bytes the server
    sent each time (goal: 0 on the second, answered 304).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import Session, sessionmaker  # noqa: E402
from temporalio.client import Client  # noqa: E402

from bench.pipeline import start_refresh  # noqa: E402
from cli.devserver import DevServer, free_port  # noqa: E402
from cli.processes import stop_process  # noqa: E402
from core.settings import Settings  # noqa: E402
from data import repository  # noqa: E402
from data.corpus import write_corpus  # noqa: E402
from data.db import make_engine, make_session_factory  # noqa: E402
from data.migrate import upgrade  # noqa: E402
from data.models import Batch  # noqa: E402
from orchestration.client import register_search_attributes  # noqa: E402

WARMUP_DOCS = 60
FEED_ITEMS = 50


class ConditionalSite:
    """A loopback web server honouring conditional requests (If-None-Match, If-Modified-Since: 304, no body);
    records each reply's status and body bytes."""

    def __init__(self, routes: dict[str, tuple[str, str]]) -> None:
        self.routes = {
            path: (kind, body.encode(), '"' + hashlib.sha256(body.encode()).hexdigest()[:16] + '"')
            for path, (kind, body) in routes.items()
        }
        self.modified = formatdate(1_700_000_000, usegmt=True)
        self.statuses: list[int] = []
        self.body_bytes: list[int] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kind, body, etag = site.routes[self.path]
                match, since = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
                fresh = etag in (match or "").split(", ") if match is not None else since == site.modified
                sent = b"" if fresh else body
                self.send_response(304 if fresh else 200)
                self.send_header("Content-Type", kind)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", site.modified)
                self.send_header("Content-Length", str(len(sent)))
                self.end_headers()
                self.wfile.write(sent)
                site.statuses.append(304 if fresh else 200)
                site.body_bytes.append(len(sent))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> ConditionalSite:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def feed(items: int) -> str:
    entries = "".join(
        f"<item><title>Advisory {i}</title><link>https://news.example/advisory-{i}</link>"
        f"<description>Security advisory {i}: patch the affected servers; the vendor rates it high.</description>"
        "</item>"
        for i in range(items)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Advisories</title>'
        f"<link>https://news.example/</link><description>bench</description>{entries}</channel></rss>"
    )


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def evaluator_calls(health_port: int) -> float:
    """The worker's loreguard_evaluator_calls_total, summed over evaluators (its /metrics endpoint)."""
    with _DIRECT.open(f"http://127.0.0.1:{health_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("loreguard_evaluator_calls_total")
    )


class Stack:
    def __init__(self, client: Client, sessions: sessionmaker[Session], health_port: int) -> None:
        self.client = client
        self.sessions = sessions
        self.health_port = health_port

    async def refresh(self, source_id: int) -> dict[str, float]:
        calls = evaluator_calls(self.health_port)
        started = time.perf_counter()
        batch_id, handle = await start_refresh(self.client, self.sessions, source_id=source_id)
        await handle.result()
        seconds = time.perf_counter() - started
        with self.sessions() as session:
            b = session.get(Batch, batch_id)
            assert b is not None
            row = {
                "batch": b.id,
                "seconds": seconds,
                "status": b.status,
                "read": b.total,  # documents gathered into the batch (files read, items recorded)
                "stored": b.stored,
                "unchanged": b.unchanged,
                "recognised": b.recognised,
                "failed": b.failed,
                "unchanged_at_source": b.unchanged_at_source,
            }
        # the counter is updated as each chunk's report arrives: the batch's result comes after its last one
        row["evaluator_calls"] = evaluator_calls(self.health_port) - calls
        return row


def add_source(sessions: sessionmaker[Session], name: str, kind: str, location: str) -> int:
    with sessions.begin() as session:
        return repository.create_source(session, name=name, kind=kind, location=location).id


def show(label: str, r: dict[str, float]) -> None:
    print(
        f"{label}: batch {r['batch']:.0f} {r['status']} in {r['seconds']:.2f} s; read {r['read']:.0f}, "
        f"stored {r['stored']:.0f}, unchanged {r['unchanged']:.0f} (not read: {r['recognised']:.0f}), "
        f"failed {r['failed']:.0f}, evaluator calls {r['evaluator_calls']:.0f}",
        flush=True,
    )


async def run(work: Path, docs: int) -> int:
    url = f"sqlite:///{work / 'app.db'}"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    server = DevServer(work / "temporal.db", port=free_port(), ui_port=None)
    server.start()
    health_port = free_port()
    env = {
        **os.environ,
        "LOREGUARD_DATABASE_URL": url,
        "LOREGUARD_TEMPORAL_ADDRESS": server.address,
        "LOREGUARD_STATE_DIR": str(work / "state"),
        "LOREGUARD_ALLOWED_HOSTS": json.dumps(["127.0.0.1"]),  # the loopback feed
        "LOREGUARD_METRICS_PORT": "0",
        "LOREGUARD_HEALTH_PORT": str(health_port),
    }
    log = (work / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=env, stdout=log, stderr=log)
    problems = 0
    try:
        client = await Client.connect(server.address)
        await register_search_attributes(client, "default")
        deadline = time.monotonic() + 120
        while True:  # the worker's metrics endpoint answers once it has started
            try:
                evaluator_calls(health_port)
                break
            except OSError:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise
                await asyncio.sleep(0.2)
        stack = Stack(client, sessions, health_port)
        await stack.refresh(
            add_source(sessions, "warmup", "folder", str(work / "warmup"))
        )  # CPU pool, parsers

        source_id = add_source(sessions, "bench", "folder", str(work / "docs"))
        first = await stack.refresh(source_id)
        show("(1) first refresh", first)
        second = await stack.refresh(source_id)
        show("(2) second refresh, unchanged folder", second)
        ratio = second["seconds"] / first["seconds"]
        print(f"ratio second/first: {ratio:.2%} (goal <= 5%)", flush=True)
        if ratio > 0.05 or second["evaluator_calls"] or second["read"]:
            problems += 1

        changed = sorted((work / "docs").iterdir())[docs // 2]
        text = changed.read_text()
        edit = "<p>Amended: the security desk revised this report.</p></article>"
        changed.write_text(
            text.replace("</article>", edit) if "</article>" in text else text + "\nAmended.\n"
        )
        third = await stack.refresh(source_id)
        show(f"(3) one file changed ({changed.name})", third)
        if (third["read"], third["stored"], third["evaluator_calls"]) != (1, 1, 1):
            problems += 1

        with ConditionalSite({"/feed.xml": ("application/rss+xml", feed(FEED_ITEMS))}) as site:
            feed_id = add_source(sessions, "feed", "feed", site.url_for("/feed.xml"))
            a = await stack.refresh(feed_id)
            b = await stack.refresh(feed_id)
        show("(4a) feed, first refresh", a)
        show("(4b) feed, second refresh", b)
        print(
            f"(4) feed: HTTP {site.statuses[0]} with {site.body_bytes[0]:,} body bytes, then HTTP "
            f"{site.statuses[1]} with {site.body_bytes[1]:,} body bytes; second batch unchanged at source: "
            f"{bool(b['unchanged_at_source'])}",
            flush=True,
        )
        if site.statuses != [200, 304] or site.body_bytes[1] or not b["unchanged_at_source"]:
            problems += 1
    finally:
        stop_process(worker, timeout=10)
        server.stop()
        log.close()
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=10_000, help="generated documents (default 10,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loreguard-bench-incremental-") as tmp:
        work = Path(tmp)
        os.environ["LOREGUARD_FOLDER_ROOTS"] = json.dumps([str(work.resolve())])  # the worker inherits it
        t = time.perf_counter()
        write_corpus(work / "docs", args.docs, seed=1)
        write_corpus(work / "warmup", WARMUP_DOCS, seed=2)
        print(f"corpus: {args.docs} documents written in {time.perf_counter() - t:.1f} s", flush=True)
        print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}", flush=True)
        print(f"evaluator: {Settings().evaluator}", flush=True)
        problems = asyncio.run(run(work, args.docs))
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if problems:
        print(f"error: {problems} goal(s) missed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
