"""Static word embeddings on the CPU from the model the PyPI wheel `wordllama` ships (l2_supercat, 256 dims).

A text's vector is the mean of its tokens' vectors: a table look-up, about 0.05 ms per short passage (most of it
tokenizing), against about 2-3 ms for the MiniLM transformer. The weights and the tokenizer are read as files from
the installed wheel; wordllama's own loader is not used: it looks for the tokenizer in a folder the wheel does
not have and then downloads it, and importing it configures the root logger. Loaded once per process.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

MODEL_ID = "wordllama-l2_supercat-256"
WEIGHTS_FILE = "wordllama/weights/l2_supercat_256.safetensors"
TOKENIZER_FILE = "wordllama/tokenizers/l2_supercat_tokenizer_config.json"
DIMENSIONS = 256


def shipped_file(name: str) -> Path:
    return Path(str(metadata.distribution("wordllama").locate_file(name)))


@cache
def _model() -> tuple[np.ndarray, Any]:
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    # Shipped as float16 (16 MB); kept as float32 (32 MB): numpy widens float16 in software, which made the
    # look-up 10x slower than tokenizing.
    table = load_file(str(shipped_file(WEIGHTS_FILE)))["embedding.weight"].astype(np.float32)
    tokenizer = Tokenizer.from_file(str(shipped_file(TOKENIZER_FILE)))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return table, tokenizer


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length vectors (n x 256); an empty text gets the zero vector (similar to nothing)."""
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    if not texts:
        return out
    table, tokenizer = _model()
    # No special tokens and no offsets: what wordllama's training pooled over, at half the tokenizing cost.
    for row, encoding in enumerate(tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)):
        if encoding.ids:
            # A sum is enough: the vector is normalized next, so the mean's division would cancel. One small
            # gather per text beat padding or np.add.reduceat over the batch by 6x.
            out[row] = table[np.minimum(encoding.ids, table.shape[0] - 1)].sum(axis=0)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
