"""`loreguard approve` and `reject`: decisions on failed batches, through the operations layer."""

from __future__ import annotations

import click

from cli.output import UsageProblem, acting, echo_json, load_settings, operations
from operations import NotAccepted
from operations import batches as batch_ops


@click.command()
@click.argument("batch_id", metavar="BATCH", type=click.IntRange(min=1))
@click.option("--reason", default="", help="Why (optional for an approval).")
@click.option("--actor", help='On whose behalf; recorded as "OS-USER as ACTOR" (default: the OS user).')
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def approve(batch_id: int, reason: str, actor: str | None, as_json: bool) -> None:
    """Approve a retry of failed BATCH, which is awaiting a decision."""
    decide(batch_id, approve=True, reason=reason, actor=actor, as_json=as_json)


@click.command()
@click.argument("batch_id", metavar="BATCH", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why the batch is rejected (required).")
@click.option("--actor", help='On whose behalf; recorded as "OS-USER as ACTOR" (default: the OS user).')
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def reject(batch_id: int, reason: str, actor: str | None, as_json: bool) -> None:
    """Reject failed BATCH with a reason: it ends failed."""
    if not reason.strip():
        raise UsageProblem("a rejection needs a reason (--reason TEXT)")
    decide(batch_id, approve=False, reason=reason, actor=actor, as_json=as_json)


def decide(batch_id: int, *, approve: bool, reason: str, actor: str | None, as_json: bool) -> None:
    """Send the decision; a batch that does not accept it exits 1 with the workflow's reason."""
    settings = load_settings()
    who = acting(settings, actor)
    with operations(settings) as ctx:
        try:
            if approve:
                decided = batch_ops.approve_retry(who, ctx, batch_id, reason=reason)
            else:
                decided = batch_ops.reject(who, ctx, batch_id, reason=reason)
        except NotAccepted as exc:
            if as_json:
                echo_json({"batch_id": batch_id, "accepted": False, "refused": exc.message})
                raise click.exceptions.Exit(exc.exit_status) from exc
            raise NotAccepted(f"refused: {exc.message}") from exc
    if as_json:
        echo_json(batch_ops.as_dict(decided))
    else:
        click.echo(f"batch {batch_id} {decided.decision} by {who.name}: {decided.message}")
