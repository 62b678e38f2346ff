"""Surface appearance for the synthetic world: procedural texture families and photo crops.

A texture is a float32 HxWx3 RGB image in [0, 255] around a base colour. Procedural families are
drawn from the generator; photo families crop, scale, flip and tint natural photographs that
installed wheels ship (scikit-image's ``skimage/data``, scikit-learn's ``datasets/images`` and
matplotlib's ``sample_data``; all three are installed as dependencies of pysodmetrics / the plots):
the files are read from disk, nothing is fetched. ``TRAIN`` and ``HELDOUT`` name disjoint families
and disjoint photo sets, so the held-out "textures" set shows surfaces training never saw.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import cache
from pathlib import Path

import cv2
import numpy as np

# (package, relative path) of the photographs; grey ones are tinted when used
PHOTOS_TRAIN = (
    ("skimage", "data/astronaut.png"), ("skimage", "data/coffee.png"), ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"), ("skimage", "data/hubble_deep_field.jpg"),
    ("skimage", "data/ihc.png"), ("skimage", "data/brick.png"), ("skimage", "data/grass.png"),
    ("skimage", "data/camera.png"), ("skimage", "data/moon.png"),
)
PHOTOS_HELDOUT = (
    ("skimage", "data/chelsea.png"), ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"), ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("skimage", "data/retina.jpg"), ("skimage", "data/gravel.png"), ("skimage", "data/coins.png"),
    ("skimage", "data/page.png"),
)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the photo textures need the installed package {package!r} (a dependency of "
                                "pysodmetrics/matplotlib): pip install -r requirements-runtime.txt")
    return Path(list(spec.submodule_search_locations)[0])


@cache
def load_photo(package: str, rel: str, max_side: int = 512) -> np.ndarray:
    """One shipped photograph as float32 RGB, longest side at most ``max_side`` (cached)."""
    from PIL import Image

    path = _package_dir(package) / rel
    try:
        with Image.open(path) as im:   # PIL: no libpng warnings about the photos' colour profiles
            img = np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise FileNotFoundError(f"photo texture {path} is missing or unreadable ({exc}); reinstall {package}") from exc
    s = max_side / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img).astype(np.float32)


def _smooth(rng: np.random.Generator, h: int, w: int, cells: int, ch: int = 3) -> np.ndarray:
    low = rng.normal(0.0, 1.0, (cells, cells, ch)).astype(np.float32)
    out = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    return out if out.ndim == 3 else out[..., None]


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def noise_stripes(rng: np.random.Generator, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """Smooth colour noise with oriented stripes (the original generator's texture)."""
    yy, xx = _grid(h, w)
    a, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    stripes = np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period)[..., None]
    fine = rng.normal(0.0, 0.35, (h, w, 3)).astype(np.float32)
    return base + contrast * (0.6 * _smooth(rng, h, w, int(rng.integers(3, 9))) + 0.25 * fine
                              + 0.35 * stripes * rng.uniform(0.2, 1.0))


def checker(rng: np.random.Generator, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """A rotated two-colour checkerboard (tiles, fabric, a chess board)."""
    yy, xx = _grid(h, w)
    a, p = rng.uniform(0, np.pi), rng.uniform(5, 30)
    u, v = xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)
    sq = ((np.floor(u / p) + np.floor(v / p)) % 2)[..., None] * 2 - 1
    other = rng.normal(0, 1, 3).astype(np.float32)
    return base + contrast * 1.2 * sq * (0.5 + 0.5 * np.abs(other)) + rng.normal(0, 2, (h, w, 3))


def fractal(rng: np.random.Generator, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """Multi-octave value noise (stone, plaster, foliage)."""
    out = np.zeros((h, w, 3), np.float32)
    amp = 1.0
    for cells in (3, 6, 12, 24, 48):
        out += amp * _smooth(rng, h, w, cells)
        amp *= rng.uniform(0.45, 0.7)
    return base + contrast * 0.8 * out


def dots(rng: np.random.Generator, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """Random discs of a second colour (polka dots, speckled paint)."""
    out = np.broadcast_to(base, (h, w, 3)).copy().astype(np.float32)
    col = np.clip(base + rng.choice([-1, 1], 3) * contrast * 2, 0, 255)
    r = rng.uniform(1.5, max(2.0, min(h, w) / 12))
    n = int(h * w / (r * r * rng.uniform(6, 20))) + 1
    for _ in range(min(n, 600)):
        cv2.circle(out, (int(rng.integers(0, w)), int(rng.integers(0, h))), max(1, int(r)), col.tolist(), -1)
    return out + rng.normal(0, 3, (h, w, 3))


def plaid(rng: np.random.Generator, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """Crossed colour waves of two periods (tartan, woven cloth). Held out."""
    yy, xx = _grid(h, w)
    out = np.broadcast_to(base, (h, w, 3)).astype(np.float32).copy()
    for _ in range(2):
        a, p = rng.uniform(0, np.pi), rng.uniform(4, 20)
        wave = np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / p)[..., None]
        out += contrast * wave * rng.normal(0, 0.8, 3).astype(np.float32)
    return out


def voronoi(rng: np.random.Generator, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """Flat-coloured cells with dark borders (cobbles, crackle, giraffe skin). Held out."""
    n = int(rng.integers(8, 40))
    pts = np.stack([rng.uniform(0, w, n), rng.uniform(0, h, n)], 1).astype(np.float32)
    yy, xx = _grid(h, w)
    d = (xx[..., None] - pts[:, 0]) ** 2 + (yy[..., None] - pts[:, 1]) ** 2
    part = np.partition(d, 1, axis=-1)
    idx = np.argmin(d, axis=-1)
    cols = base + contrast * rng.normal(0, 1.0, (n, 3)).astype(np.float32)
    out = cols[idx]
    border = (np.sqrt(part[..., 1]) - np.sqrt(part[..., 0])) < rng.uniform(1.0, 3.0)
    out[border] *= 0.4
    return out


def marble(rng: np.random.Generator, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """Veins: a sine of position plus turbulence (marble, wood grain). Held out."""
    yy, xx = _grid(h, w)
    a, p = rng.uniform(0, np.pi), rng.uniform(10, 40)
    turb = _smooth(rng, h, w, int(rng.integers(4, 10)), 1)[..., 0] * rng.uniform(2, 6)
    vein = np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / p + turb)[..., None]
    tint = rng.normal(0, 1, 3).astype(np.float32)
    return base + contrast * (np.abs(vein) ** 0.5 * 1.6 - 0.8) * (0.6 + 0.4 * np.abs(tint))


def _photo(photos: tuple[tuple[str, str], ...]) -> Callable:
    def draw(rng: np.random.Generator, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
        img = load_photo(*photos[int(rng.integers(0, len(photos)))])
        ph, pw = img.shape[:2]
        frac = rng.uniform(0.2, 0.8)
        ch = max(8, int(ph * frac))
        cw = max(8, min(pw, int(ch * w / max(h, 1))))
        ch = min(ph, ch)
        y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
        crop = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.3:
            crop = crop[::-1]
        # tint towards the base colour: keeps the scene's colour plan (object vs background) meaningful
        k = rng.uniform(0.2, 0.6)
        mean = crop.reshape(-1, 3).mean(0)
        scale = contrast / 35.0
        return (1 - k) * (mean + (crop - mean) * scale) + k * base + (1 - k) * (base - mean) * 0.5
    return draw


FAMILIES: dict[str, Callable] = {
    "noise_stripes": noise_stripes, "checker": checker, "fractal": fractal, "dots": dots,
    "photo": _photo(PHOTOS_TRAIN),
    "plaid": plaid, "voronoi": voronoi, "marble": marble, "photo_heldout": _photo(PHOTOS_HELDOUT),
}
TRAIN = ("noise_stripes", "checker", "fractal", "dots", "photo")
HELDOUT = ("plaid", "voronoi", "marble", "photo_heldout")


def make(rng: np.random.Generator, family: str, h: int, w: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """A ``family`` texture of ``h`` x ``w`` around ``base`` (RGB) with roughly ``contrast`` spread."""
    if family not in FAMILIES:
        raise ValueError(f"unknown texture family {family!r}; known: {', '.join(FAMILIES)}")
    h, w = max(int(h), 2), max(int(w), 2)
    tex = FAMILIES[family](rng, h, w, np.asarray(base, np.float32), float(contrast))
    return np.clip(tex, 0, 255).astype(np.float32)
