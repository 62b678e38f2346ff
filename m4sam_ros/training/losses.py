"""Training losses: the structure loss (weighted BCE + weighted IoU) done right, on logits.

Two bugs of the authors' release are avoided: the BCE's pixel weights are applied (a mean-reduced
BCE ignores them), and the loss takes logits (never an already-sigmoided map). Frames without
ground truth (RDVS is sparse) contribute nothing: the loss is averaged over valid frames only.

The clip objective is the authors' (``train_ddp.py`` / ``Network/loss_func.py`` of their release):
deep supervision (side outputs weighted 0.6 / 0.8), MAE terms, structure loss on Sobel edges with a
ramped weight, their memory loss mix; plus SAM2's own treatment of "no object":
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


#: the authors' weights (``train_ddp.py``): side outputs at strides 16 and 8, MoE balance, the
#: MAE term inside their structure loss, their memory loss mix (structure, focal, Dice, MAE)
SIDE_WEIGHTS = (0.6, 0.8)
MOE_WEIGHT = 0.8
MAE_WEIGHT = 0.3
MEMORY_MIX = {"structure": 0.7, "focal": 0.8, "dice": 0.5, "mae": 0.9}
#: the object score's BCE weight (the authors have no object score: SAM2's own recipe weighs its
#: class loss like its Dice/IoU terms, i.e. 1); with Adam the score head's step size is set by its
#: learning rate (``--lr-object``), the weight sets its share of the shared decoder's gradient
OBJECT_WEIGHT = 1.0
#: edge weight ramp of the authors: 0.2 -> 0.8 over the first 20 epochs (of 60 on RDVS), then 1
EDGE_RAMP = (0.2, 0.8)
EDGE_RAMP_FRACTION = 20 / 60


def edge_weight_at(step: int, total: int, ramp: float = EDGE_RAMP_FRACTION, final: float = 1.0) -> float:
    """The authors' edge-loss weight at ``step`` of ``total``: linear 0.2 -> 0.8 over the first
    ``ramp`` of the schedule (their 20 of 60 epochs), then ``final`` (1; 0.5 on ViDSOD-100)."""
    progress = step / max(1, total)
    if ramp > 0 and progress < ramp:
        return EDGE_RAMP[0] + (EDGE_RAMP[1] - EDGE_RAMP[0]) * progress / ramp
    return float(final)


SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_edges(target: torch.Tensor) -> torch.Tensor:
    """The authors' edge target: Sobel gradient magnitude of each [N,1,H,W] map, min-max
    normalised per map to [0, 1] (a map without edges stays at its constant ~1e-3). Replicate
    padding: an object touching the border has no edge there (their zero padding drew one)."""
    x = F.pad(target.float(), (1, 1, 1, 1), mode="replicate")
    kx = SOBEL_X.to(x).view(1, 1, 3, 3)
    gx = F.conv2d(x, kx)
    gy = F.conv2d(x, kx.transpose(2, 3))
    grad = torch.sqrt(gx**2 + gy**2 + 1e-6)
    lo = grad.amin(dim=(1, 2, 3), keepdim=True)
    hi = grad.amax(dim=(1, 2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (grad - lo) / span.clamp_min(1e-12), grad)


def mae_per_map(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |sigmoid(logits) - target| of each [N,1,H,W] map -> [N] (the evaluation's MAE)."""
    return (torch.sigmoid(logits) - target).abs().mean(dim=(1, 2, 3))


def focal_per_map(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
                  ) -> torch.Tensor:
    """The authors' focal loss (alpha 0.25 on every pixel, gamma 2), mean per map -> [N]."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (alpha * (1.0 - torch.exp(-bce)) ** gamma * bce).mean(dim=(1, 2, 3))


def dice_per_map(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """1 - Dice of sigmoid(logits) and target per map -> [N]."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    union = (prob + target).sum(dim=(1, 2, 3))
    return 1.0 - (2.0 * inter + smooth) / (union + smooth)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, 1, *x.shape[-2:]).float()


def masked_structure_mae_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                              mae_weight: float = MAE_WEIGHT) -> torch.Tensor:
    """The authors' ``structure_loss`` (weighted BCE + weighted IoU + 0.3 MAE; with its pixel
    weights applied) averaged over the valid maps."""
    lg, tg = _flat(logits), _flat(target)
    return _masked_mean(structure_loss_per_map(lg, tg) + mae_weight * mae_per_map(lg, tg), valid)


def memory_loss_per_map(logits: torch.Tensor, target: torch.Tensor, mae_weight: float = MAE_WEIGHT) -> torch.Tensor:
    """The authors' ``total_loss`` of the memory output: 0.7 structure (with its MAE) + 0.8 focal
    + 0.5 Dice + 0.9 MAE, per map -> [N]."""
    mae = mae_per_map(logits, target)
    w = MEMORY_MIX
    return (w["structure"] * (structure_loss_per_map(logits, target) + mae_weight * mae)
            + w["focal"] * focal_per_map(logits, target) + w["dice"] * dice_per_map(logits, target)
            + w["mae"] * mae)


def clip_loss(outputs: dict, gts: torch.Tensor, gt_valid: torch.Tensor,
              memory_weight: float = 1.0, object_weight: float = OBJECT_WEIGHT,
              side_weights: tuple[float, ...] = SIDE_WEIGHTS, edge_weight: float = 1.0,
              moe_weight: float = MOE_WEIGHT, mae_weight: float = MAE_WEIGHT) -> dict[str, torch.Tensor]:
    """The training objective of one clip batch, the authors' terms and weights (``train_ddp.py``).

    ``outputs`` from ``M4SAM.forward_clip``; ``gts`` [B,T,1,S,S] in {0,1}; ``gt_valid`` [B,T].

    - coarse: structure loss + ``mae_weight`` MAE on every valid frame (weight 1);
    - side: the deep-supervision outputs [stride 16, stride 8] at ``side_weights`` (0.6, 0.8);
    - edge: ``edge_weight`` (the caller ramps it: :func:`edge_weight_at`) x the structure loss of
      each edge output (``edge_logits``, the head's edge maps at strides 16, 8, 4) against the
      Sobel edges of the ground truth; a model without edge outputs gets the soft
      morphological-edge Dice on its coarse map instead;
    - memory: the authors' memory mix (:func:`memory_loss_per_map`) on frames 1..T-1 (frame 0's
      memory output is the mask prompt itself), only where the object is present (SAM2's recipe),
      on ``memory_logits_raw`` (before the "no object" replacement; a dict without it falls back
      to ``memory_logits`` and skips frames SAM2 called "no object": constant -1024, no gradient);
    - object: ``object_weight`` x BCE of the object score on EVERY valid frame that predicts one
      (frame 0 too, unless its score is the constant SAM2 derives from the mask prompt);
    - balance: ``moe_weight`` x the MoE balance loss."""
    if gts.dim() != 5 or gt_valid.shape != gts.shape[:2]:
        raise ValueError(f"gts must be [B,T,1,S,S] and gt_valid [B,T], got {tuple(gts.shape)} and "
                         f"{tuple(gt_valid.shape)}")
    valid_all = gt_valid.bool()
    coarse = masked_structure_mae_loss(outputs["coarse_logits"], gts, valid_all, mae_weight)
    side_maps = list(outputs.get("side_logits", []))
    if len(side_maps) > len(side_weights):
        raise ValueError(f"{len(side_maps)} side outputs but {len(side_weights)} side weights")
    side = coarse.new_zeros(())
    for w, x in zip(side_weights, side_maps, strict=False):
        side = side + w * masked_structure_mae_loss(x, gts, valid_all, mae_weight)
    edge_maps = list(outputs.get("edge_logits", []))
    if edge_maps:
        edge_target = sobel_edges(_flat(gts)).view_as(gts)
        edge = torch.stack([masked_structure_mae_loss(x, edge_target, valid_all, mae_weight)
                            for x in edge_maps]).sum()
    else:
        edge = masked_edge_loss(outputs["coarse_logits"], gts, valid_all)
    aux = outputs["aux_loss"]
    total = coarse + side + edge_weight * edge + moe_weight * aux
    parts = {"coarse": coarse.detach(), "edge": edge.detach(), "side": side.detach(), "balance": aux.detach()}
    score_all = outputs["object_score_logits"].reshape(gts.shape[:2]).float()   # [B,T]
    present_all = gts.flatten(2).amax(dim=2) > 0.5                            # [B,T]
    predicted = torch.ones_like(valid_all)
    if outputs.get("object_score_from_prompt", True):
        # frame 0's score is SAM2's +-10 copy of the mask prompt (use_mask_input_as_output):
        # nothing to supervise there
        predicted[:, 0] = False
    obj_valid = valid_all & predicted
    obj = _masked_mean(F.binary_cross_entropy_with_logits(score_all, present_all.float(), reduction="none"),
                       obj_valid)
    total = total + object_weight * obj
    parts["object"] = obj.detach()
    if gts.shape[1] > 1:
        present = present_all[:, 1:]
        valid = valid_all[:, 1:]
        if "memory_logits_raw" in outputs:
            logits = outputs["memory_logits_raw"][:, 1:]
            mask_valid = valid & present
        else:
            logits = outputs["memory_logits"][:, 1:]
            mask_valid = valid & present & (score_all[:, 1:].detach() > 0)
        memory = _masked_mean(memory_loss_per_map(_flat(logits), _flat(gts[:, 1:])), mask_valid)
        total = total + memory_weight * memory
        parts["memory"] = memory.detach()
    parts["total"] = total
    return parts
