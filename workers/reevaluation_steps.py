"""The re-evaluation steps: judge a page of stored documents again with the current evaluator and store the
verdicts, marked with the re-evaluation's id; a person's label is kept (see repository.upsert_evaluations)."""

from __future__ import annotations

from typing import Any

from data import repository
from orchestration.types import FinishReevaluationInput, ReevaluatePageInput, ReevaluatePageResult
from workers.chunk_steps import evaluation_input, evaluation_row
from workers.steps_base import Heartbeat, StepsBase, no_heartbeat

REEVALUATE_PAGE = 200  # documents per activity
REEVALUATE_GROUP = 50  # documents per evaluator call and store transaction


class ReevaluationSteps(StepsBase):
    def reevaluate_page(
        self, input: ReevaluatePageInput, *, heartbeat: Heartbeat = no_heartbeat
    ) -> ReevaluatePageResult:
        """Up to REEVALUATE_PAGE documents after `after_id`; each group is judged and stored in one
        transaction with the re-evaluation's progress, so a crash loses at most the group in hand."""
        with self.sessions() as session:
            row = repository.get_reevaluation(session, reevaluation_id=input.reevaluation_id)
            if row is None or row.status != repository.REEVALUATION_RUNNING:
                return ReevaluatePageResult(evaluated=0, last_id=input.after_id, finished=True)
            artifacts = repository.next_page(
                session, reevaluation=row, after_id=input.after_id, limit=REEVALUATE_PAGE
            )
            kinds = {
                sid: repository.get_source(session, source_id=sid).kind
                for sid in {a.source_id for a in artifacts}
            }
        evaluated = 0
        for start in range(0, len(artifacts), REEVALUATE_GROUP):
            group = artifacts[start : start + REEVALUATE_GROUP]
            inputs = [evaluation_input(a, kinds[a.source_id]) for a in group]
            many = getattr(self.evaluator, "evaluate_many", None)
            if many is not None:  # a local model: one batched call for the group
                verdicts = many(inputs)
            else:  # an API call per document, each of which may take seconds: heartbeat after each
                verdicts = []
                for one in inputs:
                    verdicts.append(self.evaluator.evaluate(one))
                    heartbeat(evaluated + len(verdicts))
            below = self.settings.review_below_confidence
            rows: list[dict[str, Any]] = [
                {**evaluation_row(a.id, v, below), "reevaluation_id": input.reevaluation_id}
                for a, v in zip(group, verdicts, strict=True)
            ]
            with self._tx() as session:
                repository.upsert_evaluations(session, rows=rows)
                repository.add_progress(
                    session,
                    reevaluation_id=input.reevaluation_id,
                    done=len(rows),
                    tokens=sum(r["tokens"] or 0 for r in rows),
                )
            evaluated += len(rows)
            heartbeat(evaluated)
        last = artifacts[-1].id if artifacts else input.after_id
        return ReevaluatePageResult(
            evaluated=evaluated, last_id=last, finished=len(artifacts) < REEVALUATE_PAGE
        )

    def finish_reevaluation(self, input: FinishReevaluationInput) -> None:
        with self._tx() as session:
            repository.finish_reevaluation(
                session, reevaluation_id=input.reevaluation_id, status=input.status
            )
