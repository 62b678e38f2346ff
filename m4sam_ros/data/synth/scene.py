"""The synthetic world: scene sampling and frame rendering (see ``synth.py`` for the salient rule).

Five factors are drawn per scene, each from a named pool of values: ``shapes`` (object silhouette
families), ``textures`` (surface families and photo sets), ``layouts`` (background geometry),
``distractors`` (what is placed to fool one cue) and ``depth_noise`` (sensor effects). Training
draws every factor from its ``TRAIN`` pool; the held-out set of factor F draws F from its
``HELDOUT`` pool (values training never sees) and the rest from ``TRAIN``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from m4sam_ros.data.synth import depth as synth_depth
from m4sam_ros.data.synth import layouts as synth_layouts
from m4sam_ros.data.synth import shapes as synth_shapes
from m4sam_ros.data.synth import textures as synth_textures

DISTRACTORS_TRAIN = ("poster", "border_bar", "clutter")
DISTRACTORS_HELDOUT = ("twin", "border_blob", "hanging")
FACTORS = ("shapes", "textures", "layouts", "distractors", "depth_noise")
POOLS = {
    "shapes": (synth_shapes.TRAIN, synth_shapes.HELDOUT),
    "textures": (synth_textures.TRAIN, synth_textures.HELDOUT),
    "layouts": (synth_layouts.TRAIN, synth_layouts.HELDOUT),
    "distractors": (DISTRACTORS_TRAIN, DISTRACTORS_HELDOUT),
    "depth_noise": (synth_depth.EFFECTS_TRAIN, synth_depth.EFFECTS_HELDOUT),
}
TEX = 192  # side of a plane's texture tile (pixels)


def factor_pools(holdout: str | None = None) -> dict[str, tuple[str, ...]]:
    """The value pool of every factor: all training pools, except ``holdout``'s, which is held out."""
    if holdout is not None and holdout not in FACTORS:
        raise ValueError(f"unknown factor {holdout!r}; choose one of {', '.join(FACTORS)}")
    return {f: POOLS[f][1 if f == holdout else 0] for f in FACTORS}


@dataclass
class Sprite:
    """A flat textured silhouette facing the camera, with a little relief in depth."""

    mask: np.ndarray          # uint8 square
    tex: np.ndarray           # float32 square x 3
    size_px: float            # side of the square on screen at depth z0
    z0: float                 # metres
    centre0: np.ndarray       # pixel
    velocity: np.ndarray      # pixels / frame
    amp: np.ndarray
    freq: np.ndarray
    phase: np.ndarray
    spin: float               # degrees / frame
    depth_amp: float
    relief: float             # metres of bulge at the thickest point
    salient: bool
    rest: bool = False        # keeps its base on the support plane
    shiny: np.ndarray | None = None
    kind: str = ""

    def pose(self, t: int) -> tuple[np.ndarray, float, float]:
        c = self.centre0 + self.velocity * t + self.amp * np.sin(self.freq * 2 * np.pi * t + self.phase)
        z = self.z0 * (1.0 + self.depth_amp * np.sin(0.04 * t + self.phase[0]))
        return c, self.spin * t, z


@dataclass
class Scene:
    """Everything that stays fixed between cuts."""

    w: int
    h: int
    fx: float
    fy: float
    cx: float
    cy: float
    layout: synth_layouts.Layout
    plane_tex: list[np.ndarray]
    plane_scale: list[float]
    plane_light: list[float]
    sprites: list[Sprite]
    noise: synth_depth.NoiseProfile
    factors: dict[str, list[str]] = field(default_factory=dict)
    light_grad: np.ndarray = field(default_factory=lambda: np.zeros(3))
    cast: np.ndarray = field(default_factory=lambda: np.ones(3))
    blur: float = 0.0
    motion_blur: int = 0
    noise_sigma: float = 2.0
    jitter: float = 0.002
    pan: np.ndarray = field(default_factory=lambda: np.zeros(3))


def _distinct_colour(rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    for _ in range(20):
        c = rng.uniform(20, 235, 3)
        if np.abs(c - other).sum() > 150:
            return c
    return np.clip(255 - other, 0, 255)


def _warp(src: np.ndarray, centre: np.ndarray, angle: float, side: float, w: int, h: int, interp: int) -> np.ndarray:
    s = src.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, side / s)
    m[:, 2] += centre - np.array([s / 2, s / 2])
    return cv2.warpAffine(src, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def sample_scene(rng: np.random.Generator, w: int, h: int, pools: dict[str, tuple[str, ...]],
                 layout: str | None = None, distractors: tuple[str, ...] | None = None,
                 rest: bool | None = None) -> Scene:
    """Draws one scene from the factor pools (``layout`` / ``distractors`` force those values,
    ``rest`` whether the objects rest on the support surface, when the layout has one)."""
    hfov = np.radians(rng.uniform(55, 90))
    fx = (w / 2) / np.tan(hfov / 2)
    fy = fx * rng.uniform(0.98, 1.02)
    cx, cy = (w - 1) / 2 + rng.normal(0, w * 0.01), (h - 1) / 2 + rng.normal(0, h * 0.01)
    lay = synth_layouts.make(rng, layout or str(rng.choice(pools["layouts"])))
    rays = synth_layouts.pixel_rays(w, h, fx, fy, cx, cy)
    bg_depth, bg_index, _ = synth_layouts.render(lay, rays, lay.rotation())
    tex_pool = pools["textures"]
    bg_colour = rng.uniform(30, 225, 3)
    plane_tex, plane_scale, plane_light = [], [], []
    for _ in lay.planes:
        base = np.clip(bg_colour + rng.normal(0, 30, 3), 0, 255)
        plane_tex.append(synth_textures.make(rng, str(rng.choice(tex_pool)), TEX, TEX, base, rng.uniform(10, 45)))
        plane_scale.append(rng.uniform(80, 400))   # texture pixels per metre
        plane_light.append(rng.uniform(0.6, 1.15))
    finite = np.isfinite(bg_depth)
    factors: dict[str, list[str]] = {"layouts": [lay.family], "shapes": [], "textures": [], "distractors": []}

    def bg_at(p: np.ndarray) -> float:
        x, y = int(np.clip(p[0], 0, w - 1)), int(np.clip(p[1], 0, h - 1))
        return float(bg_depth[y, x]) if finite[y, x] else 8.0

    force_rest = rest
    sprites: list[Sprite] = []
    n_obj = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
    obj_looks = []
    for k in range(n_obj):
        shape = str(rng.choice(pools["shapes"]))
        tfam = str(rng.choice(tex_pool))
        colour = _distinct_colour(rng, bg_colour)
        side = min(w, h) * rng.uniform(0.35, 0.7) / np.sqrt(n_obj)
        res = int(np.clip(side * 1.5, 32, 256))
        mask = synth_shapes.draw(rng, shape, res)
        tex = synth_textures.make(rng, tfam, res, res, colour, rng.uniform(15, 60))
        centre = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.3, 0.7) * h])
        if n_obj > 1:
            centre[0] = (k + 0.5) / n_obj * w + rng.normal(0, w * 0.05)
        rest = lay.support_plane is not None and (rng.random() < 0.75 if force_rest is None else force_rest)
        behind = bg_at(centre)
        z0 = behind * rng.uniform(0.35, 0.75) if not rest else behind
        exit_ = rng.random() < (0.25 if force_rest is None else 0.0)   # drifts out of the frame
        vel = rng.normal(0, 0.6, 2) if not exit_ else np.array([rng.choice([-1, 1]) * w / 40.0, 0.0])
        shiny = None
        if rng.random() < 0.3:
            shiny = np.zeros((res, res), np.uint8)
            cv2.circle(shiny, (int(rng.integers(res // 4, 3 * res // 4)), int(rng.integers(res // 4, 3 * res // 4))),
                       max(2, res // int(rng.integers(6, 12))), 255, -1)
            tex = np.where(shiny[..., None] > 0, 0.3 * tex + 0.7 * 250.0, tex).astype(np.float32)
        sprites.append(Sprite(mask, tex, side, z0, centre, vel, np.array([rng.uniform(0.05, 0.2) * w,
                              rng.uniform(0.03, 0.12) * h]), rng.uniform(0.01, 0.05, 2), rng.uniform(0, 2 * np.pi, 2),
                              rng.uniform(-3.0, 3.0), rng.uniform(0.0, 0.2), rng.uniform(0.03, 0.15), True, rest,
                              shiny, shape))
        obj_looks.append((shape, tfam, colour))
        factors["shapes"].append(shape)
        factors["textures"].append(tfam)
    kinds = distractors if distractors is not None else tuple(
        str(d) for d in rng.choice(pools["distractors"], int(rng.integers(1, 3)), replace=False))
    for kind in kinds:
        factors["distractors"].append(kind)
        shape, tfam, colour = obj_looks[int(rng.integers(0, len(obj_looks)))]
        if kind in ("poster", "twin"):
            # the object's look at background depth: a flat picture, or a solid twin standing there
            for _ in range(int(rng.integers(1, 3))):
                side = min(w, h) * rng.uniform(0.2, 0.45)
                res = int(np.clip(side * 1.5, 32, 256))
                c = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.15, 0.6) * h])
                sprites.append(Sprite(synth_shapes.draw(rng, shape, res),
                                      synth_textures.make(rng, tfam, res, res, colour, rng.uniform(15, 60)), side,
                                      bg_at(c) * (0.999 if kind == "poster" else 0.97), c, np.zeros(2), np.zeros(2),
                                      np.zeros(2), np.zeros(2), 0.0, 0.0, 0.0 if kind == "poster" else 0.08, False,
                                      kind=kind))
        elif kind == "clutter":
            for _ in range(int(rng.integers(2, 6))):
                side = min(w, h) * rng.uniform(0.06, 0.15)
                res = int(np.clip(side * 1.5, 24, 96))
                c = np.array([rng.uniform(0, w), rng.uniform(0.2, 1.0) * h])
                sprites.append(Sprite(synth_shapes.draw(rng, str(rng.choice(pools["shapes"])), res),
                                      synth_textures.make(rng, str(rng.choice(tex_pool)), res, res,
                                                          rng.uniform(20, 235, 3), rng.uniform(10, 40)),
                                      side, bg_at(c) * 0.98, c, np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2),
                                      0.0, 0.0, 0.02, False, kind=kind))
        elif kind in ("border_bar", "border_blob", "hanging"):
            # near, background-like, cut by the image border
            z = max(0.25, min(s.z0 for s in sprites if s.salient) * rng.uniform(0.4, 0.8))
            res = 128
            base = np.clip(bg_colour + rng.normal(0, 20, 3), 0, 255)
            tex = synth_textures.make(rng, str(rng.choice(tex_pool)), res, res, base, rng.uniform(10, 30))
            m = np.zeros((res, res), np.uint8)
            if kind == "border_bar":
                m[:, int(res * 0.4):int(res * rng.uniform(0.55, 0.7))] = 255
                side = h * 1.3
                c = np.array([rng.choice([0.0, w]) + rng.uniform(-0.05, 0.05) * w, h / 2])
                vel = np.array([rng.choice([0.0, 0.0, 1.0]) * w / 30.0 * (1 if c[0] == 0 else -1), 0.0])
            elif kind == "border_blob":
                m = synth_shapes.blob(rng, res)
                side = min(w, h) * rng.uniform(0.5, 0.9)
                c = np.array([rng.choice([0.0, w]), rng.choice([0.0, h])], np.float64)
                vel = np.zeros(2)
            else:
                m[:, int(res * 0.47):int(res * 0.53)] = 255
                m[int(res * 0.7):, int(res * 0.35):int(res * 0.65)] = 255   # a lamp on a cord
                side = h * rng.uniform(0.6, 1.0)
                c = np.array([rng.uniform(0.1, 0.9) * w, side * 0.2])
                vel = np.zeros(2)
            sprites.append(Sprite(m, tex, side, z, c, vel, np.zeros(2), np.zeros(2), np.zeros(2), 0.0, 0.0, 0.02,
                                  False, kind=kind))
        else:
            raise ValueError(f"unknown distractor {kind!r}; known: {DISTRACTORS_TRAIN + DISTRACTORS_HELDOUT}")
    noise = synth_depth.sample_profile(rng, held_out=pools["depth_noise"] == synth_depth.EFFECTS_HELDOUT)
    factors["depth_noise"] = list(noise.effects)
    scene = Scene(w, h, fx, fy, cx, cy, lay, plane_tex, plane_scale, plane_light, sprites, noise, factors)
    scene.light_grad = rng.normal(0, 0.15, 3)
    scene.cast = rng.uniform(0.85, 1.15, 3)
    scene.blur = float(rng.choice([0.0, 0.0, rng.uniform(0.5, 1.5)]))
    scene.motion_blur = int(rng.choice([0, 0, 0, 3, 5]))
    scene.noise_sigma = rng.uniform(1.0, 6.0)
    scene.jitter = rng.uniform(0.0, 0.004)
    scene.pan = rng.normal(0, 0.002, 3)
    return scene


def render_frame(scene: Scene, rng: np.random.Generator, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``t`` of a scene: RGB uint8, measured depth (metres, 0 = invalid), salient mask (bool)."""
    w, h = scene.w, scene.h
    lay = scene.layout
    rays = synth_layouts.pixel_rays(w, h, scene.fx, scene.fy, scene.cx, scene.cy)
    rot = lay.rotation(scene.pan * t + rng.normal(0, scene.jitter, 3))
    depth, index, uv = synth_layouts.render(lay, rays, rot)
    rgb = np.zeros((h, w, 3), np.float32)
    for i, tex in enumerate(scene.plane_tex):
        sel = index == i
        if not sel.any():
            continue
        mx = (uv[..., 0] * scene.plane_scale[i]).astype(np.float32)
        my = (uv[..., 1] * scene.plane_scale[i]).astype(np.float32)
        mx, my = np.mod(mx, TEX - 1), np.mod(my, TEX - 1)
        sampled = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        rgb[sel] = sampled[sel] * scene.plane_light[i]
    depth = np.where(index >= 0, depth, np.inf)
    bg = depth.copy()
    gt = np.zeros((h, w), bool)
    shiny = np.zeros((h, w), bool)
    support = lay.support_plane
    poses = []
    for s in scene.sprites:
        c, ang, z = s.pose(t)
        if s.rest and support is not None:
            base = c + np.array([0.0, s.size_px * s.z0 / z * 0.35])
            x, y = int(np.clip(base[0], 0, w - 1)), int(np.clip(base[1], 0, h - 1))
            if index[y, x] == support:
                z = float(bg[y, x])
        poses.append((z, c, ang, s))
    for z, c, ang, s in sorted(poses, key=lambda p: -p[0]):   # far to near
        side = s.size_px * s.z0 / max(z, 1e-3)
        m = _warp(s.mask, c, ang, side, w, h, cv2.INTER_NEAREST) > 127
        if not m.any():
            continue
        if s.salient:
            # the rule: the object stands out in depth from what is behind it
            behind = bg[m & np.isfinite(bg)]
            if behind.size:
                z = min(z, 0.92 * float(np.median(behind)))
        tex = _warp(s.tex, c, ang, side, w, h, cv2.INTER_LINEAR)
        dist = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 3)
        bulge = dist / max(float(dist.max()), 1.0) * s.relief
        zmap = z - bulge
        draw = m & (zmap < depth)
        rgb[draw] = tex[draw] * (1.0 + 0.15 * np.sin(0.02 * t))
        depth[draw] = zmap[draw]
        gt = np.where(draw, s.salient, gt)
        if s.shiny is not None:
            shiny |= draw & (_warp(s.shiny, c, ang, side, w, h, cv2.INTER_NEAREST) > 127)
    # lighting, blur and colour sensor noise
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = 1.0 + scene.light_grad[0] * (xx / w - 0.5) + scene.light_grad[1] * (yy / h - 0.5)
    vign = 1.0 - 0.25 * abs(scene.light_grad[2]) * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 4
    rgb = rgb * (grad * vign)[..., None] * scene.cast * rng.uniform(0.94, 1.06)
    if scene.blur > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), scene.blur)
    if scene.motion_blur:
        k = np.zeros((scene.motion_blur, scene.motion_blur), np.float32)
        k[scene.motion_blur // 2] = 1.0 / scene.motion_blur
        rgb = cv2.filter2D(rgb, -1, k)
    rgb = rgb + rng.normal(0, scene.noise_sigma, rgb.shape)
    rgb8 = np.clip(rgb, 0, 255).astype(np.uint8)
    measured = synth_depth.apply_noise(rng, depth, rgb8, scene.fx, scene.noise, shiny=shiny)
    return rgb8, measured, gt
