"""The streaming predictor: parity with SAM2's video predictor, bounded state, reset,
re-initialisation, input validation, boxes."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from m4sam_ros.data.synth.world import generate_video
from m4sam_ros.model import build_m4sam
from m4sam_ros.predictor.result import mask_and_boxes
from m4sam_ros.predictor.streaming import Box, StreamingPredictor, boxes_from_mask

#: no re-initialisation of any kind (low score, disagreement, scene cut): pure tracking
NO_REINIT = {"reinit_low_score_frames": 10**9, "reinit_iou_frames": 10**9, "reinit_cut_threshold": -1.0}


@pytest.fixture(scope="module")
def demo_predictor_factory():
    torch.manual_seed(0)
    model = build_m4sam("m4sam_demo")
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def make(**kw):
        model.load_state_dict(state)
        return StreamingPredictor(model, "cpu", **kw)
    return make


def test_parity_with_sam2_video_predictor(tmp_path: Path) -> None:
    """RGB-only mode + the same first mask reproduces SAM2VideoPredictor bit for bit (256 px, 20
    frames): the logits of every frame (19 of them tracked from memory) and the memories it stores."""
    from sam2.build_sam import build_sam2_video_predictor

    n, size = 20, 256
    video = generate_video(21, n, 160, 120)
    for i, rgb in enumerate(video.rgb):
        cv2.imwrite(str(tmp_path / f"{i:05d}.jpg"), rgb[..., ::-1])
    torch.manual_seed(0)
    model = build_m4sam("m4sam_hiera_t", image_size=size)
    vp = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu",
                                    hydra_overrides_extra=[f"++model.image_size={size}"])
    missing, unexpected = vp.load_state_dict(model.sam.state_dict(), strict=True)
    assert not missing and not unexpected
    vp.eval()
    with torch.inference_mode():
        state = vp.init_state(str(tmp_path))
        first_mask = video.gt[0] > 0
        vp.add_new_mask(state, 0, 1, first_mask)
        expected = {i: m[0, 0].float().numpy() for i, _, m in vp.propagate_in_video(state)}
    images = state["images"]
    assert len(expected) == n
    vp_frames = state["output_dict_per_obj"][0]

    stream = StreamingPredictor(model, "cpu", rgb_only=True, **NO_REINIT)
    prompt = F.interpolate(torch.from_numpy(first_mask)[None, None].float(), size=(size, size), mode="bilinear",
                           align_corners=False, antialias=True) >= 0.5
    for i in range(n):
        res = stream.step_tensor(images[i:i + 1], None, (120, 160), mask_prompt=prompt[0, 0] if i == 0 else None)
        assert res.reinitialized == (i == 0)
        # exact: same weights, same features, same memories in the same dtypes -> the same arithmetic
        np.testing.assert_array_equal(res.memory_logits, expected[i], err_msg=f"frame {i}")
    # what it keeps is what SAM2's video predictor keeps for those frames, dtype included (bf16 memory)
    assert list(stream.memory.cond) == [0] and list(stream.memory.non_cond) == list(range(n - 15, n))
    for kept, theirs in ((stream.memory.cond, vp_frames["cond_frame_outputs"]),
                         (stream.memory.non_cond, vp_frames["non_cond_frame_outputs"])):
        for idx, ours in kept.items():
            for key in ("maskmem_features", "obj_ptr", "object_score_logits"):
                assert ours[key].dtype == theirs[idx][key].dtype, (idx, key)
                assert torch.equal(ours[key], theirs[idx][key]), (idx, key)
    assert stream.memory.cond[0]["maskmem_features"].dtype == torch.bfloat16
    torch.testing.assert_close(stream.memory.pos_enc[0], vp_frames["cond_frame_outputs"][0]["maskmem_pos_enc"][0],
                               rtol=0, atol=0)

    # negative controls: the comparison can fail. On the first frame: another first mask.
    other = StreamingPredictor(model, "cpu", rgb_only=True, **NO_REINIT)
    res0 = other.step_tensor(images[0:1], None, (120, 160), mask_prompt=~prompt[0, 0])
    assert np.abs(res0.memory_logits - expected[0]).max() > 1.0
    # On a tracked frame: the previous frame's memory kept in fp32 and off by less than one bf16
    # step (what storing SAM2's fp32 output unrounded does) moves this frame's logits.
    other = StreamingPredictor(model, "cpu", rgb_only=True, **NO_REINIT)
    k = 10
    for i in range(k):
        other.step_tensor(images[i:i + 1], None, (120, 160), mask_prompt=prompt[0, 0] if i == 0 else None)
    last = other.memory.non_cond[k - 1]
    last["maskmem_features"] = last["maskmem_features"].float() * (1 + 2.0 ** -10)
    res_k = other.step_tensor(images[k:k + 1], None, (120, 160))
    assert not res_k.reinitialized
    assert np.abs(res_k.memory_logits - expected[k]).max() > 1e-7


def _storage_bytes(obj: Any, seen: set[int]) -> int:
    """Bytes of the distinct tensor storages in ``obj``, counted here rather than by the predictor."""
    if isinstance(obj, torch.Tensor):
        ptr = obj.untyped_storage().data_ptr()
        if ptr in seen:
            return 0
        seen.add(ptr)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, (dict, OrderedDict)):
        return sum(_storage_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_storage_bytes(v, seen) for v in obj)
    return 0


def _held_bytes(p: StreamingPredictor) -> int:
    return _storage_bytes([p.memory.cond, p.memory.non_cond, p.memory.pos_enc], set())


def _expected_sizes(p: StreamingPredictor) -> tuple[int, int, int]:
    """(shared positional encoding, one frame, frames kept besides conditioning frames) from the
    model's configuration: what SAM2's memory attention reads and how SAM2's video predictor
    stores it (memory features bf16, object pointer and score fp32 on the CPU)."""
    sam = p.sam
    mem_dim = int(sam.memory_encoder.out_proj.weight.shape[0])  # memory_encoder.out_dim
    hidden = int(sam.hidden_dim)                                 # object pointer width
    side = int(p.model.image_size) // int(sam.backbone_stride)   # memory map side
    pos = mem_dim * side * side * 4
    frame = mem_dim * side * side * 2 + hidden * 4 + 1 * 4
    kept = max(int(sam.num_maskmem) - 1, int(sam.max_obj_ptrs_in_encoder) - 1)
    return pos, frame, kept


def test_state_is_constant_after_warm_up(demo_predictor_factory) -> None:
    # no re-initialisation: the state then depends only on how many frames it holds
    p = demo_predictor_factory(**NO_REINIT)
    video = generate_video(5, 60, 96, 72)
    pos, frame, kept = _expected_sizes(p)
    assert kept == 15
    sizes = []
    for i in range(60):
        p.step(video.rgb[i], video.depth[i], stamp=i / 15)
        sizes.append(_held_bytes(p))
        assert sizes[-1] == p.state_nbytes()
        # one conditioning frame plus the last min(i, 15) tracked frames, nothing else
        assert sizes[-1] == pos + frame * (1 + min(i, kept)), i
    assert len(p.memory.non_cond) == 15 and len(p.memory.cond) == 1


def test_state_never_exceeds_its_bound_with_frequent_reinitialisation(demo_predictor_factory) -> None:
    # random weights: memory and coarse maps disagree, so it re-conditions every other frame
    p = demo_predictor_factory(reinit_iou_frames=1, reinit_iou_threshold=1.01, max_cond_frames=3)
    video = generate_video(8, 40, 96, 72)
    pos, frame, kept = _expected_sizes(p)
    bound = pos + frame * (3 + kept)  # computed here, not taken from the predictor's report
    peak, flags = 0, []
    for i in range(40):
        flags.append(p.step(video.rgb[i], video.depth[i], stamp=i / 15).reinitialized)
        assert p.max_state_nbytes() == bound
        peak = max(peak, _held_bytes(p))
        assert len(p.memory.cond) <= 3
    assert sum(flags) >= 15
    assert 0 < peak <= bound


def test_low_object_score_reinitialises(demo_predictor_factory) -> None:
    """The object-score path alone (disagreement and scene cuts off): after N low scores in a row
    the next frame is conditioned again, and a score above the threshold never triggers it."""
    video = generate_video(9, 13, 96, 72)
    base = {"reinit_iou_frames": 10**9, "reinit_cut_threshold": -1.0, "reinit_low_score_frames": 3}
    p = demo_predictor_factory(reinit_score_threshold=1.01, **base)  # every score (a sigmoid) is low
    flags = [p.step(video.rgb[i], video.depth[i], stamp=i / 15).reinitialized for i in range(13)]
    assert flags == [True, False, False, False] * 3 + [True]
    p = demo_predictor_factory(reinit_score_threshold=-0.01, **base)  # no score is low
    flags = [p.step(video.rgb[i], video.depth[i], stamp=i / 15).reinitialized for i in range(13)]
    assert flags == [True] + [False] * 12


def test_each_output_branch_is_the_map_it_names(demo_predictor_factory) -> None:
    """``output`` picks the saliency map: memory (SAM2's branch), coarse (the per-frame map) or
    combined (their mean), on a tracked frame where the two differ, and the mask is that map above
    the threshold. Wrong code: combined as a product (or max) of the two, a branch swapped."""
    video = generate_video(12, 2, 96, 72)
    for output in ("memory", "coarse", "combined"):
        p = demo_predictor_factory(output=output, **NO_REINIT)
        p.step(video.rgb[0], video.depth[0], stamp=0.0)
        res = p.step(video.rgb[1], video.depth[1], stamp=1 / 15)
        assert not res.reinitialized and np.abs(res.memory - res.coarse).max() > 0.05
        want = {"memory": res.memory, "coarse": res.coarse, "combined": (res.memory + res.coarse) / 2}[output]
        np.testing.assert_allclose(res.saliency, want, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(res.mask > 0, want > p.mask_threshold)


def test_reconditioning_drops_the_failed_track(demo_predictor_factory) -> None:
    """A re-conditioned frame starts a fresh track: the tracked frames before it are forgotten,
    the conditioning frames stay; afterwards only frames of the new track are kept."""
    p = demo_predictor_factory(**NO_REINIT)
    video = generate_video(10, 9, 96, 72)
    for i in range(6):
        p.step(video.rgb[i], video.depth[i], stamp=i / 15)
    assert list(p.memory.cond) == [0] and list(p.memory.non_cond) == [1, 2, 3, 4, 5]
    p.request_reinit()
    assert p.step(video.rgb[6], video.depth[6], stamp=6 / 15).reinitialized
    assert list(p.memory.cond) == [0, 6] and list(p.memory.non_cond) == []
    pos, frame, _ = _expected_sizes(p)
    assert _held_bytes(p) == pos + 2 * frame
    for i in (7, 8):
        assert not p.step(video.rgb[i], video.depth[i], stamp=i / 15).reinitialized
    assert list(p.memory.non_cond) == [7, 8]


def test_reset_starts_fresh(demo_predictor_factory) -> None:
    p = demo_predictor_factory()
    video = generate_video(6, 4, 96, 72)
    first = p.step(video.rgb[0], video.depth[0])
    p.step(video.rgb[1], video.depth[1])
    p.reset()
    assert p.state_nbytes() == 0
    again = p.step(video.rgb[0], video.depth[0])
    assert again.reinitialized and again.frame_index == 0
    np.testing.assert_array_equal(again.mask, first.mask)
    np.testing.assert_allclose(again.saliency, first.saliency, atol=1e-6)


def test_warm_up_leaves_no_trace(demo_predictor_factory) -> None:
    p = demo_predictor_factory()
    video = generate_video(6, 2, 96, 72)
    cold = p.step(video.rgb[0], video.depth[0])
    p.reset()
    p.warm_up(72, 96)
    assert p.state_nbytes() == 0
    warm = p.step(video.rgb[0], video.depth[0])
    assert warm.frame_index == 0 and warm.reinitialized
    np.testing.assert_array_equal(warm.mask, cold.mask)


def test_backwards_stamp_restarts(demo_predictor_factory) -> None:
    p = demo_predictor_factory(reinit_low_score_frames=10**9, reinit_iou_frames=10**9)
    video = generate_video(7, 6, 96, 72)
    flags = [p.step(video.rgb[i], video.depth[i], stamp=10.0 + i / 15).reinitialized for i in range(5)]
    assert flags == [True, False, False, False, False]
    looped = p.step(video.rgb[5], video.depth[5], stamp=10.0)
    assert looped.reinitialized and looped.frame_index == 0


def test_scene_cut_reinitialises(demo_predictor_factory) -> None:
    """A shot boundary (thumbnail correlation) re-conditions that very frame and drops the previous
    shot's tracked frames; camera jitter, motion and occlusion inside a shot do not (other
    re-initialisation paths off, so only the cut check can act)."""
    p = demo_predictor_factory(reinit_low_score_frames=10**9, reinit_iou_frames=10**9)
    video = generate_video(31, 30, 160, 120, scene_cuts=1)
    cut = video.cuts[0]
    assert 2 < cut < 29
    flags = []
    for i in range(30):
        flags.append(p.step(video.rgb[i], video.depth[i], stamp=i / 15).reinitialized)
        if i == cut:
            assert list(p.memory.non_cond) == []  # the previous shot's track is gone
    assert [i for i, f in enumerate(flags) if f] == [0, cut]
    assert min(p.memory.non_cond) > cut
    p = demo_predictor_factory(reinit_low_score_frames=10**9, reinit_iou_frames=10**9, reinit_cut_threshold=-1.0)
    assert [i for i in range(30) if p.step(video.rgb[i], video.depth[i], stamp=i / 15).reinitialized] == [0]


def test_validation_errors(demo_predictor_factory) -> None:
    p = demo_predictor_factory()
    rgb = np.zeros((48, 64, 3), np.uint8)
    depth = np.full((48, 64), 1000, np.uint16)
    with pytest.raises(ValueError, match="uint8"):
        p.step(rgb.astype(np.float32), depth)
    with pytest.raises(ValueError, match="HxWx3"):
        p.step(rgb[..., :2], depth)
    with pytest.raises(ValueError, match="empty"):
        p.step(np.zeros((0, 64, 3), np.uint8), depth)
    with pytest.raises(ValueError, match="uint16 millimetres"):
        p.step(rgb, depth.astype(np.int32))
    with pytest.raises(ValueError, match="different aspect ratio"):
        p.step(rgb, np.full((48, 48), 1000, np.uint16))
    with pytest.raises(ValueError, match="depth is required"):
        p.step(rgb, None)
    res = p.step(rgb, np.full((24, 32), 1.0, np.float32))  # half size, same aspect: resized
    assert res.mask.shape == (48, 64)


def test_boxes_from_known_mask() -> None:
    """Largest region first, whatever the scan order; score = mean saliency inside the region.
    Wrong code the inputs rule out: scan order (the smaller region comes first here), the peak
    instead of the mean (the saliency varies inside each region), 4-connectivity (the 120 px
    region has a diagonal tail)."""
    mask = np.zeros((40, 60), np.uint8)
    mask[2:10, 45:57] = 255     # 96 px, first in scan order
    mask[25:28, 40:43] = 255    # 9 px: below the minimum
    mask[12:22, 10:30] = 255    # 200 px
    mask[20:35, 50:58] = 255    # 120 px ...
    mask[35, 58] = 255          # ... + 1 px touching it diagonally
    sal = np.where(mask > 0, 0.8, 0.1).astype(np.float32)
    sal[12:17, 10:30] = 0.6     # the top half of the 200 px region is weaker
    boxes = boxes_from_mask(mask, sal, min_area=20)
    assert boxes == [Box(10, 12, 30, 22, pytest.approx(0.7)), Box(50, 20, 59, 36, pytest.approx(0.8)),
                     Box(45, 2, 57, 10, pytest.approx(0.8))]
    assert boxes_from_mask(np.zeros_like(mask), sal, 1) == []


def test_mask_threshold_is_strict_and_min_box_area_below_one_is_a_fraction() -> None:
    """``sal > mask_threshold`` (a map exactly at the threshold is background), and min_box_area
    0.05 of a 40x60 image is 120 px: a 119 px region is dropped, a 120 px one kept. Wrong code:
    >= (a flat 0.5 map becomes all foreground), a fraction of one side (0.05 * 40 = 2 px)."""
    sal = np.full((40, 60), 0.5, np.float32)
    _, mask, boxes = mask_and_boxes(sal, 0.5, 0.05)
    assert mask.max() == 0 and boxes == []
    sal[0:7, 0:17] = 0.9        # 119 px
    sal[20:30, 20:32] = 0.9     # 120 px
    _, mask, boxes = mask_and_boxes(sal, 0.5, 0.05)
    assert int((mask > 0).sum()) == 239 and [tuple(b[:4]) for b in boxes] == [(20, 20, 32, 30)]
