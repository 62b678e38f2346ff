"""Training losses: the structure loss (weighted BCE + weighted IoU) done right, on logits.

Two bugs of the authors' release are avoided: the BCE's pixel weights are applied (a mean-reduced
BCE ignores them), and the loss takes logits (never an already-sigmoided map). Frames without
ground truth (RDVS is sparse) contribute nothing: the loss is averaged over valid frames only.

The clip objective adds deep supervision (the top-down head's side outputs), an edge-aware loss
on the coarse map (soft morphological edges, Dice), and SAM2's own treatment of "no object":
mask losses only where the object is present, on the decoder's logits *before* SAM2 replaces
"no object" frames by -1024 (a constant with zero gradient), plus the object-score BCE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def boundary_weights(target: torch.Tensor) -> torch.Tensor:
    """1 + 5 * |local mean - target|: pixels near object boundaries weigh up to 6x.

    The window is 31 px at 352 px input (the structure loss's usual setting), scaled with size."""
    size = target.shape[-1]
    k = max(3, int(round(31 * size / 352)) | 1)
    return 1.0 + 5.0 * (F.avg_pool2d(target, k, stride=1, padding=k // 2) - target).abs()


def structure_loss_per_map(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Weighted BCE + weighted IoU for each map of ``logits`` / ``target`` shaped [N,1,H,W] -> [N]."""
    weit = boundary_weights(target)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    wbce = (weit * bce).sum(dim=(2, 3)) / weit.sum(dim=(2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * target * weit).sum(dim=(2, 3))
    union = ((prob + target) * weit).sum(dim=(2, 3))
    wiou = 1.0 - (inter + 1.0) / (union - inter + 1.0)
    return (wbce + wiou).squeeze(1)


def masked_structure_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean structure loss over the maps where ``valid`` is True; 0 (with a graph) when none is."""
    flat_logits = logits.reshape(-1, 1, *logits.shape[-2:])
    flat_target = target.reshape(-1, 1, *target.shape[-2:]).to(flat_logits.dtype)
    flat_valid = valid.reshape(-1).to(flat_logits.dtype)
    per_map = structure_loss_per_map(flat_logits.float(), flat_target.float())
    return (per_map * flat_valid).sum() / flat_valid.sum().clamp_min(1.0)


def morphological_edges(x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """dilate(x) - erode(x) with a k x k window: a band ~k-1 px wide around boundaries (soft for
    probabilities, {0,1} for binary masks). Border pixels count as outside the image."""
    pad = k // 2
    dil = F.max_pool2d(x, k, stride=1, padding=pad)
    ero = -F.max_pool2d(-x, k, stride=1, padding=pad)
    return dil - ero


def edge_loss_per_map(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Edge-aware loss [N] for [N,1,H,W] maps: 1 - Dice between the soft morphological edges of
    sigmoid(logits) and the edges of the ground truth. It rewards sharp boundaries in the right
    place, which the area terms of the structure loss barely see."""
    size = target.shape[-1]
    k = max(3, int(round(3 * size / 352)) | 1)
    ep = morphological_edges(torch.sigmoid(logits), k)
    et = morphological_edges(target, k)
    inter = (ep * et).sum(dim=(1, 2, 3))
    return 1.0 - (2.0 * inter + 1.0) / (ep.sum(dim=(1, 2, 3)) + et.sum(dim=(1, 2, 3)) + 1.0)


def _masked_mean(per_map: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    v = valid.reshape(-1).to(per_map.dtype)
    return (per_map.reshape(-1) * v).sum() / v.sum().clamp_min(1.0)


def masked_edge_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean edge loss over the maps where ``valid`` is True; 0 (with a graph) when none is."""
    flat_logits = logits.reshape(-1, 1, *logits.shape[-2:]).float()
    flat_target = target.reshape(-1, 1, *target.shape[-2:]).float()
    return _masked_mean(edge_loss_per_map(flat_logits, flat_target), valid)


def clip_loss(outputs: dict, gts: torch.Tensor, gt_valid: torch.Tensor,
              memory_weight: float = 1.0, object_weight: float = 0.1, side_weight: float = 0.5,
              edge_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """The training objective of one clip batch.

    ``outputs`` from ``M4SAM.forward_clip``; ``gts`` [B,T,1,S,S] in {0,1}; ``gt_valid`` [B,T].

    - coarse: structure loss on every valid frame; + ``edge_weight`` * edge loss on it;
    - side: ``side_weight`` * structure loss of each deep-supervision output (top-down head);
    - memory: frames 1..T-1 (frame 0's memory output is the mask prompt itself), only where the
      object is present (SAM2's recipe), on ``memory_logits_raw`` (before the "no object"
      replacement; a dict without it falls back to ``memory_logits`` and skips frames SAM2 called
      "no object", whose constant -1024 logits have no gradient);
    - object: BCE of the object score (is the object visible?) on valid frames 1..T-1;
    - balance: the MoE balance loss."""
    if gts.dim() != 5 or gt_valid.shape != gts.shape[:2]:
        raise ValueError(f"gts must be [B,T,1,S,S] and gt_valid [B,T], got {tuple(gts.shape)} and "
                         f"{tuple(gt_valid.shape)}")
    valid_all = gt_valid.bool()
    coarse = masked_structure_loss(outputs["coarse_logits"], gts, valid_all)
    edge = masked_edge_loss(outputs["coarse_logits"], gts, valid_all)
    sides = [masked_structure_loss(x, gts, valid_all) for x in outputs.get("side_logits", [])]
    side = torch.stack(sides).sum() if sides else coarse.new_zeros(())
    total = coarse + edge_weight * edge + side_weight * side + outputs["aux_loss"]
    parts = {"coarse": coarse.detach(), "edge": edge.detach(), "side": side.detach(),
             "balance": outputs["aux_loss"].detach()}
    if gts.shape[1] > 1:
        present = gts[:, 1:].flatten(2).amax(dim=2) > 0.5                      # [B,T-1]
        score = outputs["object_score_logits"][:, 1:].reshape(present.shape).float()
        valid = valid_all[:, 1:]
        if "memory_logits_raw" in outputs:
            logits = outputs["memory_logits_raw"][:, 1:]
            mask_valid = valid & present
        else:
            logits = outputs["memory_logits"][:, 1:]
            mask_valid = valid & present & (score.detach() > 0)
        memory = masked_structure_loss(logits, gts[:, 1:], mask_valid)
        obj = _masked_mean(F.binary_cross_entropy_with_logits(score, present.float(), reduction="none"),
                           valid)
        total = total + memory_weight * memory + object_weight * obj
        parts.update(memory=memory.detach(), object=obj.detach())
    parts["total"] = total
    return parts
