"""`loreguard review ...`: the review inbox from the command line, through the same operations as the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from cli.output import UsageProblem, acting, echo_json, load_settings, operations, print_table, when
from data.repository.reviews import REASONS
from operations import reviews as review_ops

LABELS = click.Choice(review_ops.LABELS)
SAID = click.Choice(("review", *review_ops.LABELS))


def filter_options(command: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option(
                "--source", "source_ref", metavar="SOURCE", help="Only documents of this source (id or name)."
            ),
            click.option(
                "--why", "why", type=click.Choice(REASONS), help="Only documents waiting for this reason."
            ),
            click.option(
                "--evaluator-said", "model_label", type=SAID, help="Only documents the evaluator labelled so."
            ),
        ]
    ):
        command = option(command)
    return command


def _source(ref: str | None) -> int | str | None:
    return int(ref) if ref is not None and ref.isdigit() else ref


@click.group()
def review() -> None:
    """The review inbox: verdicts a person should decide (doubtful, unsure or reported)."""


@review.command("list")
@filter_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(
    source_ref: str | None, why: str | None, model_label: str | None, limit: int, as_json: bool
) -> None:
    """What waits for review, oldest first."""
    settings = load_settings()
    who = acting(settings)
    with operations(settings) as ctx:
        f = review_ops.review_filter(ctx, source=_source(source_ref), reason=why, model_label=model_label)
        found = review_ops.inbox(who, ctx, f=f, limit=limit)
    if as_json:
        echo_json(
            {
                "waiting": found.count,
                "documents": [
                    {
                        "document": i.artifact_id,
                        "title": i.title,
                        "source": i.source_name,
                        "evaluator_said": i.model_label,
                        "relevance": i.relevance,
                        "why": i.why,
                        "evaluated_at": i.evaluated_at,
                        "reported_by": i.reported_by,
                        "report_note": i.report_note,
                    }
                    for i in found.items
                ],
            }
        )
        return
    print_table(
        f"{found.count} document(s) waiting for review ({review_ops.describe(f)})",
        ["document", "title", "source", "evaluator said", "relevance", "why", "evaluated"],
        [
            [
                i.artifact_id,
                i.title or i.uri,
                i.source_name,
                i.model_label,
                i.relevance,
                i.why,
                when(i.evaluated_at),
            ]
            for i in found.items
        ],
    )


@review.command()
@click.argument("document", type=click.IntRange(min=1))
@click.argument("label", type=LABELS)
@click.option("--reason", default="", help="Why (required when LABEL differs from the evaluator's).")
@click.option("--actor", help='On whose behalf; recorded as "OS-USER as ACTOR" (default: the OS user).')
def decide(document: int, label: str, reason: str, actor: str | None) -> None:
    """Decide DOCUMENT's LABEL: the evaluator's (a confirmation) or the other one (an override)."""
    settings = load_settings()
    who = acting(settings, actor)
    with operations(settings) as ctx:
        result = review_ops.review(who, ctx, artifact_id=document, label=label, reason=reason)
    verb = "overridden" if result.overridden else "confirmed"
    click.echo(f"document {document}: {label} ({verb}) by {who.name}")


@review.command()
@filter_options
@click.option("--set", "label", type=LABELS, help="Give every document this label (default: confirm each).")
@click.option("--reason", default="", help="Why (required when labels change).")
@click.option(
    "--expect", type=click.IntRange(min=0), help="The count you were shown; without it, only count."
)
@click.option("--actor", help='On whose behalf; recorded as "OS-USER as ACTOR" (default: the OS user).')
def bulk(
    source_ref: str | None,
    why: str | None,
    model_label: str | None,
    label: str | None,
    reason: str,
    expect: int | None,
    actor: str | None,
) -> None:
    """Decide every document waiting on the filter: run once to see the count, then again with --expect N."""
    settings = load_settings()
    who = acting(settings, actor)
    with operations(settings) as ctx:
        f = review_ops.review_filter(ctx, source=_source(source_ref), reason=why, model_label=model_label)
        if expect is None:
            count = review_ops.inbox(who, ctx, f=f, limit=1).count
            raise UsageProblem(
                f"{count} document(s) wait on this filter ({review_ops.describe(f)}); "
                f"run again with --expect {count} to decide them"
            )
        result = review_ops.review_waiting(who, ctx, f=f, expected=expect, label=label, reason=reason)
    click.echo(f"{result.decided} document(s) decided by {who.name}, {result.overridden} overridden")


@review.command()
@click.argument("document", type=click.IntRange(min=1))
@click.option("--note", required=True, help="What looks wrong about the verdict.")
@click.option("--actor", help='On whose behalf; recorded as "OS-USER as ACTOR" (default: the OS user).')
def report(document: int, note: str, actor: str | None) -> None:
    """Report DOCUMENT's verdict as looking wrong: it goes to the review inbox."""
    settings = load_settings()
    who = acting(settings, actor)
    with operations(settings) as ctx:
        review_ops.report(who, ctx, artifact_id=document, note=note)
    click.echo(f"document {document} sent to review by {who.name}")


@review.command()
@click.option("--weeks", type=click.IntRange(1, 520), default=12, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def agreement(weeks: int, as_json: bool) -> None:
    """How often people overrode each evaluator, per source and week."""
    settings = load_settings()
    who = acting(settings)
    with operations(settings) as ctx:
        rows = review_ops.agreement(
            who, ctx, since=datetime.now(UTC) - timedelta(weeks=weeks), zone=settings.timezone
        )
    if as_json:
        echo_json([r.__dict__ for r in rows])
        return
    print_table(
        f"Reviews of the last {weeks} weeks",
        ["evaluator", "source", "week", "reviewed", "overridden", "share"],
        [
            [r.evaluator, r.source_name, r.week, r.reviewed, r.overridden, f"{r.overridden / r.reviewed:.0%}"]
            for r in rows
        ],
    )
