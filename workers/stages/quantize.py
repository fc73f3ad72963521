"""Run as `python -m workers.stages.quantize SOURCE TARGET`: int8 weights for an ONNX model (dynamic quantization).

A process of its own, so the memory quantizing takes is given back when it ends (see embedding.quantized_model).
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m workers.stages.quantize SOURCE.onnx TARGET.onnx", file=sys.stderr)
        return 2
    # onnxruntime's quantizer warns that pre-processing may help; for this graph it changes nothing measured.
    logging.getLogger().setLevel(logging.ERROR)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = Path(argv[0]), Path(argv[1])
    # The quantizer writes a shape-inferred copy of its input beside the input: quantize a copy in the target's
    # folder, never beside the shipped model (a read-only root filesystem, or a user who does not own it).
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize-") as scratch:
        copy = Path(scratch) / source.name
        shutil.copyfile(source, copy)
        quantize_dynamic(copy, target, weight_type=QuantType.QInt8)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
