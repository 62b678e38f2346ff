"""Training clips: T consecutive frames with one augmentation shared by the whole clip.

The augmentation is the authors' (horizontal flip, a centred crop of at most 30 px, rotation with
probability 0.2 and zero-filled corners, PIL-style colour enhancement); it is drawn once per clip and
the geometry is applied identically to colour, depth and ground truth of every frame, so motion
between frames is preserved; colour enhancement touches RGB only. The final resize to the model's size is the very one
inference uses (``model.preprocess``: bilinear, antialiased when shrinking) for RGB, depth and
ground truth alike, so the model never sees a resampling in training that deployment does not do.

On sparse datasets (RDVS, DViSal: a fraction of frames annotated) clips are built from the
ANNOTATED frames (T consecutive annotated frames), so every clip carries T supervised frames, as the
authors' loaders do; ``frames="all"`` keeps windows of raw frames, where frames without ground truth
get ``gt_valid = False`` and an all-zero target that the loss ignores. Clips are non-overlapping
chunks by default (the authors' ``clipper``), every sliding window with ``sampling="sliding"``.
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
CLIP_SAMPLING = ("chunks", "sliding")


#: the authors' augmentation (``dataset/dataset_utils.py`` of their release): at most this many
#: pixels cropped off each axis, centred
CROP_BORDER_PX = 30
ROTATION_PROB = 0.2          # their ``random() > 0.8``
ROTATION_DEG = (-15, 15)     # their ``np.random.randint(-15, 15)``: integers -15..14
# PIL ImageEnhance factors as they draw them: randint(a, b) / 10, both ends included
BRIGHTNESS = (5, 15)
CONTRAST = (5, 15)
COLOUR = (0, 20)
SHARPNESS = (0, 30)
#: PIL's ITU-R 601-2 luma (``Image.convert("L")``), used by ImageEnhance.Contrast and .Color
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
#: PIL's ImageFilter.SMOOTH kernel, the "degenerate" image of ImageEnhance.Sharpness
SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0


@dataclass(frozen=True)
class ClipAugmentation:
    """One clip's augmentation, drawn once and applied to all its frames: the authors' recipe
    (flip p 0.5; a centred crop of at most 30 px per axis; rotation by -15..14 degrees with
    probability 0.2, corners filled with zeros, never mirrored content; PIL's brightness,
    contrast, colour and sharpness enhancement)."""

    flip: bool
    crop: tuple[float, float, float, float]   # x0, y0, w, h as fractions of the frame
    angle: float                              # degrees (0: no rotation)
    brightness: float
    contrast: float
    saturation: float                         # PIL's ImageEnhance.Color factor
    sharpness: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator, enabled: bool = True,
             frame_hw: tuple[int, int] = (352, 352)) -> ClipAugmentation:
        """Draw one clip's augmentation; ``frame_hw`` is the source frame's size (the crop is
        counted in its pixels, as the authors crop the full-resolution frame)."""
        if not enabled:
            return cls(False, (0.0, 0.0, 1.0, 1.0), 0.0, 1.0, 1.0, 1.0, 1.0)
        h, w = frame_hw
        flip = bool(rng.random() < 0.5)
        # their randint(W - 30, W): a window 1..30 px narrower (never wider than the frame)
        cw = int(rng.integers(max(1, w - CROP_BORDER_PX), w)) if w > 1 else w
        ch = int(rng.integers(max(1, h - CROP_BORDER_PX), h)) if h > 1 else h
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        rotate = bool(rng.random() > 1.0 - ROTATION_PROB)
        angle = float(rng.integers(*ROTATION_DEG))
        b, c, s, sh = (float(rng.integers(lo, hi + 1)) / 10.0 for lo, hi in (BRIGHTNESS, CONTRAST, COLOUR, SHARPNESS))
        return cls(flip=flip, crop=(x0 / w, y0 / h, cw / w, ch / h), angle=angle if rotate else 0.0,
                   brightness=b, contrast=c, saturation=s, sharpness=sh)

    def geometric(self, img: np.ndarray, size: int | None, interp: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Flip, crop, rotate and (when ``size``) resize to size x size with ``interp``; the same for
        every frame and modality. Rotated-in corners are 0 (black RGB, far/invalid depth,
        background GT), as PIL's ``rotate`` fills them: a reflected border would mirror objects.
        Training passes ``size=None`` and resizes with :func:`to_model_size`."""
        if self.flip:
            img = img[:, ::-1]
        h, w = img.shape[:2]
        x0, y0, cw, ch = self.crop
        xs, ys = int(round(x0 * w)), int(round(y0 * h))
        xe, ye = max(xs + 1, int(round((x0 + cw) * w))), max(ys + 1, int(round((y0 + ch) * h)))
        img = np.ascontiguousarray(img[ys:ye, xs:xe])
        if self.angle:
            ih, iw = img.shape[:2]
            # PIL rotates counter-clockwise for positive angles, as getRotationMatrix2D does
            m = cv2.getRotationMatrix2D(((iw - 1) / 2, (ih - 1) / 2), self.angle, 1.0)
            img = cv2.warpAffine(img, m, (iw, ih), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        img = np.ascontiguousarray(img)
        return img if size is None else cv2.resize(img, (size, size), interpolation=interp)

    def photometric(self, rgb01: np.ndarray) -> np.ndarray:
        """PIL's ImageEnhance Brightness, Contrast, Color, Sharpness (in their order) on an RGB
        image in [0, 1], each step clipped to [0, 1] as PIL's uint8 images are."""
        out = np.clip(rgb01 * self.brightness, 0.0, 1.0)
        mean = float((out @ LUMA).mean())
        out = np.clip(mean + self.contrast * (out - mean), 0.0, 1.0)
        grey = (out @ LUMA)[..., None]
        out = np.clip(grey + self.saturation * (out - grey), 0.0, 1.0)
        if self.sharpness != 1.0 and out.shape[0] > 2 and out.shape[1] > 2:
            smooth = out.copy()  # PIL keeps the border pixels of the smoothed image
            smooth[1:-1, 1:-1] = cv2.filter2D(out, -1, SMOOTH, borderType=cv2.BORDER_REPLICATE)[1:-1, 1:-1]
            out = np.clip(smooth + self.sharpness * (out - smooth), 0.0, 1.0)
        return out.astype(np.float32, copy=False)


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


def chunk_starts(n: int, clip_len: int) -> list[int]:
    """The authors' ``clipper``: non-overlapping chunks of ``clip_len`` positions over ``n``
    frames, starting at 0, clip_len, 2 clip_len, ...; the last chunk may be shorter (the
    dataset pads it by repeating its last frame, as their loader does): ceil(n / clip_len)."""
    return list(range(0, n, clip_len))


def sliding_starts(n: int, clip_len: int, stride: int) -> list[int]:
    """Every window of ``clip_len`` positions ``stride`` apart that fits in ``n`` frames."""
    span = (clip_len - 1) * stride + 1
    return list(range(0, n - span + 1))


class ClipDataset(Dataset):
    """Clips of ``clip_len`` frames of every video; with ``frames`` "annotated" (or "auto" on a
    sparse video) the clip runs over annotated frames only.

    ``sampling="chunks"`` (default, the authors' schedule): non-overlapping chunks, the last one
    of a video padded by repeating its last frame (ceil(n / T) clips per video of n frames);
    ``"sliding"``: every window, ``stride`` apart (n - (T-1) stride clips: ~4x the optimiser
    steps per epoch at T = 4)."""

    def __init__(self, videos: list[Video], clip_len: int = 4, stride: int = 1, size: int = 256,
                 augment: bool = True, seed: int = 3407, frames: str = "auto", sampling: str = "chunks") -> None:
        if clip_len < 1 or stride < 1:
            raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
        if sampling not in CLIP_SAMPLING:
            raise ValueError(f"sampling must be one of {CLIP_SAMPLING}, got {sampling!r}")
        if sampling == "chunks" and stride != 1:
            raise ValueError(f"stride {stride} needs sampling='sliding' (chunks are consecutive frames)")
        if not videos:
            raise ValueError("no videos to sample clips from")
        self.videos, self.clip_len, self.stride, self.size = videos, clip_len, stride, size
        self.augment, self.seed, self.sampling = augment, seed, sampling
        span = (clip_len - 1) * stride + 1
        # per video, the frames a clip runs over; an item is (video, first position in that list)
        self.frames = [clip_frame_indices(video, frames) for video in videos]
        self.index = [(v, s) for v, idx in enumerate(self.frames)
                      for s in (chunk_starts(len(idx), clip_len) if sampling == "chunks"
                                else sliding_starts(len(idx), clip_len, stride))]
        # chunks pad a video's remainder (as the authors' loader does), but a dataset without one
        # full clip anywhere is a wrong --clip-len, not something to pad
        if not self.index or max(len(idx) for idx in self.frames) < span:
            which = "annotated frames" if frames != "all" else "frames"
            raise ValueError(f"every video is shorter than one clip ({span} {which} for clip_len={clip_len}, "
                             f"stride={stride})")
        self.epoch = 0

    def clip_positions(self, i: int) -> list[int]:
        """Frame indices (into the video) of item ``i``, padding included."""
        v, start = self.index[i]
        idx = self.frames[v]
        return [idx[min(start + t * self.stride, len(idx) - 1)] for t in range(self.clip_len)]

    def set_epoch(self, epoch: int) -> None:
        """New augmentations each epoch, still reproducible."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        v, _ = self.index[i]
        video = self.videos[v]
        positions = self.clip_positions(i)
        first = video[positions[0]]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        aug = ClipAugmentation.draw(rng, self.augment, first.rgb.shape[:2])
        images, depths, gts, valid = [], [], [], []
        for pos in positions:
            frame = first if pos == positions[0] else video[pos]
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
