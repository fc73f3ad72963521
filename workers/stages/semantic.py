"""The semantic evaluator (the default): relevance is a calibrated similarity to topic descriptions.

Each document is cut into a few passages (title and lead first). A passage's score is its best cosine similarity
to a topic description minus a share of its best similarity to an "off-topic" description (the everyday senses of
the topic words: sport, weather, household money...), so "threat of rain" or "security deposit" lose to what they
are really about. The document's best passage score is mapped through a logistic fitted on bench/evaluator_set
(dev split) so that 0.5 is the decision threshold. Relevance alone decides the label; "review" is only a narrow band of doubt around
the threshold. Credibility is scored and shown, never used to push a document to review.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from workers.stages import embedding
from workers.stages.credibility import credibility
from workers.stages.types import EvaluationInput, EvaluationResult

# Fitted on the dev split of bench/evaluator_set with the default topics (bench/evaluators.py --fit prints them).
OFF_TOPIC_WEIGHT = 0.6  # on dev, 0.4..0.8 separated best; the middle is the least fitted to it
THRESHOLD = 0.140  # score at which relevance is 0.5
SLOPE = 10.0  # logistic steepness (per unit of score)
REVIEW_BAND = 0.03  # relevance within 0.5 +- this (score within +- 0.013) is genuine doubt: a person decides
PASSAGE_WORDS = 26  # about MAX_TOKENS tokens of English
MAX_PASSAGES = 1  # the title and lead: what a news item is about, at a cost the pipeline can carry
QUOTE_CHARS = 160


def topics_version(topics: Sequence[str], model: str = embedding.MODEL_ID) -> str:
    """A short hash of the topic descriptions and what reads them (model, passage length, calibration):
    verdicts with another version are stale."""
    reader = f"{model}:{embedding.MAX_TOKENS}:{THRESHOLD}:{SLOPE}:{OFF_TOPIC_WEIGHT}"
    return hashlib.sha256("\n".join([reader, *topics]).encode()).hexdigest()[:12]


def passages(doc: EvaluationInput) -> list[str]:
    words = re.sub(r"\s+", " ", doc.text).strip().split(" ")
    title = (doc.title or "").strip()
    out: list[str] = []
    for start in range(0, max(len(words), 1), PASSAGE_WORDS):
        chunk = " ".join(words[start : start + PASSAGE_WORDS]).strip()
        if not out:
            # The title is the densest statement of the subject; it leads the first passage.
            chunk = f"{title}. {chunk}" if title and chunk else title or chunk
        if chunk:
            out.append(chunk)
        if len(out) >= MAX_PASSAGES:
            break
    return out or [""]


def calibrate(similarity: float) -> float:
    return 1.0 / (1.0 + math.exp(-SLOPE * (similarity - THRESHOLD)))


def label_for(relevance: float) -> tuple[str, float]:
    """Label and confidence: the distance from the threshold, scaled to 0.5..1."""
    if abs(relevance - 0.5) < REVIEW_BAND:
        return "review", 0.5 + (REVIEW_BAND - abs(relevance - 0.5)) / (2 * REVIEW_BAND)
    return ("relevant" if relevance > 0.5 else "irrelevant"), 0.5 + abs(relevance - 0.5)


def _quote(text: str) -> str:
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1].rstrip() + "…"


class SemanticEvaluator:
    name = "semantic"

    def __init__(
        self,
        topics: Sequence[str],
        off_topics: Sequence[str] = (),
        now: Callable[[], datetime] | None = None,
        *,
        precision: str = "int8",
        model_cache: Path | None = None,
    ) -> None:
        self.topics = list(dict.fromkeys(t.strip() for t in topics if t.strip()))
        self.off_topics = list(dict.fromkeys(t.strip() for t in off_topics if t.strip()))
        self.precision, self.model_cache = precision, model_cache
        self.model = embedding.model_id(precision)
        self.topics_version = topics_version([*self.topics, "--", *self.off_topics], self.model)
        self._now = now
        self._vectors: tuple[np.ndarray, np.ndarray] | None = None

    def warm_up(self) -> None:
        """Load the model and embed the topics now, not on the first document."""
        self._topics()

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return embedding.embed(texts, self.precision, self.model_cache)

    def _topics(self) -> tuple[np.ndarray, np.ndarray]:
        if self._vectors is None:  # embedded on first use, once per evaluator
            both = self._embed([*self.topics, *self.off_topics])
            self._vectors = both[: len(self.topics)], both[len(self.topics) :]
        return self._vectors

    def similarities(
        self, docs: Sequence[EvaluationInput]
    ) -> list[tuple[float, int, list[tuple[float, str]]]]:
        """Per document: its score, the index of the closest topic, passages ranked by their score."""
        per_doc = [passages(doc) for doc in docs]
        flat = [p for ps in per_doc for p in ps]
        topics, off = self._topics()
        vectors = self._embed(flat)
        sims = vectors @ topics.T
        if off.shape[0]:
            sims = sims - OFF_TOPIC_WEIGHT * (vectors @ off.T).max(axis=1, keepdims=True)
        out: list[tuple[float, int, list[tuple[float, str]]]] = []
        row = 0
        for ps in per_doc:
            block = sims[row : row + len(ps)]
            row += len(ps)
            if block.shape[1] == 0:
                out.append((0.0, -1, [(0.0, p) for p in ps]))
                continue
            topic = int(np.argmax(block.max(axis=0)))
            ranked = sorted(((float(block[i, topic]), p) for i, p in enumerate(ps)), reverse=True)
            out.append((float(block.max()), topic, ranked))
        return out

    def evaluate_many(self, docs: Sequence[EvaluationInput]) -> list[EvaluationResult]:
        results = []
        for doc, (sim, topic, ranked) in zip(docs, self.similarities(docs), strict=True):
            relevance = calibrate(sim) if topic >= 0 else 0.0
            label, confidence = label_for(relevance)
            cred, cred_text = credibility(doc, self._now)
            if topic < 0:
                why = "no topics are configured"
            else:
                quotes = "; ".join(f"'{_quote(p)}'" for s, p in ranked[:2] if p and s >= sim - 0.1)
                why = f"closest topic '{self.topics[topic]}' (score {sim:.2f}); passages: {quotes}"
            results.append(
                EvaluationResult(
                    label=label,
                    confidence=round(min(1.0, confidence), 3),
                    relevance=round(relevance, 3),
                    credibility=round(cred, 3),
                    rationale=f"Relevance {relevance:.2f}: {why}. {cred_text} (informs, does not decide).",
                    evaluator=self.name,
                    model=self.model,
                    topics_version=self.topics_version,
                )
            )
        return results

    def evaluate(self, doc: EvaluationInput) -> EvaluationResult:
        return self.evaluate_many([doc])[0]
