"""The streaming predictor: one RGB-D frame pair in, mask + saliency + boxes out, state bounded forever.

Owns the inference loop over the model (``streaming.StreamingPredictor``), the bounded frame
memories (``memory_bank``) and when to condition on the pseudo mask again (``reinit_policy``). It is
the one inference path of the node, the bag tool, evaluation, the benchmarks and the demo. May
import ``model`` and ``util``; never ``data``, ``training``, ``evaluation``, ``ros`` or rclpy.
"""

from m4sam_ros.predictor.memory_bank import KEPT_FIELDS, MemoryBank, tensor_nbytes
from m4sam_ros.predictor.reinit_policy import ReinitPolicy
from m4sam_ros.predictor.streaming import (
    OUTPUT_CHOICES,
    OUTPUTS,
    Box,
    SaliencyResult,
    StreamingPredictor,
    boxes_from_mask,
)

__all__ = ["KEPT_FIELDS", "OUTPUTS", "OUTPUT_CHOICES", "Box", "MemoryBank", "ReinitPolicy", "SaliencyResult",
           "StreamingPredictor", "boxes_from_mask", "tensor_nbytes"]
