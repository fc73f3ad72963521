"""Evaluate: the keyword evaluator's verdicts and the OpenAI-compatible client against a loopback LLM."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import tenacity.nap

from core.settings import Settings
from tests.support.documents import evaluation_input
from tests.support.http_standins import ChatCompletionsStandIn
from workers.stages.evaluate import EvaluatorError, KeywordEvaluator, OpenAIEvaluator, make_evaluator
from workers.stages.types import EvaluationInput

TOPICS = ["security", "threat", "vulnerability", "policy", "compliance", "incident"]
NOW = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def article(samples: Path) -> EvaluationInput:
    return evaluation_input(samples, "vpn-zero-day-exploited.html", "text/html")


@pytest.fixture
def builtin() -> KeywordEvaluator:
    return KeywordEvaluator(TOPICS, now=lambda: NOW)


# --- built-in ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type", "label", "in_rationale"),
    [
        (
            "vpn-zero-day-exploited.html",
            "text/html",
            "relevant",
            ["vulnerability (", "security (", "has author", "has date"],
        ),
        ("phishing-campaign-targets-finance.html", "text/html", "relevant", ["security (4)", "threat (1)"]),
        ("data-retention-policy.md", "text/markdown", "relevant", ["policy (", "compliance ("]),
        ("sourdough-starter.md", "text/markdown", "irrelevant", ["mentions none of the topics"]),
        ("marathon-training-week-6.html", "text/html", "irrelevant", ["mentions none of the topics"]),
        ("team-offsite-lunch.txt", "text/plain", "irrelevant", ["only 73 words", "no author"]),
    ],
)
def test_builtin_labels_on_topic_credible_documents_relevant_and_off_topic_irrelevant(
    builtin: KeywordEvaluator,
    samples: Path,
    name: str,
    content_type: str,
    label: str,
    in_rationale: list[str],
) -> None:
    result = builtin.evaluate(evaluation_input(samples, name, content_type))
    assert result.label == label
    assert 0.5 <= result.confidence <= 1.0
    assert result.evaluator == "keywords" and result.model is None
    for fragment in in_rationale:
        assert fragment in result.rationale


def test_builtin_rationale_explains_the_scores(builtin: KeywordEvaluator, article: EvaluationInput) -> None:
    result = builtin.evaluate(article)
    assert result.rationale.startswith(f"Relevance {result.relevance:.2f}: mentions vulnerability (")
    assert (
        f"Credibility {result.credibility:.2f}: has author, has date, 473 words, https source"
        in result.rationale
    )


@pytest.mark.parametrize(
    ("change", "penalty"),
    [
        ({"author": None}, "no author"),
        ({"published_at": None}, "no date"),
        ({"published_at": NOW + timedelta(days=30)}, "date in the future"),
        ({"uri": "http://news.example.org/a"}, "http source is not https"),
        ({"is_duplicate": True}, "duplicate of a stored document"),
        ({"language": "und"}, "language unknown"),
        ({"word_count": 80}, "only 80 words"),
    ],
)
def test_each_missing_credibility_factor_lowers_the_score_and_is_named(
    builtin: KeywordEvaluator, article: EvaluationInput, change: dict[str, object], penalty: str
) -> None:
    full = builtin.evaluate(article)
    worse = builtin.evaluate(replace(article, **change))  # type: ignore[arg-type]
    assert worse.credibility is not None and full.credibility is not None
    assert worse.credibility < full.credibility
    assert f"against: {penalty}" in worse.rationale


def test_a_passing_mention_is_not_enough(builtin: KeywordEvaluator, article: EvaluationInput) -> None:
    text = "We baked bread all weekend. " * 60 + "The bakery also has a cookie policy."
    result = builtin.evaluate(replace(article, title="Bread", text=text, word_count=len(text.split())))
    assert result.label == "irrelevant"
    assert "mentions policy (1)" in result.rationale


def test_plural_topics_count_and_labels_between_thresholds_need_review(
    builtin: KeywordEvaluator, article: EvaluationInput
) -> None:
    text = "Notes from the garden. " * 60 + "Two vulnerabilities and one threat were discussed."
    result = builtin.evaluate(replace(article, title="Garden", text=text, word_count=len(text.split())))
    assert "vulnerability (1)" in result.rationale and "threat (1)" in result.rationale
    assert result.label == "review"


def test_builtin_needs_no_network_and_is_deterministic(
    builtin: KeywordEvaluator, article: EvaluationInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its speed is a benchmark matter (bench/pipeline.py); what a user relies on is that it works offline.
    def no_network(*_args: object) -> None:
        raise AssertionError("the built-in evaluator opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    first = builtin.evaluate(article)
    assert all(builtin.evaluate(article) == first for _ in range(20))


# --- OpenAI-compatible ---------------------------------------------------------------------------


def openai_evaluator(llm: ChatCompletionsStandIn, client: httpx.Client, **options: object) -> OpenAIEvaluator:
    return OpenAIEvaluator(
        base_url=llm.base_url,
        api_key="sk-test",
        model="gpt-test",
        topics=TOPICS,
        client=client,
        initial_backoff=0.01,
        **options,  # type: ignore[arg-type]
    )


def test_openai_evaluator_returns_the_models_verdict(
    http_client: httpx.Client, article: EvaluationInput
) -> None:
    with ChatCompletionsStandIn(api_key="sk-test") as llm:
        result = openai_evaluator(llm, http_client).evaluate(replace(article, text=article.text * 20))
    assert (result.label, result.confidence, result.evaluator, result.model) == (
        "relevant",
        0.9,
        "openai",
        "gpt-test",
    )
    assert result.rationale == "The document discusses security."
    sent = llm.requests[0].json()
    assert sent["model"] == "gpt-test" and sent["temperature"] == 0
    assert sent["response_format"] == {"type": "json_object"}
    system, user = sent["messages"]
    assert (
        system["role"] == "system"
        and "security, threat" in system["content"]
        and '"label"' in system["content"]
    )
    assert "Title: Attackers exploit VPN gateway zero-day" in user["content"]
    assert (
        "Author: Priya Raman" in user["content"] and "Published: 2024-03-14T08:30:00+00:00" in user["content"]
    )
    assert len(user["content"]) < 6000 + 600  # the text is cut to its first 6,000 characters


def test_openai_evaluator_labels_off_topic_irrelevant(http_client: httpx.Client, samples: Path) -> None:
    with ChatCompletionsStandIn() as llm:
        doc = evaluation_input(samples, "sourdough-starter.md", "text/markdown")
        assert openai_evaluator(llm, http_client).evaluate(doc).label == "irrelevant"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_openai_evaluator_retries_busy_provider_then_succeeds(
    http_client: httpx.Client, article: EvaluationInput, status: int
) -> None:
    with ChatCompletionsStandIn(fail_first=2, fail_status=status, retry_after=0) as llm:
        result = openai_evaluator(llm, http_client).evaluate(article)
    assert result.label == "relevant"
    assert llm.calls == 3


def test_openai_evaluator_respects_retry_after_up_to_a_cap(
    http_client: httpx.Client, article: EvaluationInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(tenacity.nap, "time", SimpleNamespace(sleep=waits.append))  # record, do not sleep
    with ChatCompletionsStandIn(fail_first=1, fail_status=429, retry_after=60) as llm:
        result = openai_evaluator(llm, http_client, max_wait=0.2).evaluate(article)
    assert result.label == "relevant" and llm.calls == 2
    assert waits == [0.2]  # Retry-After: 60 asked for a minute; the cap is 0.2 s


def test_openai_evaluator_gives_up_with_a_retryable_error(
    http_client: httpx.Client, article: EvaluationInput
) -> None:
    with (
        ChatCompletionsStandIn(fail_first=100, fail_status=503) as llm,
        pytest.raises(EvaluatorError) as info,
    ):
        openai_evaluator(llm, http_client, attempts=3).evaluate(article)
    assert not info.value.non_retryable
    assert llm.calls == 3


@pytest.mark.parametrize(
    ("stand_in", "needle", "non_retryable"),
    [
        (ChatCompletionsStandIn(api_key="sk-other"), "API key", True),
        (ChatCompletionsStandIn(fail_first=1, fail_status=403), "API key", True),
        (ChatCompletionsStandIn(fail_first=1, fail_status=400), "refused the request: HTTP 400", True),
        (ChatCompletionsStandIn(content="I think it is relevant."), "invalid reply", False),
        (
            ChatCompletionsStandIn(content='{"label": "maybe", "confidence": 0.5, "rationale": "x"}'),
            "invalid reply",
            False,
        ),
        (
            ChatCompletionsStandIn(content='{"label": "relevant", "confidence": 3, "rationale": "x"}'),
            "invalid reply",
            False,
        ),
    ],
    ids=["wrong-key", "forbidden", "bad-request", "prose-reply", "unknown-label", "confidence-out-of-range"],
)
def test_openai_evaluator_errors_say_whether_retrying_helps(
    http_client: httpx.Client,
    article: EvaluationInput,
    stand_in: ChatCompletionsStandIn,
    needle: str,
    non_retryable: bool,
) -> None:
    with stand_in as llm, pytest.raises(EvaluatorError) as info:
        openai_evaluator(llm, http_client).evaluate(article)
    assert needle in info.value.message
    assert info.value.non_retryable is non_retryable
    assert llm.calls == 1


def test_openai_evaluator_accepts_a_fenced_json_reply(
    http_client: httpx.Client, article: EvaluationInput
) -> None:
    content = '```json\n{"label": "Review", "confidence": 0.4, "rationale": "Unclear."}\n```'
    with ChatCompletionsStandIn(content=content) as llm:
        result = openai_evaluator(llm, http_client).evaluate(article)
    assert (result.label, result.relevance, result.credibility) == ("review", None, None)


def test_make_evaluator_follows_settings(http_client: httpx.Client, article: EvaluationInput) -> None:
    assert isinstance(make_evaluator(Settings(_env_file=None, evaluator="builtin")), KeywordEvaluator)
    with ChatCompletionsStandIn(api_key="sk-from-settings") as llm:
        settings = Settings(
            _env_file=None,
            evaluator="openai",
            openai_base_url=llm.base_url,
            openai_api_key="sk-from-settings",
        )
        evaluator = make_evaluator(settings, http_client)
        assert evaluator.name == "openai"
        assert evaluator.evaluate(article).label == "relevant"
