"""Training losses: the structure loss (weighted BCE + weighted IoU) done right, on logits.

Two bugs of the authors' release are avoided: the BCE's pixel weights are applied (a mean-reduced
BCE ignores them), and the loss takes logits (never an already-sigmoided map). Frames without
ground truth (RDVS is sparse) contribute nothing: the loss is averaged over valid frames only.
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


def clip_loss(outputs: dict[str, torch.Tensor], gts: torch.Tensor, gt_valid: torch.Tensor,
              memory_weight: float = 1.0, object_weight: float = 0.1) -> dict[str, torch.Tensor]:
    """The training objective of one clip batch.

    ``outputs`` from ``M4SAM.forward_clip``; ``gts`` [B,T,1,S,S] in {0,1}; ``gt_valid`` [B,T].
    Coarse loss on every frame; memory loss on frames 1..T-1 (frame 0's memory output is the mask
    prompt itself); object-score BCE (is the object visible?) on frames 1..T-1; plus the MoE
    balance loss."""
    coarse = masked_structure_loss(outputs["coarse_logits"], gts, gt_valid)
    total = coarse + outputs["aux_loss"]
    parts = {"coarse": coarse.detach(), "balance": outputs["aux_loss"].detach()}
    if gts.shape[1] > 1:
        memory = masked_structure_loss(outputs["memory_logits"][:, 1:], gts[:, 1:], gt_valid[:, 1:])
        present = (gts[:, 1:].flatten(2).amax(dim=2) > 0.5).float()          # [B,T-1]
        score = outputs["object_score_logits"][:, 1:].reshape(present.shape).float()
        valid = gt_valid[:, 1:].float()
        obj = (F.binary_cross_entropy_with_logits(score, present, reduction="none") * valid).sum()
        obj = obj / valid.sum().clamp_min(1.0)
        total = total + memory_weight * memory + object_weight * obj
        parts.update(memory=memory.detach(), object=obj.detach())
    parts["total"] = total
    return parts
