"""Training M4-SAM: ``m4sam-train`` (``train``) and its pieces, one concern per module.

May import ``model``, ``data``, ``viz`` and ``util``; never ``predictor``, ``evaluation``, ``ros``
or rclpy.

- ``losses``: the clip loss (structure, edge, object score, MoE balance);

- ``setup``: processes, data, model and optimiser groups (what a run is made of);
- ``step``: one optimiser step (micro-batches, ground-truth conditioning, loss);
- ``state``: checkpoint + train state saved as one atomic unit, resume, log and sweep;
- ``recipes``: the benchmark recipes (``m4sam-train --recipe rdvs``).

``m4sam_ros.training.train`` is the command line over these.
"""

from __future__ import annotations


class TrainError(RuntimeError):
    """A training run that cannot start as asked; the message says why."""
