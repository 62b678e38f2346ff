"""The streaming predictor: one RGB-D frame pair in, mask + saliency + boxes out, state bounded forever.

Owns the inference loop over the model (``streaming.StreamingPredictor``, PyTorch;
``onnx_runtime.OrtStreamingPredictor``, ONNX Runtime without torch), the bounded frame memories
(``memory_bank``; ``slot_bank`` for the exported graphs' fixed slots), when to condition on the
pseudo mask again (``reinit_policy``) and what a step returns (``result``). It is the one
inference path of the node, the bag tool, evaluation, the benchmarks and the demo. May import
``model`` and ``util``; never ``data``, ``training``, ``evaluation``, ``ros`` or rclpy.

The names below load on first use (PEP 562): importing the ONNX Runtime backend never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "KEPT_FIELDS": "memory_bank",
    "MemoryBank": "memory_bank",
    "tensor_nbytes": "memory_bank",
    "ReinitPolicy": "reinit_policy",
    "OUTPUTS": "result",
    "OUTPUT_CHOICES": "result",
    "Box": "result",
    "SaliencyResult": "result",
    "boxes_from_mask": "result",
    "StreamingPredictor": "streaming",
    "OrtStreamingPredictor": "onnx_runtime",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
