"""`loreguard cancel`: stop running batches (given by id, or every one matching a filter), through the
operations layer."""

from __future__ import annotations

import dataclasses

import click

from cli.output import UsageProblem, acting, echo_json, load_settings, operations
from core.vocabulary import BATCH_IN_FLIGHT
from operations import cancellation as cancel_ops


@click.command()
@click.argument("batch_ids", metavar="[BATCH]...", nargs=-1, type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why the batches are stopped (required; recorded and audited).")
@click.option("--all", "matching", is_flag=True, help="Every running batch matching --source / --status.")
@click.option("--source", "source_ref", metavar="SOURCE", help="With --all: only this source's (id or name).")
@click.option(
    "--status",
    type=click.Choice([s.value for s in BATCH_IN_FLIGHT]),
    help="With --all: only batches in this status.",
)
@click.option("--yes", is_flag=True, help="Do not ask before cancelling what --all matches.")
@click.option("--actor", help='On whose behalf; recorded as "OS-USER as ACTOR" (default: the OS user).')
@click.option("--json", "as_json", is_flag=True, help="Print each batch's outcome as JSON.")
def cancel(
    batch_ids: tuple[int, ...],
    reason: str,
    matching: bool,
    source_ref: str | None,
    status: str | None,
    yes: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Cancel running BATCHes, or with --all every running batch matching a filter (the count is shown first).

    Each batch stops at its activities' next heartbeat and keeps what it stored; it ends `cancelled`. Exit
    status 1 when any batch refused (it had ended, say).
    """
    if batch_ids and matching:
        raise UsageProblem("give batch ids or --all with a filter, not both")
    if not batch_ids and not matching:
        raise UsageProblem("name the batches to cancel, or use --all (with --source / --status to narrow it)")
    if (source_ref or status) and not matching:
        raise UsageProblem("--source and --status narrow --all; with batch ids they mean nothing")
    if not reason.strip():
        raise UsageProblem("a cancellation needs a reason (--reason TEXT)")
    settings = load_settings()
    who = acting(settings, actor)
    with operations(settings) as ctx:
        if batch_ids:
            outcomes = cancel_ops.cancel_many(who, ctx, list(batch_ids), reason=reason)
        else:
            f = cancel_ops.RunningFilter(source=source_ref, status=status)
            found = cancel_ops.running_matching(ctx, f)
            if not found:
                click.echo("no running batch matches", err=as_json)
                return
            listed = ", ".join(f"{b.batch_id} ({b.source_name}, {b.status})" for b in found[:20])
            more = f" and {len(found) - 20} more" if len(found) > 20 else ""
            click.echo(f"{len(found)} running batch(es) match: {listed}{more}", err=as_json)
            if not yes:
                click.confirm(f"Cancel these {len(found)} batch(es)?", abort=True, err=as_json)
            outcomes = cancel_ops.cancel_matching(who, ctx, f, reason=reason, expected=len(found))
    if as_json:
        echo_json([{**dataclasses.asdict(o), "actor": who.name} for o in outcomes])
    else:
        for outcome in outcomes:
            click.echo(outcome.message, err=not outcome.accepted)
    if not all(o.accepted for o in outcomes):
        raise click.exceptions.Exit(1)
