"""`python -m workers [QUEUE ...]`: run a worker with settings from the environment (used by tests and compose).

SIGTERM or Ctrl-C shuts it down gracefully (see `loreguard worker`), then it exits with status 0."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from core.settings import Settings
from orchestration.constants import ALL_QUEUES
from workers.main import run_worker, stop_on_signals


async def serve(queues: list[str]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(Settings(), queues, stop=stop))
    stop_on_signals(stop, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    queues = sys.argv[1:] or list(ALL_QUEUES)
    asyncio.run(serve(queues))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the SDK can abort in interpreter finalisation (see cli/main.py); the work is done


if __name__ == "__main__":
    main()
