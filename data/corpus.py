"""Generated documents of realistic size (HTML articles and text notes): a folder of them is the source the
benchmarks (bench/) and the load tests refresh."""

from __future__ import annotations

import random
from pathlib import Path

TOPIC_WORDS = [
    "security",
    "threat",
    "vulnerability",
    "policy",
    "compliance",
    "incident",
    "breach",
    "patch",
    "exploit",
    "audit",
    "control",
    "risk",
    "encryption",
    "access",
    "identity",
    "malware",
    "ransomware",
    "phishing",
    "firewall",
    "monitoring",
    "disclosure",
    "regulation",
]
_COMMON_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "what",
    "up",
    "out",
    "who",
    "them",
    "some",
    "could",
    "more",
    "into",
    "time",
    "only",
    "new",
    "other",
    "then",
    "first",
    "any",
    "these",
    "two",
    "may",
    "after",
    "most",
    "made",
    "over",
    "did",
    "many",
    "well",
    "year",
    "years",
    "people",
    "team",
    "report",
    "system",
    "data",
    "network",
    "service",
    "customer",
    "market",
    "company",
    "product",
    "support",
    "quarter",
    "update",
    "release",
    "version",
    "meeting",
    "plan",
    "project",
    "result",
    "review",
    "process",
    "board",
    "change",
    "issue",
    "public",
    "government",
    "agency",
    "analysis",
    "research",
    "evidence",
    "source",
    "statement",
    "official",
    "document",
    "record",
    "month",
    "week",
]
_NAMES = ("Ada Byron", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson")


def _paragraph(rng: random.Random, words: int, topical: bool) -> str:
    pool = _COMMON_WORDS * 4 + (TOPIC_WORDS if topical else [])
    out = [rng.choice(pool) for _ in range(words)]
    sentences = []
    i = 0
    while i < len(out):
        n = rng.randint(8, 20)
        sentence = " ".join(out[i : i + n])
        sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        i += n
    return " ".join(sentences)


def html_article(rng: random.Random, index: int) -> str:
    topical = rng.random() < 0.6
    title = f"{'Security' if topical else 'Quarterly'} report {index}: " + " ".join(
        rng.choice(_COMMON_WORDS) for _ in range(4)
    )
    author = rng.choice(_NAMES)
    day = rng.randint(1, 28)
    paragraphs = "\n".join(f"<p>{_paragraph(rng, rng.randint(60, 120), topical)}</p>" for _ in range(5))
    nav = " | ".join(f'<a href="/section/{i}">Section {i}</a>' for i in range(8))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="author" content="{author}">
<meta property="article:published_time" content="2026-10-{day:02d}T09:00:00Z">
</head><body>
<header><nav>{nav}</nav></header>
<main><article><h1>{title}</h1><p class="byline">By {author}</p>
{paragraphs}
</article></main>
<footer><p>Copyright 2026 Example News. All rights reserved.</p><nav>{nav}</nav></footer>
</body></html>
"""


def text_note(rng: random.Random, index: int) -> str:
    topical = rng.random() < 0.5
    title = f"Field note {index}"
    body = "\n\n".join(_paragraph(rng, rng.randint(60, 120), topical) for _ in range(5))
    return f"{title}\n\n{body}\n"


def write_corpus(folder: Path, count: int, *, seed: int = 7, html_share: float = 0.5) -> list[Path]:
    """Write `count` documents (about 3-6 KB each) into `folder`; returns their paths in ingest order."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    width = len(str(count))
    for i in range(count):
        if rng.random() < html_share:
            path = folder / f"doc-{i:0{width}d}.html"
            path.write_text(html_article(rng, i), encoding="utf-8")
        else:
            path = folder / f"doc-{i:0{width}d}.txt"
            path.write_text(text_note(rng, i), encoding="utf-8")
        paths.append(path)
    return paths
