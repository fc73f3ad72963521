"""Evaluator quality and speed on the labelled set in bench/evaluator_set (made for this project).

    .venv/bin/python bench/evaluators.py              # every evaluator, dev and held-out splits
    .venv/bin/python bench/evaluators.py --fit        # also print the semantic calibration fitted on dev

Items are short feed entries (title + one-sentence summary, no author), as a feed source delivers them. For each
evaluator and split (and, for the semantic one, the held-out items as an RSS feed through the pipeline's gather and
CPU stages: `heldout+feed`, whose peak RSS includes those stages) it prints: ROC AUC of relevance, balanced accuracy of the labels ("review" counts as wrong),
the share sent to review, documents per second, the evaluator process's peak RSS, and (semantic) the share of
items its cascade re-read with the transformer. Each evaluator runs in a
process of its own so its peak RSS is its own. The OpenAI-compatible evaluator is measured only when
LOREGUARD_OPENAI_BASE_URL points at a server.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from workers.stages.evaluate import make_evaluator  # noqa: E402
from workers.stages.types import EvaluationInput  # noqa: E402

SET = ROOT / "bench" / "evaluator_set"
# The keyword evaluator counts words, so it gets words: the keyword list LoreGuard shipped before descriptions.
KEYWORDS = ["security", "threat", "vulnerability", "policy", "compliance", "incident"]
REPEAT = 5  # the set is small: evaluate it several times for a steadier docs/s


def load(split: str) -> list[tuple[bool, EvaluationInput]]:
    with (SET / f"{split}.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    now = datetime(2026, 11, 30, tzinfo=UTC)
    return [
        (
            row["relevant"] == "1",
            EvaluationInput(
                uri=f"https://news.example/{i}",
                title=row["title"],
                author=None,
                published_at=now,
                text=row["summary"],
                word_count=len(row["summary"].split()),
                language="en",
                source_kind="rss",
                is_duplicate=False,
            ),
        )
        for i, row in enumerate(rows)
    ]


def load_as_feed(split: str) -> list[tuple[bool, EvaluationInput]]:
    """The split as an RSS feed, each item gathered, normalized and its metadata extracted by the pipeline's own
    stages, as the real stack delivers feed items to the evaluator."""
    import html

    import feedparser

    from guard.gather import _entry_document
    from workers.stages.pipeline import run_cpu_stages

    items = load(split)
    xml = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>news</title>'
        + "".join(
            f"<item><title>{html.escape(d.title or '')}</title><link>{d.uri}</link>"
            f"<description>{html.escape(d.text)}</description><pubDate>Mon, 30 Nov 2026 10:00:00 GMT</pubDate></item>"
            for _, d in items
        )
        + "</channel></rss>"
    )
    out = []
    for i, ((relevant, _), entry) in enumerate(zip(items, feedparser.parse(xml).entries, strict=True)):
        done = run_cpu_stages(
            _entry_document(entry, "https://news.example/feed", i), max_pdf_pages=1, time_limit=30
        )
        norm, meta = done.normalized, done.metadata
        assert norm is not None and meta is not None, done.error
        out.append(
            (
                relevant,
                EvaluationInput(
                    uri=norm.uri,
                    title=meta.title,
                    author=meta.author,
                    published_at=meta.published_at,
                    text=norm.text,
                    word_count=meta.word_count,
                    language=norm.language,
                    source_kind="feed",
                    is_duplicate=False,
                ),
            )
        )
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def roc_auc(scores: list[float], truth: list[bool]) -> float:
    """Probability that a random relevant item outscores a random irrelevant one (ties count half)."""
    pos = [s for s, t in zip(scores, truth, strict=True) if t]
    neg = [s for s, t in zip(scores, truth, strict=True) if not t]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def measure(name: str, split: str) -> dict[str, float]:
    base, _, via = split.partition("+")
    items = load_as_feed(base) if via == "feed" else load(base)
    extra = {"topics": KEYWORDS} if name == "keywords" else {}
    evaluator = make_evaluator(Settings(_env_file=None, evaluator=name, **extra))  # type: ignore[arg-type]
    docs = [doc for _, doc in items]
    many = getattr(evaluator, "evaluate_many", None)
    results = many(docs) if many else [evaluator.evaluate(d) for d in docs]  # warm-up, and the verdicts
    t0 = time.perf_counter()
    for _ in range(REPEAT):
        _ = many(docs) if many else [evaluator.evaluate(d) for d in docs]
    rate = REPEAT * len(docs) / (time.perf_counter() - t0)
    truth = [t for t, _ in items]
    pos = [r.label == "relevant" for r, t in zip(results, truth, strict=True) if t]
    neg = [r.label == "irrelevant" for r, t in zip(results, truth, strict=True) if not t]
    from workers.stages.semantic import SemanticEvaluator

    reread = 0.0
    if isinstance(evaluator, SemanticEvaluator):  # the share the cascade's second, dearer model reads
        reread = sum(r.reader is evaluator.transformer for r in evaluator.cascade(docs)) / len(docs)
    return {
        "auc": roc_auc([r.relevance or 0.0 for r in results], truth),
        "reread_share": reread,
        "balanced_accuracy": (sum(pos) / len(pos) + sum(neg) / len(neg)) / 2,
        "review_share": sum(r.label == "review" for r in results) / len(results),
        "docs_per_s": rate,
        "peak_rss_mb": peak_rss_mb(),
    }


def fit() -> None:
    """Per reader of the semantic cascade, fitted on dev only: how well each off-topic weight separates (AUC),
    then threshold and slope at the weight in use (logistic regression, 1 feature); and the share of dev items
    the cascade band sends to the transformer."""
    import dataclasses

    import numpy as np

    from workers.stages.semantic import CASCADE_BAND, SemanticEvaluator

    items = load("dev")
    docs, truth = [d for _, d in items], [t for t, _ in items]
    evaluator = make_evaluator(Settings(_env_file=None, evaluator="semantic"))
    assert isinstance(evaluator, SemanticEvaluator)
    for reader in (evaluator.static, evaluator.transformer):
        aucs = []
        for w in np.arange(0.0, 1.45, 0.2):
            weighted = dataclasses.replace(reader, off_topic_weight=round(float(w), 1))
            aucs.append(
                f"{w:.1f}:{roc_auc([r.score for r in evaluator.readings(docs, weighted)], truth):.3f}"
            )
        print(f"{reader.name} on dev, AUC per off-topic weight: {' '.join(aucs)}")
        x = np.array([r.score for r in evaluator.readings(docs, reader)])
        y = np.array([float(t) for t in truth])
        a, b = 10.0, -4.0
        for _ in range(20000):
            p = 1 / (1 + np.exp(-(a * x + b)))
            a -= 0.5 * float(((p - y) * x).mean()) + 1e-3 * a  # a little L2, so a separable set stays finite
            b -= 0.5 * float((p - y).mean())
        print(
            f"{reader.name} fit on dev (weight {reader.off_topic_weight}): "
            f"threshold = {-b / a:.3f}, slope = {a:.1f}"
        )
    static = evaluator.readings(docs, evaluator.static)
    share = sum(abs(r.relevance - 0.5) < CASCADE_BAND for r in static) / len(static)
    print(f"cascade band {CASCADE_BAND}: {share:.0%} of dev items are read by {evaluator.transformer.name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fit", action="store_true", help="print the semantic calibration fitted on dev")
    parser.add_argument("--one", nargs=2, metavar=("EVALUATOR", "SPLIT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    if args.fit:
        fit()
    names = ["semantic", "keywords"] + (["openai"] if os.environ.get("LOREGUARD_OPENAI_BASE_URL") else [])
    print(f"load average: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    print(
        f"{'evaluator':10} {'split':12} {'AUC':>5} {'bal.acc':>7} {'review':>6} {'docs/s':>8} {'peak RSS':>9}"
        f" {'re-read':>7}"
    )
    for name in names:
        # heldout+feed: the held-out items as a feed through the pipeline's gather and CPU stages
        for split in ("dev", "heldout", *(["heldout+feed"] if name == "semantic" else [])):
            out = subprocess.run(
                [sys.executable, __file__, "--one", name, split], capture_output=True, text=True, check=True
            )
            m = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{name:10} {split:12} {m['auc']:5.3f} {m['balanced_accuracy']:7.3f} {m['review_share']:6.1%} "
                f"{m['docs_per_s']:8.0f} {m['peak_rss_mb']:6.0f} MB {m['reread_share']:7.1%}"
            )


if __name__ == "__main__":
    main()
