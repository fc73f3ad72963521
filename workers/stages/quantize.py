"""Run as `python -m workers.stages.quantize SOURCE TARGET`: int8 weights for an ONNX model (dynamic quantization).

A process of its own, so the memory quantizing takes is given back when it ends (see embedding.quantized_model).
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m workers.stages.quantize SOURCE.onnx TARGET.onnx", file=sys.stderr)
        return 2
    # onnxruntime's quantizer warns that pre-processing may help; for this graph it changes nothing measured.
    logging.getLogger().setLevel(logging.ERROR)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(argv[0], argv[1], weight_type=QuantType.QInt8)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
