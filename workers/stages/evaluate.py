"""Evaluate stage: label a document relevant / review / irrelevant, with scores and a rationale.

Three evaluators behind one protocol: the semantic one (default, workers/stages/semantic.py), a keyword one and
an OpenAI-compatible LLM client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from workers.stages.credibility import credibility as credibility_of
from workers.stages.semantic import SemanticEvaluator, topics_version
from workers.stages.types import EvaluationInput, EvaluationResult

# What keyword verdicts' versions were hashed with before the semantic cascade (the semantic calibration of the
# time was part of the string): kept, so that keyword verdicts do not turn stale when only the semantic one changed.
KEYWORDS_READER = "keywords:32:0.14:10.0:0.6"

if TYPE_CHECKING:  # only read for attributes; stages do not depend on the orchestration package
    from core.settings import Settings

RELEVANT_RELEVANCE = 0.5
RELEVANT_CREDIBILITY = 0.5
IRRELEVANT_RELEVANCE = 0.2


class Evaluator(Protocol):
    name: str

    def evaluate(self, doc: EvaluationInput) -> EvaluationResult: ...


def _label(relevance: float, credibility: float) -> tuple[str, float]:
    """Label and a confidence that grows with the distance from the thresholds that decided it."""
    if relevance >= RELEVANT_RELEVANCE and credibility >= RELEVANT_CREDIBILITY:
        return "relevant", 0.5 + min(relevance - RELEVANT_RELEVANCE, credibility - RELEVANT_CREDIBILITY)
    if relevance < IRRELEVANT_RELEVANCE:
        return "irrelevant", 0.5 + 0.5 * (IRRELEVANT_RELEVANCE - relevance) / IRRELEVANT_RELEVANCE
    if relevance < RELEVANT_RELEVANCE:
        margin = min(relevance - IRRELEVANT_RELEVANCE, RELEVANT_RELEVANCE - relevance)
    else:
        margin = RELEVANT_CREDIBILITY - credibility
    return "review", 0.5 + margin


# --- built-in ------------------------------------------------------------------------------------


def _topic_pattern(topic: str) -> str:
    """The topic as a regex that also matches its plural ("vulnerability" -> "vulnerabilities")."""
    *head, last = topic.lower().split()
    if len(last) > 2 and last.endswith("y") and last[-2] not in "aeiou":
        tail = re.escape(last[:-1]) + "(?:y|ies)"
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        tail = re.escape(last) + "(?:es)?"
    else:
        tail = re.escape(last) + "s?"
    return r"\s+".join([*map(re.escape, head), tail])


class KeywordEvaluator:
    """Scores keyword coverage and density for relevance, and explainable features for credibility.

    The explicit choice `keywords` (formerly `builtin`): predictable, but blind to meaning.
    """

    name = "keywords"
    FULL_COVERAGE_TOPICS = 3  # mentioning three different topics counts as full coverage
    FULL_DENSITY_PER_100_WORDS = 4.0  # four topic mentions per hundred words is as dense as it gets

    def __init__(self, topics: Sequence[str], now: Callable[[], datetime] | None = None) -> None:
        self.topics = list(dict.fromkeys(t.strip().lower() for t in topics if t.strip()))
        self._now = now
        # Multi-word topics first, so "security policy" wins over "security" where both match.
        order = sorted(range(len(self.topics)), key=lambda i: -len(self.topics[i].split()))
        self._group_topic = [self.topics[i] for i in order]
        alternatives = "|".join(f"({_topic_pattern(self.topics[i])})" for i in order)
        self._pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE) if self.topics else None

    def _relevance(self, doc: EvaluationInput) -> tuple[float, str]:
        if self._pattern is None:
            return 0.0, "Relevance 0.00: no topics are configured"
        counts: dict[str, int] = {}
        for match in self._pattern.finditer(f"{doc.title or ''}\n{doc.text}"):
            topic = self._group_topic[(match.lastindex or 1) - 1]
            counts[topic] = counts.get(topic, 0) + 1
        if not counts:
            return 0.0, f"Relevance 0.00: mentions none of the topics ({', '.join(self.topics)})"
        coverage = min(1.0, len(counts) / min(self.FULL_COVERAGE_TOPICS, len(self.topics)))
        per_100 = 100.0 * sum(counts.values()) / max(doc.word_count, 1)
        density = min(1.0, per_100 / self.FULL_DENSITY_PER_100_WORDS)
        relevance = 0.4 * coverage + 0.6 * density
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        mentions = ", ".join(f"{topic} ({n})" for topic, n in ranked)
        return relevance, f"Relevance {relevance:.2f}: mentions {mentions}"

    def evaluate(self, doc: EvaluationInput) -> EvaluationResult:
        relevance, relevance_text = self._relevance(doc)
        credibility, credibility_text = credibility_of(doc, self._now)
        label, confidence = _label(relevance, credibility)
        return EvaluationResult(
            label=label,
            confidence=round(min(1.0, max(0.0, confidence)), 3),
            relevance=round(relevance, 3),
            credibility=round(credibility, 3),
            rationale=f"{relevance_text}. {credibility_text}.",
            evaluator=self.name,
            model=None,
            topics_version=topics_version(self.topics, KEYWORDS_READER),
        )


# --- OpenAI-compatible ---------------------------------------------------------------------------

TEXT_CHARS = 6000
SYSTEM_PROMPT = """You assess documents for a library that collects material about: {topics}.
Judge how relevant the document is to those topics and how credible it is (authorship, dating, sourcing,
substance). Answer with only a JSON object:
{{"label": "relevant" | "review" | "irrelevant", "confidence": 0..1, "relevance": 0..1,
"credibility": 0..1, "rationale": "one or two sentences naming the reasons"}}.
Use "review" when a person should decide."""


class EvaluatorError(Exception):
    """The evaluator could not give a verdict; `non_retryable` when trying again cannot help."""

    def __init__(self, message: str, *, non_retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.non_retryable = non_retryable


class _Busy(Exception):
    """429, 5xx or a connection failure: worth another attempt, after `retry_after` if the server said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: Literal["relevant", "review", "irrelevant"]
    confidence: float = Field(ge=0, le=1)
    relevance: float | None = Field(default=None, ge=0, le=1)
    credibility: float | None = Field(default=None, ge=0, le=1)
    rationale: str = Field(min_length=1)

    @field_validator("label", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError, IndexError):
        return None


def _parse_verdict(reply: Any) -> Verdict:
    try:
        content = reply["choices"][0]["message"]["content"]
        # Some compatible servers wrap JSON in a Markdown code fence despite response_format.
        content = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", content)
        return Verdict.model_validate(json.loads(content))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "verdict"
        raise EvaluatorError(f"invalid reply from the model: {where}: {first['msg']}") from exc
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EvaluatorError(f"invalid reply from the model: {detail}") from exc


class OpenAIEvaluator:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        topics: Sequence[str],
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        initial_backoff: float = 1.0,
        max_wait: float = 30.0,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.model = model
        self.topics = list(topics)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}  # local servers need none
        self._owns_client = client is None
        self.client = client or httpx.Client(timeout=timeout)
        self.attempts = max(1, attempts)
        self.max_wait = max_wait
        self._backoff = wait_exponential(multiplier=initial_backoff, max=max_wait)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, self.max_wait))
        return float(self._backoff(state))

    def _messages(self, doc: EvaluationInput) -> list[dict[str, str]]:
        published = doc.published_at.isoformat() if doc.published_at else "unknown"
        user = (
            f"Title: {doc.title or 'unknown'}\nAuthor: {doc.author or 'unknown'}\nPublished: {published}\n"
            f"URI: {doc.uri}\nSource kind: {doc.source_kind}\nLanguage: {doc.language}\n"
            f"Words: {doc.word_count}\nAlready in the library: {'yes' if doc.is_duplicate else 'no'}\n\n"
            f"Text (first {TEXT_CHARS} characters):\n{doc.text[:TEXT_CHARS]}"
        )
        system = SYSTEM_PROMPT.format(topics=", ".join(self.topics) or "any subject")
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _post(self, body: dict[str, Any]) -> Any:
        try:
            response = self.client.post(self.url, json=body, headers=self._headers)
        except httpx.TransportError as exc:
            raise _Busy(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise EvaluatorError(f"cannot call {self.url}: {exc}", non_retryable=True) from exc
        status = response.status_code
        if status in (401, 403):
            raise EvaluatorError(
                f"the LLM provider rejected the API key (HTTP {status}); check LOREGUARD_OPENAI_API_KEY",
                non_retryable=True,
            )
        if status >= 500 or status in (408, 429):
            raise _Busy(f"HTTP {status}", _retry_after(response.headers.get("retry-after")))
        if status >= 400:
            raise EvaluatorError(
                f"the LLM provider refused the request: HTTP {status}: {response.text[:300]}",
                non_retryable=True,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise EvaluatorError("invalid reply from the model: not JSON") from exc

    def evaluate(self, doc: EvaluationInput) -> EvaluationResult:
        body = {
            "model": self.model,
            "messages": self._messages(doc),
            "temperature": 0,
            "response_format": {"type": "json_object"},
        }
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts), wait=self._wait, retry=retry_if_exception_type(_Busy)
        )
        try:
            reply = retrying(self._post, body)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise EvaluatorError(
                f"LLM provider still unavailable after {self.attempts} attempts: {last}"
            ) from exc
        verdict = _parse_verdict(reply)
        return EvaluationResult(
            label=verdict.label,
            confidence=verdict.confidence,
            relevance=verdict.relevance,
            credibility=verdict.credibility,
            rationale=verdict.rationale,
            evaluator=self.name,
            model=self.model,
            tokens=_tokens(reply),
        )


def _tokens(reply: Any) -> int | None:
    """The tokens the API says the call used (OpenAI's `usage.total_tokens`); None when it does not say."""
    usage = reply.get("usage") if isinstance(reply, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    if isinstance(total, int) and not isinstance(total, bool) and 0 <= total < 10_000_000:
        return total
    return None


def make_evaluator(settings: Settings, client: httpx.Client | None = None) -> Evaluator:
    if settings.evaluator == "openai":
        return OpenAIEvaluator(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value(),
            model=settings.openai_model,
            topics=settings.topics,
            client=client,
            timeout=settings.openai_timeout_seconds,
        )
    if settings.evaluator == "keywords":
        return KeywordEvaluator(settings.topics)
    return SemanticEvaluator(
        settings.topics,
        settings.off_topics,
        precision=settings.embedding_precision,
        model_cache=settings.model_cache,
    )


BuiltinEvaluator = KeywordEvaluator  # the old name, for callers written before the semantic default
