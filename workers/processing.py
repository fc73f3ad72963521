"""The workers' processing as the operations layer's dry run and re-evaluation preview use it: this module fits
operations.processing.Processing, and the front ends pass it into their Context.

Cheap to import (the dashboard imports it at start): the stages load on first use only, because their
parsers, PDF reader and language model cost the dashboard ~43 MB and the evaluators ~20 MB (measured with
ru_maxrss), and only a dry run or a re-evaluation's preview needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from guard.types import RawDocument

if TYPE_CHECKING:
    from core.settings import Settings
    from workers.stages.pipeline import CpuStageResult

CHILD_MODULES: Sequence[str] = ("workers.stages.pipeline",)  # what parse_each needs in its child


def parse_each(job: tuple[Sequence[RawDocument], int, float]) -> list[CpuStageResult]:
    from workers.stages.pipeline import run_cpu_stages_each  # lazily: see the module's docstring

    return run_cpu_stages_each(job)


def failed_everywhere(documents: Sequence[RawDocument], reason: str) -> list[CpuStageResult]:
    from workers.stages.pipeline import failed_everywhere as failed  # lazily: see the module's docstring

    return failed(documents, reason)


def evaluator_identity(settings: Settings) -> tuple[str, str | None, str | None]:
    """(evaluator, model, topics version) of what the workers judge with under the same settings.

    Building the evaluator reads no model: the semantic one loads its model on first use only.
    """
    from workers.stages.evaluate import make_evaluator  # lazily: see the module's docstring

    evaluator = make_evaluator(settings)
    return (
        str(getattr(evaluator, "name", settings.evaluator)),
        getattr(evaluator, "model", None),
        getattr(evaluator, "topics_version", None),
    )
