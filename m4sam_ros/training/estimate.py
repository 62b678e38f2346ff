"""Measure what one training clip costs, on any device (the basis of the recipes' H100 estimates).

``python -m m4sam_ros.training.estimate --config m4sam_hiera_l --size 352 --clip-len 4`` runs one
forward + backward of one clip through ``forward_clip`` + ``clip_loss`` (float32, the memory branch
training) and reports: FLOPs counted by ``torch.utils.flop_counter`` (matmul/conv/attention ops),
the bytes autograd saves for backward (unique storages: the activation memory of one clip, float32),
and parameter counts (total, trainable). These are measured; wall time and memory on a GPU are
derived from them in docs/notes_train.md and labelled as estimates.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from m4sam_ros.model import build_m4sam, load_config
from m4sam_ros.training.losses import clip_loss


def measure(config: str, size: int, clip_len: int) -> dict[str, Any]:
    cfg = load_config(config, size)
    cfg["train_memory_branch"] = True
    torch.manual_seed(0)
    model = build_m4sam(cfg).train()
    images = torch.randn(1, clip_len, 3, size, size)
    depths = torch.rand(1, clip_len, 1, size, size)
    gts = (torch.rand(1, clip_len, 1, size, size) > 0.5).float()
    valid = torch.ones(1, clip_len, dtype=torch.bool)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    counter = FlopCounterMode(display=False)
    t0 = time.perf_counter()
    with counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model.forward_clip(images, depths)
            loss = clip_loss(out, gts, valid)["total"]
        fwd = counter.get_total_flops()
        loss.backward()
    seconds = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"config": config, "image_size": size, "clip_len": clip_len, "forward_gflop": round(fwd / 1e9, 1),
            "train_gflop": round(counter.get_total_flops() / 1e9, 1),
            "saved_activation_mib_fp32": round(sum(saved.values()) / 2**20, 1),
            "params": params, "trainable": trainable, "cpu_seconds_fwd_bwd": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="m4sam_hiera_l")
    p.add_argument("--size", type=int, default=352)
    p.add_argument("--clip-len", type=int, default=4)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.config, args.size, args.clip_len), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
