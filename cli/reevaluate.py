"""`loreguard reevaluate ...`: judge stored documents again with today's evaluator, through the operations layer."""

from __future__ import annotations

import click

from cli.output import UsageProblem, acting, echo_json, load_settings, operations, print_table, when
from data.repository import ReevaluationScope
from operations import Context
from operations import reevaluations as reeval_ops
from operations import reviews as review_ops

LABEL = click.Choice(("review", *review_ops.LABELS))


def scope_options(command: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option("--source", "source_ref", metavar="SOURCE", help="Only this source (id or name)."),
            click.option("--batch", "batch_id", type=click.IntRange(min=1), help="Only this batch."),
            click.option("--label", type=LABEL, help="Only documents with this label."),
            click.option(
                "--stale", is_flag=True, help="Only verdicts made against other topics or another model."
            ),
        ]
    ):
        command = option(command)
    return command


def _scope(
    ctx: Context, source_ref: str | None, batch_id: int | None, label: str | None, stale: bool
) -> ReevaluationScope:
    source_id = None
    if source_ref is not None:
        ref: int | str = int(source_ref) if source_ref.isdigit() else source_ref
        source_id = review_ops.review_filter(ctx, source=ref).source_id
    return ReevaluationScope(source_id=source_id, batch_id=batch_id, label=label, stale_only=stale)


@click.group()
def reevaluate() -> None:
    """Judge stored documents again with today's evaluator and topics (people's decisions are kept)."""


@reevaluate.command()
@scope_options
@click.option(
    "--expect", type=click.IntRange(min=0), help="The count you were shown; without it, only preview."
)
@click.option("--reason", default="", help="Why (for the audit log).")
@click.option("--actor", help='On whose behalf; recorded as "OS-USER as ACTOR" (default: the OS user).')
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def start(
    source_ref: str | None,
    batch_id: int | None,
    label: str | None,
    stale: bool,
    expect: int | None,
    reason: str,
    actor: str | None,
    as_json: bool,
) -> None:
    """Preview the scope (count, tokens, cost); with --expect N, start re-evaluating those N documents."""
    settings = load_settings()
    who = acting(settings, actor)
    with operations(settings) as ctx:
        scope = _scope(ctx, source_ref, batch_id, label, stale)
        plan = reeval_ops.preview(who, ctx, scope)
        if expect is None:
            if as_json:
                echo_json(plan.__dict__)
                return
            raise UsageProblem(f"{plan.sentence()} Run again with --expect {plan.documents} to start.")
        started = reeval_ops.start(who, ctx, scope, expected=expect, reason=reason)
    if as_json:
        echo_json({"reevaluation": started, "documents": expect})
    else:
        click.echo(f"re-evaluation {started} started by {who.name}: {expect} document(s)")


@reevaluate.command()
@click.argument("reevaluation_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--reason", default="", help="Why (for the audit log).")
@click.option("--actor", help='On whose behalf; recorded as "OS-USER as ACTOR" (default: the OS user).')
def cancel(reevaluation_id: int, reason: str, actor: str | None) -> None:
    """Stop re-evaluation ID: what it stored stays."""
    settings = load_settings()
    who = acting(settings, actor)
    with operations(settings) as ctx:
        reeval_ops.cancel(who, ctx, reevaluation_id, reason=reason)
    click.echo(f"re-evaluation {reevaluation_id}: cancel requested by {who.name}")


@reevaluate.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(as_json: bool) -> None:
    """The recent re-evaluations, with their progress."""
    settings = load_settings()
    who = acting(settings)
    with operations(settings) as ctx:
        rows = reeval_ops.recent(who, ctx)
    if as_json:
        echo_json([r.__dict__ for r in rows])
        return
    print_table(
        "Re-evaluations",
        ["id", "scope", "status", "done", "of", "tokens", "evaluator", "started by", "started"],
        [
            [
                r.id,
                r.description,
                r.status,
                r.done,
                r.total,
                r.tokens,
                r.evaluator,
                r.started_by,
                when(r.created_at),
            ]
            for r in rows
        ],
    )
