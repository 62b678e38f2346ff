"""Readers for the RGB-D VSOD benchmarks' on-disk layouts (and the synthetic one).

| dataset   | layout                                                        | depth    |
|-----------|---------------------------------------------------------------|----------|
| rdvs      | ``ROOT/{train,test}/<video>/{rgb,Depth,ground-truth}/``       | relative |
| vidsod    | ``ROOT/{train,test}/<video>/{rgb,depth,gt}/``                 | relative |
| dvisal    | ``ROOT/data/<video>/{RGB,Depth,GT}/`` + ``ROOT/<split>.txt``  | relative |
| synthetic | the ViDSOD layout written by ``m4sam-synth``                  | metric   |

Frames are matched across folders by file stem (extensions may differ) and ordered naturally.
Every colour frame needs a depth frame; ground truth may be sparse (RDVS), then ``gt`` is None.
Any inconsistency raises :class:`DatasetError` naming the file or folder: nothing is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from m4sam_ros.model.depth import DepthKind

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
DATASETS = ("rdvs", "vidsod", "dvisal", "synthetic")


class DatasetError(ValueError):
    """A dataset tree that does not match its layout; the message names the path."""


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray            # uint8 HxWx3, RGB order
    depth: np.ndarray          # as stored (uint8/uint16/float)
    gt: np.ndarray | None      # uint8 HxW, or None where not annotated
    stem: str


@dataclass(frozen=True)
class _Layout:
    rgb: str
    depth: str
    gt: str
    depth_kind: DepthKind
    gt_sparse: bool


LAYOUTS = {
    "rdvs": _Layout("rgb", "Depth", "ground-truth", "relative", True),
    "vidsod": _Layout("rgb", "depth", "gt", "relative", False),
    "dvisal": _Layout("RGB", "Depth", "GT", "relative", True),
    "synthetic": _Layout("rgb", "depth", "gt", "metric", False),
}


def natural_key(text: str) -> list:
    """Sorts 'frame2' before 'frame10'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"missing folder {folder}")
    out: dict[str, Path] = {}
    for p in folder.iterdir():
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            if p.stem in out:
                raise DatasetError(f"two images with stem {p.stem!r} in {folder}: {out[p.stem].name}, {p.name}")
            out[p.stem] = p
    return out


def _truncation(data: bytes) -> str | None:
    """Why a JPEG or PNG file is cut short (None: it ends where its format says). cv2.imread
    decodes a truncated JPEG as grey with only a warning on stderr, so the end is checked here."""
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-64:]:
        return "a JPEG without its end-of-image marker"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        return "a PNG without its IEND chunk"
    return None


def read_image(path: Path, flags: int) -> np.ndarray:
    """An image file, strictly: a missing, empty, undecodable or truncated file raises
    DatasetError naming it (never a silently grey frame)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    if not data:
        raise DatasetError(f"cannot read image {path}: the file is empty")
    cut = _truncation(data)
    if cut is not None:
        raise DatasetError(f"image {path} is truncated ({len(data)} B, {cut}): re-extract or re-download it")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise DatasetError(f"cannot read image {path} ({len(data)} B): corrupt or not an image")
    return img


class Video:
    """One video: ordered frames read lazily from disk."""

    def __init__(self, root: Path, layout: _Layout, name: str | None = None) -> None:
        self.root = root
        self.name = name or root.name
        self.depth_kind: DepthKind = layout.depth_kind
        rgb = _images_by_stem(root / layout.rgb)
        depth = _images_by_stem(root / layout.depth)
        gt_dir = root / layout.gt
        gt = _images_by_stem(gt_dir) if (gt_dir.is_dir() or not layout.gt_sparse) else {}
        if not rgb:
            raise DatasetError(f"no images in {root / layout.rgb}")
        no_depth = sorted(set(rgb) - set(depth), key=natural_key)
        if no_depth:
            raise DatasetError(f"{len(no_depth)} colour frame(s) of {root} have no depth frame in "
                               f"{root / layout.depth}, e.g. {no_depth[:3]}")
        orphans = sorted((set(depth) | set(gt)) - set(rgb), key=natural_key)
        if orphans:
            raise DatasetError(f"depth/ground-truth frame(s) of {root} have no colour frame, e.g. {orphans[:3]}")
        if not layout.gt_sparse:
            missing_gt = sorted(set(rgb) - set(gt), key=natural_key)
            if missing_gt:
                raise DatasetError(f"{len(missing_gt)} frame(s) of {root} have no ground truth in {gt_dir}, "
                                   f"e.g. {missing_gt[:3]} (this dataset is annotated densely)")
        self.stems = sorted(rgb, key=natural_key)
        self._rgb, self._depth, self._gt = rgb, depth, gt

    def __len__(self) -> int:
        return len(self.stems)

    def has_gt(self, i: int) -> bool:
        return self.stems[i] in self._gt

    def __getitem__(self, i: int) -> Frame:
        stem = self.stems[i]
        bgr = read_image(self._rgb[stem], cv2.IMREAD_COLOR)
        depth = read_image(self._depth[stem], cv2.IMREAD_UNCHANGED)
        if depth.ndim == 3:
            depth = depth[..., 0]
        if depth.shape[:2] != bgr.shape[:2]:
            raise DatasetError(f"depth {self._depth[stem]} is {depth.shape[1]}x{depth.shape[0]} but colour "
                               f"{self._rgb[stem]} is {bgr.shape[1]}x{bgr.shape[0]}")
        gt = None
        if stem in self._gt:
            gt = read_image(self._gt[stem], cv2.IMREAD_GRAYSCALE)
            if gt.shape[:2] != bgr.shape[:2]:
                raise DatasetError(f"ground truth {self._gt[stem]} is {gt.shape[1]}x{gt.shape[0]} but colour "
                                   f"is {bgr.shape[1]}x{bgr.shape[0]}")
        return Frame(rgb=np.ascontiguousarray(bgr[..., ::-1]), depth=depth, gt=gt, stem=stem)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]


def _split_names(root: Path, split: str) -> list[str]:
    candidates = [root / f"{split}.txt", root / f"{split}_all.txt"]
    for path in candidates:
        if path.is_file():
            names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            if not names:
                raise DatasetError(f"split file {path} lists no videos")
            return names
    raise DatasetError(f"no split file for {split!r}: looked for {', '.join(str(c) for c in candidates)}")


def open_videos(dataset: str, root: str | Path, split: str = "test") -> list[Video]:
    """All videos of one split of one dataset, in natural order."""
    if dataset not in LAYOUTS:
        raise DatasetError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    layout = LAYOUTS[dataset]
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist")
    if dataset == "dvisal":
        data = root / "data"
        if not data.is_dir():
            raise DatasetError(f"missing folder {data} (DViSal keeps its videos under data/)")
        names = _split_names(root, split)
        missing = [n for n in names if not (data / n).is_dir()]
        if missing:
            raise DatasetError(f"split {split!r} names videos missing under {data}: {missing[:5]}")
        return [Video(data / n, layout) for n in names]
    split_dir = root / split
    if not split_dir.is_dir():
        raise DatasetError(f"missing split folder {split_dir}")
    dirs = sorted((d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: natural_key(d.name))
    if not dirs:
        raise DatasetError(f"split folder {split_dir} holds no videos")
    return [Video(d, layout) for d in dirs]
