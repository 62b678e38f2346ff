"""`m4sam-synth`: a domain-randomised synthetic RGB-D world with ground truth.

**The salient-object rule** (what the ground truth marks, and what every scene is built around):
the salient objects are the one to three objects that stand out from what is behind them in *both*
cues at once: in depth (nearer than the background surface behind them, by at least 8 %) and in
appearance (their own colour and texture, distinct from the surfaces around them). Everything that
stands out in one cue only is background, and every scene carries such distractors:

- look-alikes at background depth (``poster``: a flat picture of the object on the wall or table;
  held out: ``twin``, a solid copy standing at background depth) defeat colour/texture alone;
- near surfaces that look like the background and are cut by the image border (``border_bar``;
  held out: ``border_blob``, ``hanging``), and floors, tables, ceilings or corridor walls that come
  nearer than the object at the image edges, defeat "the nearest region";
- ``clutter``: small objects lying on the background surfaces.

A salient object may be partly hidden by a nearer distractor or leave the frame; its visible pixels
are the ground truth.

The world (one value per factor and scene, drawn from named pools; ``synth_scene.FACTORS``):

- shapes (``synth_shapes``): polygons, stars, blobs, thin bars and arcs, shapes with holes, multi-part
  objects; scale, in-plane rotation, motion in the image and in depth, drift out of the frame;
- layouts (``synth_layouts``): a pinhole camera of random field of view (55-90 degrees) and pose in a
  set of planes at any slant: wall + floor, table tops seen from above, floors seen steeply, slanted
  walls, rooms with ceilings (held out: corridors, shelves, room corners); objects rest on the
  support surface or float (held in a hand);
- textures (``synth_textures``): procedural families and crops of natural photographs shipped by
  installed wheels; per-plane shading, colour cast, illumination gradient, vignetting, flicker,
  defocus and motion blur, colour sensor noise;
- depth (``synth_depth``): RealSense-like noise: disparity quantisation growing with distance, holes
  at depth edges and on dark or shiny surfaces, flying pixels, range and blob dropouts (held out:
  stereo occlusion shadows, low-resolution depth, misregistration).

Training draws every factor from its training pool; ``--holdout F`` draws factor F from values
training never sees (``m4sam-heldout`` writes and scores those sets). Everything comes from one
``numpy.random.Generator``: the same seed and arguments give the same arrays. Outputs: the ViDSOD-100
layout (``rgb/*.jpg``, ``depth/*`` in a chosen convention, ``gt/*.png``) and/or a rosbag2 with the
RealSense topics, both written atomically (temporary name, renamed at the end).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from m4sam_ros.data.synth.depth import CONVENTIONS, to_convention
from m4sam_ros.data.synth.scene import FACTORS, factor_pools, render_frame, sample_scene
from m4sam_ros.util.atomic import building_dir
from m4sam_ros.util.cli import DefaultsHelpFormatter

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
    factors: list[dict[str, list[str]]] = field(default_factory=list)  # factor values, one dict per scene

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


def generate_video(seed: int, num_frames: int = 60, width: int = 320, height: int = 240, fps: float = 15.0,
                   scene_cuts: int = 0, holdout: str | None = None, layout: str | None = None,
                   distractors: tuple[str, ...] | None = None, rest: bool | None = None) -> SyntheticVideo:
    """Draws one video of the world. ``scene_cuts`` new scenes start at evenly spaced frames;
    ``holdout`` names the factor whose values come from its held-out pool (None: training world);
    ``layout`` / ``distractors`` force those values and ``rest`` makes the objects rest on the
    support surface and stay in view (the demo's table-top scene)."""
    if num_frames < 1 or width < 32 or height < 32:
        raise ValueError(f"need num_frames >= 1 and an image of at least 32x32, got {num_frames} frames "
                         f"of {width}x{height}")
    pools = factor_pools(holdout)
    rng = np.random.default_rng(seed)
    w, h = width, height
    cut_frames = [int(round(num_frames * (i + 1) / (scene_cuts + 1))) for i in range(scene_cuts)]
    cuts = [c for c in cut_frames if 0 < c < num_frames]
    scene = sample_scene(rng, w, h, pools, layout, distractors, rest)
    video = SyntheticVideo(fx=scene.fx, fy=scene.fy, cx=scene.cx, cy=scene.cy, fps=fps, cuts=cuts,
                           factors=[scene.factors])
    t0 = 0
    for t in range(num_frames):
        if t in cuts:
            # a cut is a new scene seen by the same camera (same intrinsics)
            scene, t0 = sample_scene(rng, w, h, pools, layout, distractors, rest), t
            scene.fx, scene.fy, scene.cx, scene.cy = video.fx, video.fy, video.cx, video.cy
            video.factors.append(scene.factors)
        rgb, depth_m, gt = render_frame(scene, rng, t - t0)
        video.rgb.append(rgb)
        video.depth.append(to_convention(depth_m, "mm16"))
        video.gt.append(np.where(gt, 255, 0).astype(np.uint8))
    return video


# -- writers --------------------------------------------------------------------------------------

def write_vidsod_layout(video: SyntheticVideo, video_dir: str | Path, depth_convention: str = "mm16") -> Path:
    """Writes ``video_dir/{rgb/*.jpg, depth/*, gt/*.png}`` atomically. Depth: ``mm16`` 16-bit PNG
    millimetres (read as ``--dataset synthetic``), ``m32`` float TIFF metres (also ``synthetic``),
    ``relative16`` / ``relative8`` benchmark-style nearness PNGs (read as ``--dataset vidsod``)."""
    if depth_convention not in CONVENTIONS:
        raise ValueError(f"unknown depth convention {depth_convention!r}; use one of {', '.join(CONVENTIONS)}")
    final = Path(video_dir)
    ext = ".tiff" if depth_convention == "m32" else ".png"
    with building_dir(final) as built:
        for sub in ("rgb", "depth", "gt"):
            (built / sub).mkdir(parents=True)
        for i, (rgb, depth, gt) in enumerate(zip(video.rgb, video.depth, video.gt, strict=True)):
            stem = f"{i:05d}"
            d = to_convention(depth.astype(np.float64) / 1000.0, depth_convention)
            ok = cv2.imwrite(str(built / "rgb" / f"{stem}.jpg"), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            ok &= cv2.imwrite(str(built / "depth" / f"{stem}{ext}"), d)
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

    from m4sam_ros.msgs.image_codec import numpy_to_image

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


def build_parser() -> argparse.ArgumentParser:
    """The m4sam-synth command line (test/test_cli_help.py reads every flag's help)."""
    p = argparse.ArgumentParser(prog="m4sam-synth", description="Generate synthetic RGB-D videos with ground truth.",
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--out", help="dataset root: writes OUT/<split>/<video>/{rgb,depth,gt} (ViDSOD-100 layout)")
    p.add_argument("--bag", help="also (or only) write the first video as a rosbag2 here")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="bag storage (.mcap or .db3)")
    p.add_argument("--videos", type=int, default=1, help="videos to generate")
    p.add_argument("--frames", type=int, default=60, help="frames per video")
    p.add_argument("--width", type=int, default=320, help="frame width in pixels")
    p.add_argument("--height", type=int, default=240, help="frame height in pixels")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate (bag stamps)")
    p.add_argument("--seed", type=int, default=0, help="base seed; video i uses seed*1000+i")
    p.add_argument("--split", default="train", help="split folder under --out")
    p.add_argument("--scene-cuts", type=int, default=0, help="number of scene cuts per video")
    p.add_argument("--holdout", choices=FACTORS, help="draw this factor from its held-out values (test sets)")
    p.add_argument("--layout", help="force one layout family (e.g. tabletop)")
    p.add_argument("--depth-convention", choices=CONVENTIONS, default="mm16",
                   help="depth files: mm16 / m32 (read as --dataset synthetic), relative16 / relative8 "
                   "(benchmark-style maps, read as --dataset vidsod)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not args.out and not args.bag:
        p.error("give --out DIR and/or --bag PATH")
    try:
        for i in range(args.videos):
            video = generate_video(video_seed(args.seed, i), args.frames, args.width, args.height, args.fps,
                                   args.scene_cuts, holdout=args.holdout, layout=args.layout)
            if args.out:
                d = write_vidsod_layout(video, Path(args.out) / args.split / f"synth_{video_seed(args.seed, i):06d}",
                                        args.depth_convention)
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
