"""Synthetic RGB-D videos with ground truth: for tests, the demo and the demo model.

A scene is built so that no single cue finds the salient object:

- a textured wall at far depth, and a floor whose depth comes near the camera at the bottom of the
  image (near, but background texture: defeats "nearest region");
- one salient object nearer than the wall, with its own colour and texture, moving, turning and
  changing scale, sometimes partly hidden by a passing pole;
- a "poster" on the wall with the object's colour and texture but at wall depth (defeats colour);
- depth noise that grows with distance, holes (0 = invalid) in blobs and along object edges, and
  small camera jitter; optionally scene cuts (everything re-drawn).

Everything is drawn from one ``numpy.random.Generator``: the same seed gives the same arrays.
Outputs: the ViDSOD-100 layout (``rgb/*.jpg``, ``depth/*.png`` 16-bit mm, ``gt/*.png``) and/or a
rosbag2 with the RealSense topics, both written atomically (temporary name, renamed at the end).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from m4sam_ros.atomic import building_dir

COLOR_TOPIC = "/camera/camera/color/image_raw"
DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"
COLOR_INFO_TOPIC = "/camera/camera/color/camera_info"
DEPTH_INFO_TOPIC = "/camera/camera/aligned_depth_to_color/camera_info"
COLOR_FRAME_ID = "camera_color_optical_frame"
DEPTH_STAMP_OFFSET_NS = 3_000_000  # depth arrives a little after colour, as on a real camera


@dataclass
class SyntheticVideo:
    """One generated video: per-frame arrays plus what a camera would report."""

    rgb: list[np.ndarray] = field(default_factory=list)     # uint8 HxWx3, RGB order
    depth: list[np.ndarray] = field(default_factory=list)   # uint16 HxW, millimetres, 0 = invalid
    gt: list[np.ndarray] = field(default_factory=list)      # uint8 HxW, {0, 255}
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    fps: float = 15.0
    cuts: list[int] = field(default_factory=list)           # frame indices where a new scene starts

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        h, w = self.rgb[0].shape[:2]
        return w, h

    def k(self) -> list[float]:
        """Row-major 3x3 pinhole intrinsics, as in sensor_msgs/CameraInfo.k."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """Smooth colour noise around ``base`` with a few oriented stripes: a cheap, varied texture."""
    cells = max(2, int(rng.integers(3, 9)))
    low = rng.normal(0.0, 1.0, (cells, cells, 3)).astype(np.float32)
    low = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0.0, 0.35, (h, w, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 24)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)[..., None]
    tex = base[None, None, :] + contrast * (0.6 * low + 0.25 * fine + 0.35 * stripes * rng.uniform(0.2, 1.0))
    return np.clip(tex, 0, 255).astype(np.float32)


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random blob-like object silhouette (ellipse, rounded box or star-ish polygon) in a square."""
    m = np.zeros((size, size), np.uint8)
    c = size // 2
    kind = int(rng.integers(0, 3))
    if kind == 0:
        axes = (int(size * rng.uniform(0.25, 0.45)), int(size * rng.uniform(0.3, 0.48)))
        cv2.ellipse(m, (c, c), axes, 0, 0, 360, 255, -1)
    elif kind == 1:
        hw, hh = int(size * rng.uniform(0.22, 0.4)), int(size * rng.uniform(0.3, 0.46))
        cv2.rectangle(m, (c - hw, c - hh), (c + hw, c + hh), 255, -1)
        m = cv2.GaussianBlur(m, (0, 0), size * 0.06)
        m = np.where(m > 127, 255, 0).astype(np.uint8)
    else:
        n = int(rng.integers(5, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = size * rng.uniform(0.25, 0.47, n)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 255)
    return m


class _Scene:
    """Everything that stays fixed between cuts."""

    def __init__(self, rng: np.random.Generator, w: int, h: int) -> None:
        self.w, self.h = w, h
        pad = 16
        self.pad = pad
        bg_color = rng.uniform(40, 215, 3)
        self.bg = _texture(rng, h + 2 * pad, w + 2 * pad, bg_color, contrast=rng.uniform(25, 45))
        self.wall_mm = rng.uniform(3000, 4500)
        self.floor_row = rng.uniform(0.62, 0.8) * h    # floor starts here, comes near at the bottom
        self.floor_near_mm = rng.uniform(900, 1400)
        obj_color = np.clip(bg_color + rng.choice([-1, 1], 3) * rng.uniform(60, 110, 3), 0, 255)
        self.obj_size = int(min(w, h) * rng.uniform(0.45, 0.6))
        self.obj_tex = _texture(rng, self.obj_size, self.obj_size, obj_color, contrast=rng.uniform(20, 40))
        self.obj_mask = _shape_mask(rng, self.obj_size)
        self.obj_mm = rng.uniform(900, 1700)
        self.path_amp = np.array([rng.uniform(0.12, 0.28) * w, rng.uniform(0.08, 0.18) * h])
        self.path_freq = rng.uniform(0.02, 0.06, 2)
        self.path_phase = rng.uniform(0, 2 * np.pi, 2)
        self.center0 = np.array([rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.55) * h])
        self.spin = rng.uniform(-3.0, 3.0)        # degrees per frame
        self.scale_amp = rng.uniform(0.1, 0.25)
        # a poster on the wall: the object's look, the wall's depth
        self.poster_mask = _shape_mask(rng, self.obj_size)
        self.poster_tex = _texture(rng, self.obj_size, self.obj_size, obj_color, contrast=rng.uniform(20, 40))
        self.poster_center = np.array([rng.choice([0.18, 0.82]) * w, rng.uniform(0.25, 0.45) * h])
        self.poster_scale = rng.uniform(0.5, 0.8)
        # a pole that sometimes passes in front of the object (near, background-coloured)
        self.pole_every = int(rng.integers(25, 45))
        self.pole_width = int(w * rng.uniform(0.05, 0.09))
        self.pole_mm = rng.uniform(500, 800)
        self.pole_tex = _texture(rng, h, self.pole_width, bg_color * 0.85, contrast=20)


def _warp(src: np.ndarray, center: np.ndarray, angle: float, scale: float, w: int, h: int,
          interp: int) -> np.ndarray:
    s = src.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, scale)
    m[:, 2] += center - np.array([s / 2, s / 2])
    return cv2.warpAffine(src, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def generate_video(seed: int, num_frames: int = 60, width: int = 320, height: int = 240, fps: float = 15.0,
                   scene_cuts: int = 0) -> SyntheticVideo:
    """Draws one video. ``scene_cuts`` new scenes start at evenly spaced frames."""
    if num_frames < 1 or width < 32 or height < 32:
        raise ValueError(f"need num_frames >= 1 and an image of at least 32x32, got {num_frames} frames "
                         f"of {width}x{height}")
    rng = np.random.default_rng(seed)
    w, h = width, height
    f = 0.9 * w  # ~60 degree horizontal field of view, like a RealSense D435 colour camera
    video = SyntheticVideo(fx=f, fy=f, cx=(w - 1) / 2, cy=(h - 1) / 2, fps=fps)
    cut_frames = [int(round(num_frames * (i + 1) / (scene_cuts + 1))) for i in range(scene_cuts)]
    video.cuts = [c for c in cut_frames if 0 < c < num_frames]
    scene = _Scene(rng, w, h)
    yy = np.arange(h, dtype=np.float32)[:, None]
    t0 = 0
    for t in range(num_frames):
        if t in video.cuts:
            scene, t0 = _Scene(rng, w, h), t
        tt = t - t0
        jitter = rng.normal(0, 1.2, 2)
        ox, oy = (np.clip(np.round(scene.pad + jitter), 0, 2 * scene.pad)).astype(int)
        rgb = scene.bg[oy:oy + h, ox:ox + w].copy()
        floor = np.clip((yy - scene.floor_row) / max(h - scene.floor_row, 1), 0, 1)
        depth = np.broadcast_to(scene.wall_mm + (scene.floor_near_mm - scene.wall_mm) * floor, (h, w)).copy()
        shift = np.array([ox - scene.pad, oy - scene.pad], np.float64)
        # poster: object look, wall depth
        pc = scene.poster_center - shift
        pmask = _warp(scene.poster_mask, pc, 0.0, scene.poster_scale, w, h, cv2.INTER_NEAREST) > 127
        ptex = _warp(scene.poster_tex, pc, 0.0, scene.poster_scale, w, h, cv2.INTER_LINEAR)
        rgb[pmask] = ptex[pmask]
        # the salient object
        center = scene.center0 + scene.path_amp * np.sin(scene.path_freq * 2 * np.pi * tt + scene.path_phase) - shift
        angle = scene.spin * tt
        scale = 1.0 + scene.scale_amp * np.sin(0.05 * tt + scene.path_phase[0])
        omask = _warp(scene.obj_mask, center, angle, scale, w, h, cv2.INTER_NEAREST) > 127
        otex = _warp(scene.obj_tex, center, angle, scale, w, h, cv2.INTER_LINEAR)
        rgb[omask] = otex[omask]
        # slight bulge so the object is not a flat card
        dist = cv2.distanceTransform(omask.astype(np.uint8), cv2.DIST_L2, 3)
        bulge = dist / max(float(dist.max()), 1.0) * 120.0
        obj_depth = scene.obj_mm * (1.0 + 0.08 * np.sin(0.03 * tt)) - bulge
        depth[omask] = obj_depth[omask]
        gt = omask.copy()
        # the passing pole, in front of everything
        phase = (tt % scene.pole_every) / scene.pole_every
        if (tt // scene.pole_every) % 2 == 1:
            px = int(-scene.pole_width + phase * (w + 2 * scene.pole_width))
            x0, x1 = max(px, 0), min(px + scene.pole_width, w)
            if x1 > x0:
                rgb[:, x0:x1] = scene.pole_tex[:, x0 - px:x1 - px]
                depth[:, x0:x1] = scene.pole_mm
                gt[:, x0:x1] = False
        # illumination flicker and sensor noise
        rgb = rgb * rng.uniform(0.93, 1.07) + rng.normal(0, 3.0, rgb.shape)
        depth = depth + rng.normal(0, 1.0, depth.shape) * (0.0025 * depth * depth / 1000.0)
        # holes: blobs and object edges
        holes = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.ellipse(holes, c, (int(rng.integers(3, w // 12)), int(rng.integers(3, h // 12))),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
        edge = cv2.morphologyEx(omask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        holes |= edge & (rng.random((h, w)) < 0.5)
        depth[holes.astype(bool)] = 0
        video.rgb.append(np.clip(rgb, 0, 255).astype(np.uint8))
        video.depth.append(np.clip(depth, 0, 65535).astype(np.uint16))
        video.gt.append(np.where(gt, 255, 0).astype(np.uint8))
    return video


# -- writers --------------------------------------------------------------------------------------

def write_vidsod_layout(video: SyntheticVideo, video_dir: str | Path) -> Path:
    """Writes ``video_dir/{rgb/*.jpg, depth/*.png (16-bit mm), gt/*.png}`` atomically."""
    final = Path(video_dir)
    with building_dir(final) as built:
        for sub in ("rgb", "depth", "gt"):
            (built / sub).mkdir(parents=True)
        for i, (rgb, depth, gt) in enumerate(zip(video.rgb, video.depth, video.gt, strict=True)):
            stem = f"{i:05d}"
            ok = cv2.imwrite(str(built / "rgb" / f"{stem}.jpg"), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            ok &= cv2.imwrite(str(built / "depth" / f"{stem}.png"), depth)
            ok &= cv2.imwrite(str(built / "gt" / f"{stem}.png"), gt)
            if not ok:
                raise OSError(f"could not write frame {stem} under {final}")
    return final


def frame_stamps_ns(video: SyntheticVideo, start_ns: int = 1_700_000_000_000_000_000) -> list[int]:
    """Colour stamps at the video's frame rate (depth is ``DEPTH_STAMP_OFFSET_NS`` later)."""
    period = int(round(1e9 / video.fps))
    return [start_ns + i * period for i in range(len(video))]


def write_bag(video: SyntheticVideo, path: str | Path, storage: str = "mcap",
              start_ns: int = 1_700_000_000_000_000_000) -> Path:
    """Writes the video as a RealSense-like rosbag2 (rgb8 colour, 16UC1 aligned depth, camera_info)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from m4sam_ros.image_codec import numpy_to_image

    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"unknown storage {storage!r}; use 'mcap' or 'sqlite3'")
    ts = get_typestore(Stores.ROS2_KILTED)
    Image = ts.types["sensor_msgs/msg/Image"]
    CameraInfo = ts.types["sensor_msgs/msg/CameraInfo"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    RegionOfInterest = ts.types["sensor_msgs/msg/RegionOfInterest"]
    final = Path(path)
    w, h = video.size

    def header(ns: int) -> object:
        return Header(stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=COLOR_FRAME_ID)

    def info(ns: int) -> object:
        k = np.array(video.k(), np.float64)
        p = np.array([video.fx, 0, video.cx, 0, 0, video.fy, video.cy, 0, 0, 0, 1, 0], np.float64)
        return CameraInfo(header=header(ns), height=h, width=w, distortion_model="plumb_bob",
                          d=np.zeros(5, np.float64), k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0,
                          binning_y=0, roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0,
                                                            do_rectify=False))

    with building_dir(final) as built:
        with Writer(built, version=9, storage_plugin=plugins[storage]) as writer:
            conns = {t: writer.add_connection(t, mt, typestore=ts) for t, mt in (
                (COLOR_TOPIC, "sensor_msgs/msg/Image"), (DEPTH_TOPIC, "sensor_msgs/msg/Image"),
                (COLOR_INFO_TOPIC, "sensor_msgs/msg/CameraInfo"), (DEPTH_INFO_TOPIC, "sensor_msgs/msg/CameraInfo"))}
            for i, ns in enumerate(frame_stamps_ns(video, start_ns)):
                dns = ns + DEPTH_STAMP_OFFSET_NS
                color = numpy_to_image(video.rgb[i], "rgb8", Image, header=header(ns))
                depth = numpy_to_image(video.depth[i], "16UC1", Image, header=header(dns))
                writer.write(conns[COLOR_TOPIC], ns, ts.serialize_cdr(color, "sensor_msgs/msg/Image"))
                writer.write(conns[COLOR_INFO_TOPIC], ns, ts.serialize_cdr(info(ns), "sensor_msgs/msg/CameraInfo"))
                writer.write(conns[DEPTH_TOPIC], dns, ts.serialize_cdr(depth, "sensor_msgs/msg/Image"))
                writer.write(conns[DEPTH_INFO_TOPIC], dns, ts.serialize_cdr(info(dns), "sensor_msgs/msg/CameraInfo"))
    return final


def video_seed(base_seed: int, index: int) -> int:
    """The seed of the ``index``-th video of a set (distinct sets never share a seed for small sets)."""
    return base_seed * 1000 + index


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="m4sam-synth", description="Generate synthetic RGB-D videos with ground truth.")
    p.add_argument("--out", help="dataset root: writes OUT/<split>/<video>/{rgb,depth,gt} (ViDSOD-100 layout)")
    p.add_argument("--bag", help="also (or only) write the first video as a rosbag2 here")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="bag storage (.mcap or .db3)")
    p.add_argument("--videos", type=int, default=1)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--seed", type=int, default=0, help="base seed; video i uses seed*1000+i")
    p.add_argument("--split", default="train")
    p.add_argument("--scene-cuts", type=int, default=0, help="number of scene cuts per video")
    args = p.parse_args(argv)
    if not args.out and not args.bag:
        p.error("give --out DIR and/or --bag PATH")
    try:
        for i in range(args.videos):
            video = generate_video(video_seed(args.seed, i), args.frames, args.width, args.height, args.fps,
                                   args.scene_cuts)
            if args.out:
                d = write_vidsod_layout(video, Path(args.out) / args.split / f"synth_{video_seed(args.seed, i):06d}")
                print(f"wrote {d} ({len(video)} frames)")
            if args.bag and i == 0:
                b = write_bag(video, args.bag, args.storage)
                print(f"wrote {b} ({len(video)} colour/depth pairs)")
    except (OSError, ValueError) as exc:
        print(f"m4sam-synth: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
