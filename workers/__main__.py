"""`python -m workers [QUEUE ...]`: run a worker with settings from the environment (used by tests and compose)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from core.settings import Settings
from orchestration.constants import ALL_QUEUES
from workers.main import run_worker


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    queues = sys.argv[1:] or list(ALL_QUEUES)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(Settings(), queues))


if __name__ == "__main__":
    main()
