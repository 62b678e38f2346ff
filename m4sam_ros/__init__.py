"""m4sam_ros: prompt-free RGB-D video salient object detection (M4-SAM on SAM2) for ROS 2.

The tree is the architecture (docs/DESIGN.md); imports point down only:

    apps, benchmarks                      command-line tools and figures (top)
    ros                                   everything that imports rclpy: the node, a thin shell
    training, evaluation                  m4sam-train; metrics, m4sam-eval, m4sam-heldout
    predictor                             the streaming predictor: the one inference path
    data                                  dataset readers, clip sampler, synthetic world
    model                                 M4-SAM on SAM2, configs, checkpoints, preprocessing, depth
    msgs, scene, viz                      messages <-> arrays, 3D extent + ids, pictures (no ROS)
    util                                  atomic files

Modules that lived elsewhere before the layout of 2026-12 still import under their old names
(``m4sam_ros.sync``, ``m4sam_ros.bag``, ...) with a DeprecationWarning naming the new one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# old module path -> new one (the layout change of 2026-12); kept so user scripts keep working
MOVED = {
    "m4sam_ros.memory_bank": "m4sam_ros.predictor.memory_bank",
    "m4sam_ros.reinit_policy": "m4sam_ros.predictor.reinit_policy",
    "m4sam_ros.losses": "m4sam_ros.training.losses",
    "m4sam_ros.metrics": "m4sam_ros.evaluation.metrics",
    "m4sam_ros.evaluate": "m4sam_ros.evaluation.evaluate",
    "m4sam_ros.heldout": "m4sam_ros.evaluation.heldout",
    "m4sam_ros.image_codec": "m4sam_ros.msgs.image_codec",
    "m4sam_ros.compressed": "m4sam_ros.msgs.compressed",
    "m4sam_ros.sync": "m4sam_ros.msgs.sync",
    "m4sam_ros.geometry": "m4sam_ros.scene.geometry",
    "m4sam_ros.boxes3d": "m4sam_ros.scene.boxes3d",
    "m4sam_ros.tracking": "m4sam_ros.scene.tracking",
    "m4sam_ros.visualize": "m4sam_ros.viz.visualize",
    "m4sam_ros.plots": "m4sam_ros.viz.plots",
    "m4sam_ros.atomic": "m4sam_ros.util.atomic",
    "m4sam_ros.train": "m4sam_ros.training.train",
    "m4sam_ros.bench": "m4sam_ros.benchmarks.bench",
    "m4sam_ros.model.timing": "m4sam_ros.benchmarks.timing",
    "m4sam_ros.ros.delivery_bench": "m4sam_ros.benchmarks.delivery_bench",
    "m4sam_ros.ros.soak_bench": "m4sam_ros.benchmarks.soak_bench",
    "m4sam_ros.training.gpu_suite": "m4sam_ros.benchmarks.gpu_suite",
    "m4sam_ros.demo": "m4sam_ros.apps.demo",
    "m4sam_ros.bag": "m4sam_ros.apps.bag",
    "m4sam_ros.data.depth": "m4sam_ros.model.depth",
    "m4sam_ros.data.synth_depth": "m4sam_ros.data.synth.depth",
    "m4sam_ros.data.synth_scene": "m4sam_ros.data.synth.scene",
    "m4sam_ros.data.synth_layouts": "m4sam_ros.data.synth.layouts",
    "m4sam_ros.data.synth_shapes": "m4sam_ros.data.synth.shapes",
    "m4sam_ros.data.synth_textures": "m4sam_ros.data.synth.textures",
}


class _MovedModuleLoader(importlib.abc.Loader):
    """Gives the new module for an old name (``import``) and its code for ``python -m old.name``."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):  # noqa: ANN001, ANN201
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:  # noqa: ANN001
        pass

    def get_code(self, fullname: str):  # noqa: ANN201
        return importlib.util.find_spec(self.new).loader.get_code(self.new)


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new))


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
