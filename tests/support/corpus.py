"""The generated corpus for the tests: the same documents the benchmarks use (data/corpus.py)."""

from data.corpus import TOPIC_WORDS, html_article, text_note, write_corpus

__all__ = ["TOPIC_WORDS", "html_article", "text_note", "write_corpus"]
