"""``m4sam-export``: an M4-SAM checkpoint -> a folder of ONNX graphs + manifest.json.

The folder is what ``predictor.onnx_runtime.OrtStreamingPredictor`` (and so the node, m4sam-bag,
m4sam-eval, m4sam-bench with ``--backend onnxruntime``) runs, without torch or sam2:

    encoder.onnx            RGB-D encoder (trunk + MoE-LoRA, fusion, neck, GMLFF, coarse head)
    encoder_rgb.onnx        RGB-only encoder (``--rgb-only-encoder``: parity mode, RGB-D/RGB ratio)
    memory_attention.onnx   SAM2 memory attention, fixed slots + validity masks, real-valued RoPE
    decoder_track.onnx      prompt-free mask decoder + object-pointer head (tracked frames)
    decoder_cond.onnx       mask-prompt path + object-pointer head (conditioning frames)
    memory_encoder.onnx     SAM2 memory encoder
    manifest.json           sizes, slots, SAM2 settings the runtime needs, io names/shapes, hashes

Every shape is static (batch 1, the model's image size, a fixed number of memory slots): one
TensorRT profile per graph, no shape-dependent re-planning in ONNX Runtime. docs/DEPLOY.md says why.
The folder appears whole or not at all (``util.atomic.building_dir``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from m4sam_ros.export.graphs import (
    DecoderCondGraph,
    DecoderTrackGraph,
    EncoderGraph,
    MemoryAttentionGraph,
    MemoryEncoderGraph,
    check_exportable,
    memory_layout,
)
from m4sam_ros.model import build_m4sam
from m4sam_ros.model.checkpoint import recommended_output, safe_load
from m4sam_ros.util.atomic import building_dir
from m4sam_ros.util.cli import DefaultsHelpFormatter

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "m4sam-onnx/1"
DEFAULT_OPSET = 17
GRAPHS = ("encoder", "memory_attention", "decoder_track", "decoder_cond", "memory_encoder")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_sha256(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def sam_settings(sam: Any) -> dict[str, Any]:
    """The SAM2 settings the runtime's memory selection reads (``_prepare_memory_conditioned_features``)."""
    return {
        "num_maskmem": int(sam.num_maskmem),
        "max_obj_ptrs_in_encoder": int(sam.max_obj_ptrs_in_encoder),
        "max_cond_frames_in_attn": int(sam.max_cond_frames_in_attn),
        "memory_temporal_stride_for_eval": int(sam.memory_temporal_stride_for_eval),
        "only_obj_ptrs_in_the_past_for_eval": bool(sam.only_obj_ptrs_in_the_past_for_eval),
        "use_signed_tpos_enc_to_obj_ptrs": bool(sam.use_signed_tpos_enc_to_obj_ptrs),
        "use_obj_ptrs_in_encoder": bool(sam.use_obj_ptrs_in_encoder),
    }


def example_inputs(model: Any, layout: dict[str, int]) -> dict[str, dict[str, torch.Tensor]]:
    """Random inputs of every graph at their static shapes (also what ``validate`` feeds)."""
    sam = model.sam
    s, g, c, cm = model.image_size, layout["feat_size"], layout["hidden_dim"], layout["mem_dim"]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        image = torch.randn(1, 3, s, s, generator=gen)
        depth = torch.rand(1, 1, s, s, generator=gen)
        feats = EncoderGraph(model)(image, depth)
    _, s0, s1, vf, vp = feats
    nm, np_ = layout["mem_slots"], layout["ptr_slots"]
    mask = (torch.rand(1, 1, s, s, generator=gen) > 0.5).float()
    return {
        "encoder": {"image": image, "depth": depth},
        "encoder_rgb": {"image": image},
        "memory_attention": {
            "vision_feat": vf, "vision_pos": vp, "mem_feats": torch.randn(nm, cm, g, g, generator=gen),
            "mem_pos": torch.randn(1, cm, g, g, generator=gen),
            "mem_tpos": torch.arange(nm, dtype=torch.int64) % sam.num_maskmem,
            "mem_valid": torch.arange(nm) < max(1, nm - 2),
            "ptrs": torch.randn(max(np_, 1), c, generator=gen),
            "ptr_tpos": torch.arange(max(np_, 1), dtype=torch.float32),
            "ptr_valid": torch.arange(max(np_, 1)) < max(1, np_ - 3),
        },
        "decoder_track": {"pix_feat": vf, "feat_s0": s0, "feat_s1": s1},
        "decoder_cond": {"vision_feat": vf, "feat_s0": s0, "feat_s1": s1, "mask": mask},
        "memory_encoder": {"vision_feat": vf, "mask_logits": torch.randn(1, 1, s, s, generator=gen),
                           "object_score_logits": torch.tensor([[2.0]]),
                           "binarize": torch.tensor([True])},
    }


OUTPUT_NAMES = {
    "encoder": ["coarse_logits", "feat_s0", "feat_s1", "vision_feat", "vision_pos"],
    "encoder_rgb": ["feat_s0", "feat_s1", "vision_feat", "vision_pos"],
    "memory_attention": ["pix_feat"],
    "decoder_track": ["low_res_masks", "high_res_masks", "obj_ptr", "object_score_logits"],
    "decoder_cond": ["low_res_masks", "mem_mask_logits", "obj_ptr", "object_score_logits"],
    "memory_encoder": ["maskmem_features", "maskmem_pos_enc"],
}


def graph_modules(model: Any, layout: dict[str, int]) -> dict[str, torch.nn.Module]:
    sam = model.sam
    return {
        "encoder": EncoderGraph(model),
        "encoder_rgb": EncoderGraph(model, rgb_only=True),
        "memory_attention": MemoryAttentionGraph(sam, layout),
        "decoder_track": DecoderTrackGraph(sam),
        "decoder_cond": DecoderCondGraph(sam),
        "memory_encoder": MemoryEncoderGraph(sam),
    }


def _export_one(module: torch.nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str], path: Path,
                opset: int) -> dict[str, Any]:
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter chatter
        expected = module(*inputs.values())
        torch.onnx.export(module, tuple(inputs.values()), str(path), input_names=list(inputs),
                          output_names=outputs, opset_version=opset, do_constant_folding=True, dynamo=False)
    expected = expected if isinstance(expected, tuple) else (expected,)
    return {
        "inputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in inputs.items()},
        "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                    for k, v in zip(outputs, expected, strict=True)},
    }


def export_model(model: Any, out_dir: str | Path, *, max_cond_frames: int = 4, opset: int = DEFAULT_OPSET,
                 rgb_only_encoder: bool = False, checkpoint: str | Path | None = None,
                 recommended: str = "memory", overwrite: bool = True) -> dict[str, Any]:
    """Writes the graphs and manifest.json of ``model`` (an ``M4SAM``) into ``out_dir`` and returns the
    manifest. ``max_cond_frames``: conditioning slots (the predictor's bound; SAM2 reads them all)."""
    if max_cond_frames < 2:
        raise ValueError(f"max_cond_frames must be >= 2 (SAM2's memory attention needs it), got {max_cond_frames}")
    model = model.cpu().eval()
    sam = model.sam
    check_exportable(sam)
    sam.binarize_mask_from_pts_for_mem_enc = True  # as the video predictor (and StreamingPredictor) sets it
    layout = memory_layout(sam, max_cond_frames)
    inputs = example_inputs(model, layout)
    modules = graph_modules(model, layout)
    names = list(GRAPHS) + (["encoder_rgb"] if rgb_only_encoder else [])
    graphs: dict[str, Any] = {}
    with building_dir(out_dir, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        for name in names:
            log.info("exporting %s", name)
            io = _export_one(modules[name], inputs[name], OUTPUT_NAMES[name], tmp / f"{name}.onnx", opset)
            graphs[name] = dict(io, file=f"{name}.onnx", sha256=file_sha256(tmp / f"{name}.onnx"))
        manifest = {
            "format": MANIFEST_FORMAT,
            "image_size": int(model.image_size),
            "opset": opset,
            "torch_version": torch.__version__,
            "layout": layout,
            "sam": sam_settings(sam),
            "max_cond_frames": max_cond_frames,
            "recommended_output": recommended,
            "rgb_only_encoder": rgb_only_encoder,
            "config": model.config,
            "config_sha256": config_sha256(model.config),
            "checkpoint": None if checkpoint is None else Path(checkpoint).name,
            "checkpoint_sha256": None if checkpoint is None else file_sha256(checkpoint),
            "graphs": graphs,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def validate_graphs(model: Any, out_dir: str | Path) -> dict[str, float]:
    """Each graph of ``out_dir`` run by ONNX Runtime (CPU) on the export's example inputs against the
    PyTorch module: graph name -> max |ORT - torch| over its outputs."""
    import numpy as np
    import onnxruntime as ort

    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    layout = manifest["layout"]
    inputs, modules = example_inputs(model, layout), graph_modules(model, layout)
    errors = {}
    for name, graph in manifest["graphs"].items():
        sess = ort.InferenceSession(str(Path(out_dir) / graph["file"]), providers=["CPUExecutionProvider"])
        wanted = {i.name for i in sess.get_inputs()}
        got = sess.run(None, {k: v.numpy() for k, v in inputs[name].items() if k in wanted})
        with torch.no_grad():
            expected = modules[name](*inputs[name].values())
        expected = expected if isinstance(expected, tuple) else (expected,)
        errors[name] = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected, strict=True))
    return errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="m4sam-export", description=__doc__.split("\n\n")[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--checkpoint", help="M4-SAM checkpoint (holds its config); omit with --config for random weights")
    p.add_argument("--config", help="model config name/YAML (default: the checkpoint's own)")
    p.add_argument("--sam2-checkpoint", help="SAM2 weights the M4-SAM checkpoint builds on (official .pt)")
    p.add_argument("--image-size", type=int, help="export at this size (multiple of 32; default the config's)")
    p.add_argument("--out", required=True, help="output folder (replaced whole on success)")
    p.add_argument("--max-cond-frames", type=int, default=4, help="conditioning-frame slots (the predictor's bound)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset of the graphs")
    p.add_argument("--rgb-only-encoder", action="store_true", help="also export the RGB-only encoder")
    p.add_argument("--validate", action="store_true", help="run each graph in ONNX Runtime against PyTorch")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.checkpoint is None and args.config is None:
        raise SystemExit("m4sam-export: give --checkpoint CK (or --config NAME for a random-weight model)")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise SystemExit(f"m4sam-export: checkpoint {args.checkpoint} not found")
    config = args.config
    image_size = args.image_size
    if config is None:
        config = safe_load(args.checkpoint)["config"]
        if image_size is not None:
            config = dict(config, image_size=image_size)
            image_size = None
    model = build_m4sam(config, sam2_checkpoint=args.sam2_checkpoint, m4sam_checkpoint=args.checkpoint,
                        image_size=image_size)
    rec = recommended_output(args.checkpoint) if args.checkpoint else "memory"
    manifest = export_model(model, args.out, max_cond_frames=args.max_cond_frames, opset=args.opset,
                            rgb_only_encoder=args.rgb_only_encoder, checkpoint=args.checkpoint, recommended=rec)
    print(f"m4sam-export: {len(manifest['graphs'])} graphs at {manifest['image_size']} px -> {args.out}")
    if args.validate:
        for name, err in validate_graphs(model, args.out).items():
            print(f"  {name}: max |ORT - torch| = {err:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
