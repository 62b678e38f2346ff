"""Parameters -> a ready StreamingPredictor (backend torch) or OrtStreamingPredictor (backend
onnxruntime), or a ConfigurationError that names the parameter and what to do. Checks paths before
importing torch-heavy modules, so a wrong path fails fast; the onnxruntime path imports no torch."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from m4sam_ros.ros.params import DEMO_MODEL, PREDICTOR_THRESHOLDS, WEIGHTS_HELP, ConfigurationError

__all__ = ["PREDICTOR_THRESHOLDS", "apply_threshold", "build_ort_predictor", "build_predictor", "predictor_device",
           "release_memory", "resolve_device", "resolve_weights"]


def resolve_weights(p: Callable[[str], Any]) -> tuple[str, str, str | None]:
    """(config, m4sam checkpoint, sam2 checkpoint) from the parameters (``p(name)``)."""
    from m4sam_ros.model import load_config

    cfg_name = str(p("model_config"))
    try:
        cfg = load_config(cfg_name)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"parameter 'model_config' = {cfg_name!r}: {exc}") from exc
    ckpt = str(p("checkpoint")).strip()
    if not ckpt:
        if cfg.get("name") != "m4sam_demo":
            raise ConfigurationError(
                f"parameter 'checkpoint' is empty, and model_config {cfg_name!r} has no bundled "
                f"weights. {WEIGHTS_HELP}")
        ckpt = str(DEMO_MODEL)
    ckpt_path = Path(os.path.expanduser(ckpt))
    if not ckpt_path.is_file():
        raise ConfigurationError(f"parameter 'checkpoint' = {ckpt!r}: no such file. {WEIGHTS_HELP}")
    sam2 = str(p("sam2_checkpoint")).strip() or None
    if sam2 is not None and not Path(os.path.expanduser(sam2)).is_file():
        raise ConfigurationError(f"parameter 'sam2_checkpoint' = {sam2!r}: no such file. {WEIGHTS_HELP}")
    # the loader's rule (model.checkpoint), checked here too so a missing file fails before the build
    from m4sam_ros.model.checkpoint import (
        CheckpointError,
        missing_sam2_message,
        read_m4sam_checkpoint,
        sam2_requirement,
    )

    try:
        needed = sam2_requirement(read_m4sam_checkpoint(ckpt_path))
    except CheckpointError as exc:
        raise ConfigurationError(f"parameter 'checkpoint' = {ckpt!r}: {exc}. {WEIGHTS_HELP}") from exc
    if needed is not None and sam2 is None:
        raise ConfigurationError(f"parameter 'sam2_checkpoint' is empty: {missing_sam2_message(ckpt_path, needed)}")
    return cfg_name, str(ckpt_path), (os.path.expanduser(sam2) if sam2 else None)


def resolve_device(setting: str) -> str:
    """The torch device ``setting`` means here: auto -> cuda when available, else cpu (the same
    meaning as every tool's ``--device``: ``util.cli.resolve_device``)."""
    from m4sam_ros.util.cli import resolve_device as resolve

    try:
        return resolve(setting)
    except ValueError as exc:
        raise ConfigurationError(f"parameter 'device': {exc}") from exc


def build_ort_predictor(p: Callable[[str], Any]) -> tuple[Any, str]:
    """(OrtStreamingPredictor, 'cpu' or its execution provider) from ``model_dir``; imports no torch."""
    from m4sam_ros.predictor.onnx_runtime import OrtStreamingPredictor

    model_dir = str(p("model_dir")).strip()
    if not model_dir:
        raise ConfigurationError("parameter 'model_dir' is empty, but backend is onnxruntime: export the model "
                                 "with `m4sam-export --checkpoint CK --out DIR` and set model_dir:=DIR")
    if not Path(os.path.expanduser(model_dir)).is_dir():
        raise ConfigurationError(f"parameter 'model_dir' = {model_dir!r}: no such folder (write it with m4sam-export)")
    if int(p("image_size")):
        raise ConfigurationError("parameter 'image_size' must be 0 with backend onnxruntime: the graphs have "
                                 "their exported size (export again with m4sam-export --image-size)")
    device = str(p("device"))
    providers = "cuda" if device.startswith("cuda") else "cpu"
    thresholds = {attr: p(name) for name, attr in PREDICTOR_THRESHOLDS.items()}
    try:
        predictor = OrtStreamingPredictor(model_dir, providers=providers, **thresholds)
    except (FileNotFoundError, ValueError) as exc:
        name = "device" if "execution provider" in str(exc) else "model_dir"
        raise ConfigurationError(f"parameter '{name}': {exc}") from exc
    predictor.warm_up()
    return predictor, predictor.device


def build_predictor(p: Callable[[str], Any]) -> tuple[Any, str]:
    """(StreamingPredictor or OrtStreamingPredictor, the device it runs on) from the parameters, warmed up."""
    if str(p("backend")) == "onnxruntime":
        return build_ort_predictor(p)
    cfg, ckpt, sam2 = resolve_weights(p)  # before importing torch-heavy modules: fail fast
    from m4sam_ros.model.checkpoint import CheckpointError, MissingSAM2WeightsError
    from m4sam_ros.predictor import StreamingPredictor

    device = resolve_device(p("device"))
    size = int(p("image_size")) or None
    thresholds = {attr: p(name) for name, attr in PREDICTOR_THRESHOLDS.items()}
    try:
        predictor = StreamingPredictor.from_config(cfg, m4sam_checkpoint=ckpt, sam2_checkpoint=sam2,
                                                   device=device, image_size=size, **thresholds)
    except CheckpointError as exc:
        missing = isinstance(exc, MissingSAM2WeightsError)
        name = "sam2_checkpoint" if missing or (sam2 and sam2 in str(exc)) else "checkpoint"
        raise ConfigurationError(f"parameter '{name}': {exc}. {WEIGHTS_HELP}") from exc
    predictor.warm_up()  # the first camera frame should not pay for lazy initialisation
    return predictor, device


def predictor_device(predictor: Any, fallback: str) -> str:
    """The device a predictor (or an injected wrapper) actually runs on, e.g. 'cpu', 'cuda:0'."""
    target = getattr(predictor, "inner", predictor)
    try:
        return str(next(target.model.parameters()).device)  # cuda:0, not the configured "cuda"
    except Exception:  # noqa: BLE001 - no model parameters: the predictor's own word, or the fallback
        dev = getattr(target, "device", None)
        return str(dev) if dev is not None else fallback


def apply_threshold(predictor: Any, name: str, value: Any) -> None:
    """Hands a run-time threshold parameter to the predictor."""
    attr = PREDICTOR_THRESHOLDS[name]
    target = getattr(predictor, "inner", predictor)
    setter = getattr(target, "set_thresholds", None)
    if setter is not None:
        setter(**{attr: value})
    else:
        setattr(target, attr, value)


def release_memory() -> None:
    """Collects the dropped model and returns cached GPU memory."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - freeing must never fail a transition
        pass
