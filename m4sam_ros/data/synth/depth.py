"""RealSense-like depth sensor noise, and the depth conventions a scene can be written in.

Noise effects (each video draws a profile: a subset of effects with their strengths):

- ``quantisation``: an active-stereo camera measures disparity ``f * B / z`` in sub-pixel steps,
  so depth steps (and noise) grow with the square of the distance;
- ``edge_holes``: no depth along depth discontinuities (the stereo matcher fails there);
- ``flying``: mixed pixels between a near and a far surface at discontinuities;
- ``dark_holes``: no depth on dark or shiny (specular) surfaces;
- ``dropouts``: beyond the maximum range and closer than the minimum range, plus random blobs;
- held out only: ``shadow`` (the stereo occlusion band beside near objects, on the side of the
  projector/left imager), ``lowres`` (depth computed at a lower resolution and upsampled, blocky
  edges) and ``misalign`` (depth registered to colour a few pixels off).

Conventions (:func:`to_convention`): ``mm16`` (16UC1 millimetres, 0 = invalid, what RealSense
publishes), ``m32`` (32FC1 metres, NaN = invalid, REP 118) and ``relative16`` / ``relative8``
(benchmark-style maps: per-frame nearness, near = bright, 0 = invalid, exactly what
``normalize_depth`` makes of the metric map, so a model scores the same on every convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from m4sam_ros.model.depth import normalize_depth

EFFECTS_TRAIN = ("quantisation", "edge_holes", "flying", "dark_holes", "dropouts")
EFFECTS_HELDOUT = ("shadow", "lowres", "misalign")
CONVENTIONS = ("mm16", "m32", "relative16", "relative8")


@dataclass
class NoiseProfile:
    """The effects a video's depth carries and their strengths (drawn once per scene)."""

    effects: tuple[str, ...]
    baseline_m: float = 0.05          # stereo baseline
    subpixel: float = 0.08            # disparity step (pixels)
    disparity_sigma: float = 0.05     # disparity noise (pixels)
    edge_width: int = 2
    edge_prob: float = 0.5
    flying_prob: float = 0.3
    dark_level: float = 35.0
    min_range_m: float = 0.2
    max_range_m: float = 6.0
    blobs: int = 2
    lowres_factor: int = 4
    misalign_px: tuple[int, int] = (2, 0)


def sample_profile(rng: np.random.Generator, held_out: bool) -> NoiseProfile:
    """A random profile: a random subset of the training effects (never empty, quantisation
    always), plus, for the held-out set, at least one held-out effect."""
    effects = ["quantisation"] + [e for e in EFFECTS_TRAIN[1:] if rng.random() < 0.7]
    if held_out:
        k = int(rng.integers(1, len(EFFECTS_HELDOUT) + 1))
        effects += [str(e) for e in rng.choice(EFFECTS_HELDOUT, k, replace=False)]
    return NoiseProfile(
        effects=tuple(effects), baseline_m=rng.uniform(0.04, 0.095), subpixel=rng.uniform(0.04, 0.15),
        disparity_sigma=rng.uniform(0.02, 0.12), edge_width=int(rng.integers(1, 4)), edge_prob=rng.uniform(0.3, 0.9),
        flying_prob=rng.uniform(0.1, 0.5), dark_level=rng.uniform(20, 50), min_range_m=rng.uniform(0.15, 0.3),
        max_range_m=rng.uniform(3.5, 8.0), blobs=int(rng.integers(0, 4)), lowres_factor=int(rng.choice([2, 4, 8])),
        misalign_px=(int(rng.integers(-4, 5)), int(rng.integers(-3, 4))))


def apply_noise(rng: np.random.Generator, depth_m: np.ndarray, rgb: np.ndarray, fx: float,
                profile: NoiseProfile, shiny: np.ndarray | None = None) -> np.ndarray:
    """Ideal metric depth (metres, inf = nothing) -> measured depth in metres, 0 = invalid."""
    h, w = depth_m.shape
    z = np.where(np.isfinite(depth_m), depth_m, 0.0).astype(np.float64)
    valid = z > 0
    fx_b = fx * profile.baseline_m
    eff = profile.effects
    # discontinuities, before noise: where neighbouring depths differ by more than 5 %
    zz = np.where(valid, z, 0).astype(np.float32)
    mx = cv2.dilate(zz, np.ones((3, 3), np.uint8))
    mn = cv2.erode(np.where(valid, zz, 1e6).astype(np.float32), np.ones((3, 3), np.uint8))
    edges = valid & ((mx - mn) > 0.05 * np.maximum(mn, 1e-3))
    if "lowres" in eff:
        f = profile.lowres_factor
        small = cv2.resize(zz, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_NEAREST)
        zz = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        z = zz.astype(np.float64)
        valid = z > 0
    if "flying" in eff:
        ring = cv2.dilate(edges.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        fly = ring & (rng.random((h, w)) < profile.flying_prob)
        t = rng.random((h, w))
        z = np.where(fly & (mx > 0), mn * t + mx * (1 - t), z)
    if "quantisation" in eff:
        disp = np.where(valid, fx_b / np.maximum(z, 1e-6), 0.0)
        disp = disp + rng.normal(0.0, profile.disparity_sigma, (h, w))
        disp = np.round(disp / profile.subpixel) * profile.subpixel
        z = np.where(valid & (disp > 0), fx_b / np.maximum(disp, 1e-9), 0.0)
    holes = ~valid
    if "edge_holes" in eff:
        band = cv2.dilate(edges.astype(np.uint8), np.ones((profile.edge_width, profile.edge_width), np.uint8))
        holes |= band.astype(bool) & (rng.random((h, w)) < profile.edge_prob)
    if "dark_holes" in eff:
        lum = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        dark = lum < profile.dark_level
        if shiny is not None:
            dark |= shiny
        holes |= dark & (rng.random((h, w)) < 0.85)
    if "dropouts" in eff:
        holes |= (z > profile.max_range_m) | (z < profile.min_range_m)
        m = np.zeros((h, w), np.uint8)
        for _ in range(profile.blobs):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.ellipse(m, c, (int(rng.integers(2, max(3, w // 10))), int(rng.integers(2, max(3, h // 10)))),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
        holes |= m.astype(bool)
    if "shadow" in eff:
        # the occlusion band: left of each rising edge (far -> near going right), width = disparity jump
        near_left = np.zeros((h, w), bool)
        dz = np.where(valid, fx_b / np.maximum(z, 1e-6), 0.0)
        jump = np.zeros((h, w))
        jump[:, :-1] = dz[:, 1:] - dz[:, :-1]
        ys, xs = np.nonzero(jump > 1.0)
        for y, x in zip(ys, xs, strict=True):
            near_left[y, max(0, x - int(jump[y, x])) + 1:x + 1] = True
        holes |= near_left
    z = np.where(holes, 0.0, z)
    if "misalign" in eff:
        dx, dy = profile.misalign_px
        z = np.roll(z, (dy, dx), axis=(0, 1))
    return z


def to_convention(depth_m: np.ndarray, convention: str) -> np.ndarray:
    """Measured depth (metres, 0 = invalid) in one of ``CONVENTIONS`` (see the module docstring).

    The relative maps are made from the millimetre image, the same numbers ``mm16`` stores."""
    mm = np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)
    if convention == "mm16":
        return mm
    if convention == "m32":
        return np.where(mm > 0, mm.astype(np.float32) / 1000.0, np.nan).astype(np.float32)
    if convention in ("relative16", "relative8"):
        near = normalize_depth(mm, "metric")
        top = 65535 if convention == "relative16" else 255
        # normalize_depth maps invalid and the farthest valid pixels to 0 alike: so does this map
        return np.round(near * top).astype(np.uint16 if top == 65535 else np.uint8)
    raise ValueError(f"unknown depth convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
