"""Training clips: T consecutive frames with one augmentation shared by the whole clip.

The geometric augmentation (horizontal flip, crop/scale, small rotation) is drawn once per clip and
applied identically to colour, depth and ground truth of every frame, so motion between frames is
preserved; colour jitter touches RGB only. The final resize to the model's size is the very one
inference uses (``model.preprocess``: bilinear, antialiased when shrinking) for RGB, depth and
ground truth alike, so the model never sees a resampling in training that deployment does not do.

On sparse datasets (RDVS, DViSal: a fraction of frames annotated) clips are built from the
ANNOTATED frames (T consecutive annotated frames), so every clip carries T supervised frames, as the
authors' loaders do; ``frames="all"`` keeps windows of raw frames, where frames without ground truth
get ``gt_valid = False`` and an all-zero target that the loss ignores.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from m4sam_ros.data.datasets import Video
from m4sam_ros.model.depth import normalize_depth
from m4sam_ros.model.preprocess import resize_square  # the inference resize, shared

CLIP_FRAMES = ("auto", "annotated", "all")


@dataclass(frozen=True)
class ClipAugmentation:
    """One clip's augmentation, drawn once and applied to all its frames."""

    flip: bool
    crop: tuple[float, float, float, float]   # x0, y0, w, h as fractions of the frame
    angle: float                              # degrees
    brightness: float
    contrast: float
    saturation: float

    @classmethod
    def draw(cls, rng: np.random.Generator, enabled: bool = True) -> ClipAugmentation:
        if not enabled:
            return cls(False, (0.0, 0.0, 1.0, 1.0), 0.0, 1.0, 1.0, 1.0)
        s = rng.uniform(0.75, 1.0)
        w, h = s, s * rng.uniform(0.9, 1.1)
        h = min(h, 1.0)
        return cls(flip=bool(rng.random() < 0.5), crop=(rng.uniform(0, 1 - w), rng.uniform(0, 1 - h), w, h),
                   angle=float(rng.uniform(-10, 10)), brightness=float(rng.uniform(0.8, 1.2)),
                   contrast=float(rng.uniform(0.8, 1.2)), saturation=float(rng.uniform(0.8, 1.2)))

    def geometric(self, img: np.ndarray, size: int | None, interp: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Crop, rotate, flip and (when ``size``) resize to size x size with ``interp``; the same for
        every frame and modality. Training passes ``size=None`` and resizes with :func:`to_model_size`."""
        h, w = img.shape[:2]
        x0, y0, cw, ch = self.crop
        xs, ys = int(round(x0 * w)), int(round(y0 * h))
        xe, ye = max(xs + 1, int(round((x0 + cw) * w))), max(ys + 1, int(round((y0 + ch) * h)))
        img = img[ys:ye, xs:xe]
        if self.angle:
            ih, iw = img.shape[:2]
            m = cv2.getRotationMatrix2D((iw / 2, ih / 2), self.angle, 1.0)
            img = cv2.warpAffine(img, m, (iw, ih), flags=interp, borderMode=cv2.BORDER_REFLECT101)
        if self.flip:
            img = img[:, ::-1]
        img = np.ascontiguousarray(img)
        return img if size is None else cv2.resize(img, (size, size), interpolation=interp)

    def photometric(self, rgb01: np.ndarray) -> np.ndarray:
        """Brightness, contrast and saturation jitter on an RGB image in [0, 1]."""
        out = rgb01 * self.brightness
        mean = out.mean()
        out = (out - mean) * self.contrast + mean
        grey = out.mean(axis=2, keepdims=True)
        out = (out - grey) * self.saturation + grey
        return np.clip(out, 0.0, 1.0)


def to_model_size(img: np.ndarray, size: int) -> np.ndarray:
    """HxW or HxWxC float -> CxSxS float32 with the inference resize (bilinear, antialiased when
    shrinking: ``model.preprocess``), so training and deployment resample identically."""
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    return resize_square(x, size)[0].clamp_(0.0, 1.0).numpy()


def clip_frame_indices(video: Video, frames: str) -> list[int]:
    """The frame indices clips of ``video`` are windows over: annotated frames only (``annotated``,
    or ``auto`` when the video's ground truth is sparse) or every frame (``all``)."""
    if frames not in CLIP_FRAMES:
        raise ValueError(f"frames must be one of {CLIP_FRAMES}, got {frames!r}")
    everything = list(range(len(video)))
    if frames == "all":
        return everything
    annotated = [i for i in everything if video.has_gt(i)]
    if frames == "auto" and len(annotated) == len(everything):
        return everything
    return annotated


class ClipDataset(Dataset):
    """Every window of ``clip_len`` frames (``stride`` apart) of every video is one item; with
    ``frames`` "annotated" (or "auto" on a sparse video) the window runs over annotated frames."""

    def __init__(self, videos: list[Video], clip_len: int = 4, stride: int = 1, size: int = 256,
                 augment: bool = True, seed: int = 3407, frames: str = "auto") -> None:
        if clip_len < 1 or stride < 1:
            raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
        if not videos:
            raise ValueError("no videos to sample clips from")
        self.videos, self.clip_len, self.stride, self.size = videos, clip_len, stride, size
        self.augment, self.seed = augment, seed
        span = (clip_len - 1) * stride + 1
        # per video, the frames a window runs over; an item is (video, first position in that list)
        self.frames = [clip_frame_indices(video, frames) for video in videos]
        self.index = [(v, s) for v, idx in enumerate(self.frames) for s in range(0, len(idx) - span + 1)]
        if not self.index:
            which = "annotated frames" if frames != "all" else "frames"
            raise ValueError(f"every video is shorter than one clip ({span} {which} for clip_len={clip_len}, "
                             f"stride={stride})")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """New augmentations each epoch, still reproducible."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        v, start = self.index[i]
        video = self.videos[v]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        aug = ClipAugmentation.draw(rng, self.augment)
        images, depths, gts, valid = [], [], [], []
        for t in range(self.clip_len):
            frame = video[self.frames[v][start + t * self.stride]]
            rgb = to_model_size(aug.geometric(frame.rgb.astype(np.float32) / 255.0, None), self.size)
            images.append(aug.photometric(rgb.transpose(1, 2, 0)).transpose(2, 0, 1))  # jitter: RGB only
            depth01 = normalize_depth(frame.depth, video.depth_kind)
            depths.append(to_model_size(aug.geometric(depth01, None), self.size))
            if frame.gt is None:
                gts.append(np.zeros((1, self.size, self.size), np.float32))
                valid.append(False)
            else:
                g = to_model_size(aug.geometric((frame.gt > 128).astype(np.float32), None), self.size)
                gts.append((g >= 0.5).astype(np.float32))
                valid.append(True)
        return {
            "images": torch.from_numpy(np.stack(images).astype(np.float32)),
            "depths": torch.from_numpy(np.stack(depths).astype(np.float32)),
            "gts": torch.from_numpy(np.stack(gts)),
            "gt_valid": torch.tensor(valid, dtype=torch.bool),
        }
