"""`loreguard sla rebuild`: recompute the SLA page's daily rollups from the finished batches."""

from __future__ import annotations

import time

import click

from cli.output import database, echo_json, load_settings


@click.group()
def sla() -> None:
    """The SLA rollups the dashboard's SLA page reads (kept up to date as batches finish)."""


@sla.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def rebuild(as_json: bool) -> None:
    """Recompute every daily per-source SLA rollup (after changing LOREGUARD_SLA_TARGET_HOURS or
    LOREGUARD_TIMEZONE, or to repair)."""
    from data.repository import rebuild_sla_rollups

    settings = load_settings()
    started = time.perf_counter()
    with database(settings) as sessions, sessions.begin() as session:
        days = rebuild_sla_rollups(session, target_hours=settings.sla_target_hours, zone=settings.timezone)
    seconds = time.perf_counter() - started
    if as_json:
        echo_json(
            {
                "source_days": days,
                "target_hours": settings.sla_target_hours,
                "zone": settings.timezone,
                "seconds": round(seconds, 3),
            }
        )
    else:
        click.echo(
            f"rebuilt the SLA rollups: {days:,} source-day(s), on time within "
            f"{settings.sla_target_hours:g} h, days in {settings.timezone}, in {seconds:.1f} s"
        )
