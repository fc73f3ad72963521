"""`loreguard source ...`, `refresh` and `batches`: parse, call the operations layer, print."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from cli.output import (
    UsageProblem,
    acting,
    database,
    echo_json,
    load_settings,
    operations,
    print_table,
    when,
)
from core.freshness import stale_reason
from core.urls import without_userinfo
from core.vocabulary import BATCH_IN_FLIGHT, BATCH_STATUSES, SOURCE_KINDS, BatchStatus, skip_reasons
from data import repository
from operations import Context, Refused
from operations import batches as batch_ops
from operations import sources as source_ops
from operations.sources import MIN_INTERVAL, SourceChanged


@click.group()
def source() -> None:
    """Register and list sources."""


def report(changed: SourceChanged) -> None:
    """The change's message, and on stderr a warning when the schedule could not follow yet."""
    if changed.warning:
        click.echo(f"warning: {changed.warning}", err=True)


@source.command("add")
@click.argument("name")
@click.option(
    "--kind", type=click.Choice([k.value for k in SOURCE_KINDS]), required=True, help="What the location is."
)
@click.option("--location", required=True, help="Folder path, feed URL or page URL.")
@click.option(
    "--interval",
    type=click.IntRange(min=MIN_INTERVAL),
    default=3600,
    show_default=True,
    help="Seconds between scheduled refreshes.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read the first documents (and for a folder, count its files and what a batch would skip); save nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new source (or the dry run) as JSON.")
def source_add(name: str, kind: str, location: str, interval: int, dry_run: bool, as_json: bool) -> None:
    """Register a source NAME."""
    settings = load_settings()
    with operations(settings) as ctx:
        draft = source_ops.check_source(ctx, name=name, kind=kind, location=location, interval=interval)
        if dry_run:
            show_dry_run(source_ops.preview(acting(settings), ctx, draft), as_json)
            return
        changed = source_ops.register_source(acting(settings), ctx, draft)
    report(changed)
    if as_json:
        echo_json(
            {
                "id": changed.source_id,
                "name": changed.name,
                "kind": draft.kind,
                "location": draft.location,
                "interval": draft.interval,
            }
        )
    else:
        click.echo(changed.message)


def show_dry_run(dry: source_ops.DryRun, as_json: bool) -> None:
    if as_json:
        echo_json(
            {
                "documents": [dataclasses.asdict(r) for r in dry.rows],
                "files": dry.files,
                "skipped": dry.skipped,
            }
        )
        return
    if dry.rows:
        print_table(
            f"Dry run: the first {len(dry.rows)} document(s)",
            ("title", "uri", "type", "bytes", "language", "words", "problem"),
            [(r.title, r.uri, r.content_type, r.size, r.language, r.words, r.problem) for r in dry.rows],
        )
    else:
        click.echo("the source yields no documents yet")
    if dry.summary:
        click.echo(dry.summary)
    click.echo("nothing was saved")


def change_source(action: Callable[..., SourceChanged], *args: Any) -> None:
    """Run a source action as this command's person and print what it did (and any schedule warning)."""
    settings = load_settings()
    with operations(settings) as ctx:
        changed = action(acting(settings), ctx, *args)
    report(changed)
    click.echo(changed.message)


@source.command("pause")
@click.argument("source_ref", metavar="SOURCE")
def source_pause(source_ref: str) -> None:
    """Pause SOURCE's scheduled refreshes (id or name)."""
    change_source(source_ops.pause_source, source_ref)


@source.command("resume")
@click.argument("source_ref", metavar="SOURCE")
def source_resume(source_ref: str) -> None:
    """Resume SOURCE's scheduled refreshes (id or name)."""
    change_source(source_ops.resume_source, source_ref)


@source.command("set-interval")
@click.argument("source_ref", metavar="SOURCE")
@click.argument("seconds", type=click.IntRange(min=MIN_INTERVAL))
def source_set_interval(source_ref: str, seconds: int) -> None:
    """Refresh SOURCE every SECONDS (at least 60) on its schedule."""
    change_source(source_ops.set_source_interval, source_ref, seconds)


@source.command("delete")
@click.argument("source_ref", metavar="SOURCE")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def source_delete(source_ref: str, yes: bool) -> None:
    """Delete SOURCE with its batches, documents and schedule (refused while a batch is in flight)."""
    settings = load_settings()
    with operations(settings) as ctx:
        if not yes:
            with ctx.sessions() as session:
                found = source_ops.find(session, source_ref)
                busy = repository.batch_in_flight(session, source_id=found.id)
            if busy is None:  # else the operation refuses with the reason; no question to ask
                click.confirm(
                    f"Delete source {found.id} {found.name!r} with its batches and documents?", abort=True
                )
        changed = source_ops.delete_source(acting(settings), ctx, source_ref)
    report(changed)
    click.echo(changed.message)


@source.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def source_list(as_json: bool) -> None:
    """List sources with their batch totals (and the model evaluator's tokens and cost, where it reports them)."""
    settings = load_settings()
    with database(settings) as sessions, sessions() as session:
        sources = repository.list_sources(session, with_tokens=settings.shows_tokens)
        activity = repository.source_activity(session, recent=settings.stale_after_failures)
    now = datetime.now(UTC)
    stale = {
        a.source_id: stale_reason(
            now=now,
            interval_seconds=a.interval_seconds,
            paused=a.paused,
            registered_at=a.registered_at,
            last_new_document=a.last_new_document,
            recent_statuses=a.recent_statuses,
            after_intervals=settings.stale_after_intervals,
            after_failures=settings.stale_after_failures,
        )
        for a in activity
    }
    if as_json:
        # A URL stored with credentials before registration refused them is shown without them.
        echo_json(
            [
                {**dataclasses.asdict(s), "location": without_userinfo(s.location), "stale": stale.get(s.id)}
                for s in sources
            ]
        )
        return
    if not sources:
        click.echo("no sources yet; add one with `loreguard source add NAME --kind folder --location PATH`")
        return
    price = settings.openai_price_per_million_tokens
    spent = ("tokens", *(("cost",) if price is not None else ())) if settings.shows_tokens else ()
    print_table(
        "Sources",
        (
            "id",
            "name",
            "kind",
            "location",
            "every (s)",
            "paused",
            "batches",
            "failed batches",
            "stored",
            "failed docs",
            *spent,
            "last refresh (UTC)",
            "last status",
            "stale",
        ),
        [
            (
                s.id,
                s.name,
                s.kind,
                without_userinfo(s.location),
                s.refresh_interval_seconds,
                "yes" if s.paused else "",
                s.batches,
                s.failed_batches,
                s.documents,
                s.errors,
                *((f"{s.tokens:,}",) if spent else ()),
                *((f"{s.tokens / 1e6 * price:,.2f}",) if spent and price is not None else ()),
                when(s.last_refresh),
                s.last_status,
                stale.get(s.id) or "",
            )
            for s in sources
        ],
    )


@click.command()
@click.argument("source_ref", metavar="SOURCE")
@click.option("--wait", is_flag=True, help="Wait for the batch to finish and print its totals.")
@click.option(
    "--full",
    is_flag=True,
    help="Gather and process everything again (e.g. after a parser changed), not only what changed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def refresh(source_ref: str, wait: bool, full: bool, as_json: bool) -> None:
    """Start a refresh (a batch) of SOURCE, given by id or name.

    A refresh is incremental: a feed or page is asked for only if it changed, a folder's files that did not
    change are not read, and content stored before is not processed or evaluated again. --full does it all.
    """
    settings = load_settings()
    with operations(settings) as ctx:
        started = batch_ops.refresh_source(acting(settings), ctx, source_ref, full=full)
        outcome: dict[str, Any] = {
            "batch_id": started.batch_id,
            "workflow_id": started.workflow_id,
            "source_id": started.source_id,
            "source": started.source_name,
            "full": started.full,
        }
        if not as_json:
            click.echo(
                f"{'full ' if full else ''}batch {started.batch_id} started for source {started.source_name!r} "
                f"(workflow {started.workflow_id})"
            )
        if wait:
            outcome.update(wait_for_batch(ctx, started.batch_id))
    if as_json:
        echo_json(outcome)
    elif wait:
        line = (
            f"batch {outcome['batch_id']} {outcome['status']}: {outcome['total']} documents, "
            f"{outcome['stored']} stored, {outcome['failed']} failed"
        )
        if outcome["unchanged_at_source"]:
            line += ", unchanged at source (the server answered 304 Not Modified: nothing gathered)"
        if outcome["unchanged"]:
            line += f", {outcome['unchanged']} unchanged"
        if outcome["recognised"]:
            line += f" ({outcome['recognised']} file(s) not read: as the last refresh saw them)"
        if outcome["skipped"]:
            why = "; ".join(f"{reason}: {n}" for reason, n in outcome["skip_reasons"].items())
            line += f", {outcome['skipped']} skipped ({why})"
        if outcome.get("error_message"):
            line += f" ({outcome['error_type']}: {outcome['error_message']})"
        click.echo(line)
        if outcome["status"] == BatchStatus.AWAITING_APPROVAL:
            click.echo("the batch waits for an operator to approve a retry or reject it")
    if wait and outcome["status"] != BatchStatus.COMPLETED:
        raise click.exceptions.Exit(1)


def wait_for_batch(ctx: Context, batch_id: int, poll: float = 0.5) -> dict[str, Any]:
    """The batch's totals once it has ended, or once it stopped to wait for an operator's decision."""
    while True:
        with ctx.sessions() as session:
            batch = repository.get_batch(session, batch_id=batch_id)
            if batch.status == BatchStatus.AWAITING_APPROVAL or batch.status not in BATCH_IN_FLIGHT:
                return {
                    "status": batch.status,
                    "total": batch.total,
                    "stored": batch.stored,
                    "failed": batch.failed,
                    "unchanged": batch.unchanged,
                    "skipped": batch.skipped,
                    "recognised": batch.recognised,
                    "unchanged_at_source": batch.unchanged_at_source,
                    "skip_reasons": skip_reasons(batch.skipped, batch.skip_reasons),
                    "error_type": batch.error_type,
                    "error_message": batch.error_message,
                }
        time.sleep(poll)


@click.command()
@click.option("--source", "source_ref", metavar="SOURCE", help="Only batches of this source (id or name).")
@click.option(
    "--status", type=click.Choice([s.value for s in BATCH_STATUSES]), help="Only batches in this status."
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def batches(source_ref: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List the latest batches, newest first."""
    with database(load_settings()) as sessions, sessions() as session:
        source_id = None
        if source_ref is not None:
            try:
                source_id = source_ops.find(session, source_ref).id
            except Refused as exc:
                raise UsageProblem(exc.message) from exc
        rows = repository.list_batches(session, source_id=source_id, status=status, limit=limit)
    if as_json:
        echo_json([dataclasses.asdict(row) for row in rows])
        return
    if not rows:
        click.echo("no batches yet; start one with `loreguard refresh SOURCE`")
        return
    print_table(
        "Batches",
        (
            "id",
            "source",
            "status",
            "trigger",
            "total",
            "stored",
            "failed",
            "unchanged",
            "skipped",
            "created (UTC)",
            "took",
            "error",
        ),
        [
            (
                b.id,
                b.source_name,
                b.status,
                b.trigger,
                b.total,
                b.stored,
                b.failed,
                b.unchanged,
                b.skipped,
                when(b.created_at),
                took(b.started_at, b.finished_at),
                b.error_type or "",
            )
            for b in rows
        ],
    )


def took(started: Any, finished: Any) -> str:
    if started is None or finished is None:
        return ""
    return f"{(finished - started).total_seconds():.1f} s"
