"""The `loreguard` command: the group, its subcommands, and an entry point that always exits with its status."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from contextlib import suppress
from typing import NoReturn

import click

from cli.cancel import cancel
from cli.decisions import approve, reject
from cli.hybrid import celery_worker
from cli.reevaluate import reevaluate
from cli.reviews import review
from cli.services import dashboard, migrate, setup, worker
from cli.sla import sla
from cli.sources import batches, refresh, source
from cli.stack import up


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("loreguard")
    except PackageNotFoundError:
        return "unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=package_version())
def cli() -> None:
    """LoreGuard Ops: a durable document pipeline on Temporal, with an operations dashboard.

    Configuration comes from LOREGUARD_* environment variables or a .env file.
    """


for command in (
    up,
    worker,
    celery_worker,
    dashboard,
    migrate,
    setup,
    source,
    refresh,
    batches,
    approve,
    reject,
    review,
    reevaluate,
    cancel,
    sla,
):
    cli.add_command(command)


def run(args: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status instead of exiting."""
    try:
        result = cli.main(
            args=list(args) if args is not None else None, prog_name="loreguard", standalone_mode=False
        )
        return result if isinstance(result, int) else 0
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 1
    except Exception:
        traceback.print_exc()
        return 1


def main() -> NoReturn:
    """Console-script entry point: exit with the command's own status, every time.

    The Temporal SDK can abort at interpreter finalisation (PyGILState_Release, status 134) after the work is
    done, so this flushes the output and leaves with os._exit, skipping finalisation.
    """
    code = run()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
