"""The semantic evaluator (the default) judges by meaning: what an analyst reading its verdicts would notice."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from tests.support.documents import evaluation_input
from workers.stages import embedding, static_embedding
from workers.stages.evaluate import make_evaluator
from workers.stages.semantic import CASCADE_BAND, SemanticEvaluator, label_for
from workers.stages.types import EvaluationInput


def feed_item(title: str, summary: str = "") -> EvaluationInput:
    """A short feed entry as a feed source delivers it: no author, no date, a few words."""
    return EvaluationInput(
        uri="https://news.example.org/item",
        title=title,
        author=None,
        published_at=None,
        text=summary,
        word_count=len(summary.split()),
        language="en",
        source_kind="feed",
        is_duplicate=False,
    )


@pytest.fixture(scope="module")
def default() -> SemanticEvaluator:
    evaluator = make_evaluator(Settings(_env_file=None))
    assert isinstance(evaluator, SemanticEvaluator)  # the default install judges by meaning
    return evaluator


@pytest.mark.parametrize(
    "title",
    [
        "LockBit ransomware group resurfaces with new encryption payloads targeting hospitals",
        "Attackers drain 30 million dollars from crypto exchange using stolen keys",
        "Watchdog fines hotel chain for leaking guests' passport scans",
        "Browser maker ships emergency fix for flaw used to plant spyware",
    ],
)
def test_on_topic_items_without_the_topic_words_are_relevant(default: SemanticEvaluator, title: str) -> None:
    result = default.evaluate(feed_item(title))
    assert result.label == "relevant", result.rationale
    assert result.relevance is not None and result.relevance > 0.6


@pytest.mark.parametrize(
    "title",
    [
        "Social security checks rise 3 percent",
        "Hurricane threatens Florida orange crop",
        "Tenant wins back security deposit after two-year dispute",
        "Central bank leaves policy rate unchanged",
        "Incident at the football match delays kick-off",
        "Heat wave puts vulnerable pensioners at risk",
    ],
)
def test_off_topic_items_that_use_the_topic_words_are_irrelevant(
    default: SemanticEvaluator, title: str
) -> None:
    result = default.evaluate(feed_item(title))
    assert result.label == "irrelevant", result.rationale


def test_a_short_item_without_author_is_judged_on_its_subject_not_its_length(
    default: SemanticEvaluator,
) -> None:
    result = default.evaluate(feed_item("Hackers steal patient records from clinic network"))
    assert result.label == "relevant"
    assert result.credibility is not None and result.credibility < 0.5  # shown, and it did not decide
    assert "no author" in result.rationale and "only 0 words" in result.rationale


def test_the_rationale_names_the_closest_topic_and_quotes_the_passage(default: SemanticEvaluator) -> None:
    title = "Police dismantle botnet of hijacked home routers"
    result = default.evaluate(feed_item(title, "The network was rented out for attacks on online shops."))
    assert result.rationale.startswith(f"Relevance {result.relevance:.2f}: closest topic '")
    topic = result.rationale.split("closest topic '", 1)[1].split("'", 1)[0]
    assert topic in default.topics
    assert f"passages: '{title}." in result.rationale


def test_long_documents_from_the_samples_are_judged_by_meaning(
    default: SemanticEvaluator, samples: Path
) -> None:
    labels = {
        name: default.evaluate(evaluation_input(samples, name, kind)).label
        for name, kind in [
            ("vpn-zero-day-exploited.html", "text/html"),
            ("phishing-campaign-targets-finance.html", "text/html"),
            ("incident-postmortem-2024-02.md", "text/markdown"),
            ("sourdough-starter.md", "text/markdown"),
            ("marathon-training-week-6.html", "text/html"),
        ]
    }
    assert labels == {
        "vpn-zero-day-exploited.html": "relevant",
        "phishing-campaign-targets-finance.html": "relevant",
        "incident-postmortem-2024-02.md": "relevant",
        "sourdough-starter.md": "irrelevant",
        "marathon-training-week-6.html": "irrelevant",
    }


def test_topics_a_person_writes_change_the_verdict_and_its_recorded_version(
    default: SemanticEvaluator,
) -> None:
    item = feed_item("Striker scores twice as City win the derby")
    football = make_evaluator(
        Settings(_env_file=None, topics=["football results and transfers"], off_topics=[])
    )
    before, after = default.evaluate(item), football.evaluate(item)
    assert (before.label, after.label) == ("irrelevant", "relevant")
    assert before.evaluator == after.evaluator == "semantic" and before.model == after.model
    assert before.model and before.topics_version and after.topics_version
    assert before.topics_version != after.topics_version  # verdicts made against other topics are stale


def test_batched_verdicts_equal_one_at_a_time(default: SemanticEvaluator) -> None:
    items = [
        feed_item("Ransomware hits city council"),
        feed_item("Bakery opens in the old mill"),
        feed_item(""),
    ]
    assert [r.label for r in default.evaluate_many(items)] == [default.evaluate(i).label for i in items]


def test_nothing_is_downloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the semantic evaluator tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    # Load both models afresh from the installed wheels, with the network cut.
    embedding._model.cache_clear()
    static_embedding._model.cache_clear()
    evaluator = make_evaluator(Settings(_env_file=None, topics=["cyber attacks on hospitals"]))
    assert isinstance(evaluator, SemanticEvaluator)
    evaluator.warm_up()
    assert evaluator.evaluate(feed_item("Ransomware shuts down hospital records")).label == "relevant"


def test_old_configs_that_say_builtin_get_the_keyword_evaluator() -> None:
    assert make_evaluator(Settings(_env_file=None, evaluator="builtin")).name == "keywords"  # type: ignore[arg-type]


CLEAR = [
    ("Ransomware gang leaks patient records stolen from clinic", "relevant"),
    ("Regulator opens audit of bank's anti-money-laundering controls", "relevant"),
    ("Grandmother's apple pie wins county fair", "irrelevant"),
    ("Striker's late goal keeps title hopes alive", "irrelevant"),
]


def transformer_labels(evaluator: object, items: list[EvaluationInput]) -> list[str]:
    """The labels MiniLM alone gives (the cascade asks it only about doubtful items)."""
    assert isinstance(evaluator, SemanticEvaluator)
    return [label_for(r.relevance)[0] for r in evaluator.readings(items, evaluator.transformer)]


def test_the_int8_model_is_made_once_and_judges_as_the_shipped_one(tmp_path: Path) -> None:
    fast = make_evaluator(Settings(_env_file=None, model_cache=tmp_path))
    items = [feed_item(title) for title, _ in CLEAR]
    assert transformer_labels(fast, items) == [label for _, label in CLEAR]
    made = list(tmp_path.glob("*.int8.*.onnx"))
    assert len(made) == 1, "the int8 copy is kept in the model cache"
    stamp = made[0].stat().st_mtime_ns
    embedding._model.cache_clear()  # as a new worker process would: it finds the copy and reuses it
    again = make_evaluator(Settings(_env_file=None, model_cache=tmp_path))
    assert transformer_labels(again, items) == [label for _, label in CLEAR]
    assert made[0].stat().st_mtime_ns == stamp and list(tmp_path.glob("*.onnx")) == made
    shipped = make_evaluator(Settings(_env_file=None, embedding_precision="fp32"))
    assert transformer_labels(shipped, items) == [label for _, label in CLEAR]
    # Each verdict names both models and the weights MiniLM ran with; the other precision's verdicts are stale.
    exact = shipped.evaluate(items[0])
    assert (fast.evaluate(items[0]).model, exact.model) == (
        "wordllama-l2_supercat-256+paraphrase-MiniLM-L3-v2-onnx-int8",
        "wordllama-l2_supercat-256+paraphrase-MiniLM-L3-v2-onnx",
    )
    assert fast.evaluate(items[0]).topics_version != exact.topics_version


def test_a_model_cache_that_cannot_be_written_falls_back_to_a_temporary_folder() -> None:
    embedding._model.cache_clear()
    evaluator = make_evaluator(Settings(_env_file=None, model_cache=Path("/proc/loreguard-models")))
    assert transformer_labels(evaluator, [feed_item(CLEAR[0][0])]) == ["relevant"]


def test_an_item_the_word_vectors_are_unsure_of_is_read_again_by_the_transformer(
    default: SemanticEvaluator,
) -> None:
    doubtful = feed_item("Bank fined for failing to report suspicious transfers")
    clear = feed_item("Ransomware gang leaks patient records stolen from clinic")
    static = default.readings([doubtful, clear], default.static)
    assert abs(static[0].relevance - 0.5) < CASCADE_BAND < abs(static[1].relevance - 0.5)
    second_look, at_a_glance = default.evaluate_many([doubtful, clear])
    assert second_look.label == "relevant" and at_a_glance.label == "relevant"
    assert "read by MiniLM; the static score was in doubt" in second_look.rationale
    assert "read by static)" in at_a_glance.rationale
    # Both verdicts name the cascade (both models), whichever model decided.
    assert second_look.model == at_a_glance.model == default.model
    assert default.static.model in default.model and default.transformer.model in default.model


def test_the_default_meets_its_goals_on_the_held_out_labelled_set_asking_minilm_about_few_items() -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "evaluators.py"
    out = subprocess.run(
        [sys.executable, str(bench), "--one", "semantic", "heldout"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["auc"] >= 0.95 and figures["balanced_accuracy"] >= 0.90, figures
    assert figures["review_share"] <= 0.10, figures
    assert 0 < figures["reread_share"] <= 0.20, figures  # the dear model reads only the doubtful few
