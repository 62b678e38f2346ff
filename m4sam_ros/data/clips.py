"""Training clips: T consecutive frames with one augmentation shared by the whole clip.

The geometric augmentation (horizontal flip, crop/scale, small rotation) is drawn once per clip and
applied identically to colour, depth and ground truth of every frame, so motion between frames is
preserved; colour jitter touches RGB only. Frames without ground truth (RDVS is sparse) get
``gt_valid = False`` and an all-zero target that the loss must ignore.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from m4sam_ros.data.datasets import Video
from m4sam_ros.data.depth import normalize_depth


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

    def geometric(self, img: np.ndarray, size: int, interp: int) -> np.ndarray:
        """Crop, rotate, flip and resize to size x size (the same for every frame and modality)."""
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
        return cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=interp)

    def photometric(self, rgb01: np.ndarray) -> np.ndarray:
        """Brightness, contrast and saturation jitter on an RGB image in [0, 1]."""
        out = rgb01 * self.brightness
        mean = out.mean()
        out = (out - mean) * self.contrast + mean
        grey = out.mean(axis=2, keepdims=True)
        out = (out - grey) * self.saturation + grey
        return np.clip(out, 0.0, 1.0)


class ClipDataset(Dataset):
    """Every window of ``clip_len`` frames (``stride`` apart) of every video is one item."""

    def __init__(self, videos: list[Video], clip_len: int = 4, stride: int = 1, size: int = 256,
                 augment: bool = True, seed: int = 3407) -> None:
        if clip_len < 1 or stride < 1:
            raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
        if not videos:
            raise ValueError("no videos to sample clips from")
        self.videos, self.clip_len, self.stride, self.size = videos, clip_len, stride, size
        self.augment, self.seed = augment, seed
        span = (clip_len - 1) * stride + 1
        self.index = [(v, s) for v, video in enumerate(videos) for s in range(0, len(video) - span + 1)]
        if not self.index:
            raise ValueError(f"every video is shorter than one clip ({span} frames for clip_len={clip_len}, "
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
            frame = video[start + t * self.stride]
            rgb = aug.geometric(frame.rgb, self.size, cv2.INTER_LINEAR).astype(np.float32) / 255.0
            images.append(aug.photometric(rgb).transpose(2, 0, 1))
            depth01 = normalize_depth(frame.depth, video.depth_kind)
            depths.append(aug.geometric(depth01, self.size, cv2.INTER_NEAREST)[None])
            if frame.gt is None:
                gts.append(np.zeros((1, self.size, self.size), np.float32))
                valid.append(False)
            else:
                g = aug.geometric(frame.gt, self.size, cv2.INTER_NEAREST)
                gts.append((g > 128).astype(np.float32)[None])
                valid.append(True)
        return {
            "images": torch.from_numpy(np.stack(images).astype(np.float32)),
            "depths": torch.from_numpy(np.stack(depths).astype(np.float32)),
            "gts": torch.from_numpy(np.stack(gts)),
            "gt_valid": torch.tensor(valid, dtype=torch.bool),
        }
