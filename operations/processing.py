"""What two actions need of the workers' processing, passed in by the front end that builds the Context.

A dry run shows each document after the workers' normalize and extract, and a re-evaluation's preview names
the evaluator the workers judge with. Operations imports no worker code (.importlinter): the front ends,
which sit above both, pass `workers.processing` (a module that fits this protocol) into their Context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.settings import Settings
from guard.types import RawDocument

ParseJob = tuple[Sequence[RawDocument], int, float]  # documents, max PDF pages, seconds per document


class ParsedMetadata(Protocol):
    @property
    def title(self) -> str | None: ...
    @property
    def language(self) -> str: ...
    @property
    def word_count(self) -> int: ...


class Parsed(Protocol):
    """One document after normalize and extract: its metadata, or the stage it failed at and why."""

    @property
    def metadata(self) -> ParsedMetadata | None: ...
    @property
    def failed_stage(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def ok(self) -> bool: ...


class Processing(Protocol):
    # Modules a confined child running `parse_each` needs, for the guard's fork server to load once.
    CHILD_MODULES: Sequence[str]

    def parse_each(self, job: ParseJob) -> Sequence[Parsed]:
        """Normalize and extract each document (a module-level function: it runs in a confined child)."""
        ...

    def failed_everywhere(self, documents: Sequence[RawDocument], reason: str) -> Sequence[Parsed]:
        """The same failure for every document, when the confined parse did not finish."""
        ...

    def evaluator_identity(self, settings: Settings) -> tuple[str, str | None, str | None]:
        """(evaluator, model, topics version) the workers judge with under `settings`."""
        ...
