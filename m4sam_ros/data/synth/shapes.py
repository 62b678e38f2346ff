"""Object silhouettes for the synthetic world, in named families.

Every family draws a binary mask (uint8 {0, 255}) centred in a square canvas. The families are split
into the ones training sees (``TRAIN``) and the ones only the held-out "shapes" set uses
(``HELDOUT``); both lists cover the same kinds (convex and concave polygons, stars, blobs, thin or
elongated shapes, shapes with holes, multi-part shapes), so the held-out set tests new silhouettes,
not a new kind of task.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Drawer = Callable[[np.random.Generator, int], np.ndarray]


def _canvas(size: int) -> np.ndarray:
    return np.zeros((size, size), np.uint8)


def _poly(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 255)
    return m


def _radial(rng: np.random.Generator, size: int, radii: np.ndarray, angles: np.ndarray) -> np.ndarray:
    c = size / 2
    pts = np.stack([c + radii * np.cos(angles), c + radii * np.sin(angles)], 1)
    return _poly(_canvas(size), pts)


def polygon(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random 3-9 sided polygon, convex or slightly concave."""
    n = int(rng.integers(3, 10))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    return _radial(rng, size, size * rng.uniform(0.28, 0.47, n), ang)


def star(rng: np.random.Generator, size: int) -> np.ndarray:
    """A 4-8 pointed star."""
    n = int(rng.integers(4, 9))
    ang = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False) + rng.uniform(0, np.pi)
    outer, inner = size * rng.uniform(0.38, 0.48), size * rng.uniform(0.15, 0.27)
    return _radial(rng, size, np.where(np.arange(2 * n) % 2 == 0, outer, inner), ang)


def blob(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth blob: radius as a low-order Fourier series of the angle."""
    ang = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    r = np.ones_like(ang)
    for k in range(2, 6):
        r += rng.uniform(0, 0.22 / k * 2) * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
    r = r / r.max() * size * rng.uniform(0.4, 0.48)
    return _radial(rng, size, r, ang)


def bar(rng: np.random.Generator, size: int) -> np.ndarray:
    """A thin elongated capsule (a pen, a bottle seen from the side)."""
    m = _canvas(size)
    half = size * rng.uniform(0.36, 0.48)
    thick = max(2, int(size * rng.uniform(0.06, 0.16)))
    a = rng.uniform(0, np.pi)
    d = np.array([np.cos(a), np.sin(a)]) * half
    c = np.array([size / 2, size / 2])
    cv2.line(m, tuple(np.round(c - d).astype(int)), tuple(np.round(c + d).astype(int)), 255, thick)
    return m


def ring(rng: np.random.Generator, size: int) -> np.ndarray:
    """An elliptic annulus: a shape with a hole."""
    m = _canvas(size)
    c = (size // 2, size // 2)
    ax = (int(size * rng.uniform(0.3, 0.47)), int(size * rng.uniform(0.3, 0.47)))
    ang = float(rng.uniform(0, 180))
    cv2.ellipse(m, c, ax, ang, 0, 360, 255, -1)
    k = rng.uniform(0.4, 0.65)
    cv2.ellipse(m, c, (int(ax[0] * k), int(ax[1] * k)), ang, 0, 360, 0, -1)
    return m


def pair(rng: np.random.Generator, size: int) -> np.ndarray:
    """Two separate blobs that move as one object (a multi-part object: a pair of shoes)."""
    m = _canvas(size)
    for side in (-1, 1):
        sub = blob(rng, size // 2)
        off = int(size / 2 + side * size * 0.22 - size // 4)
        y0 = int(size / 4 + rng.uniform(-0.1, 0.1) * size)
        m[y0:y0 + size // 2, off:off + size // 2] |= sub
    return m


def rounded_box(rng: np.random.Generator, size: int) -> np.ndarray:
    """A rounded rectangle (a box, a book)."""
    m = _canvas(size)
    c = size // 2
    hw, hh = int(size * rng.uniform(0.2, 0.45)), int(size * rng.uniform(0.2, 0.45))
    cv2.rectangle(m, (c - hw, c - hh), (c + hw, c + hh), 255, -1)
    m = cv2.GaussianBlur(m, (0, 0), size * rng.uniform(0.02, 0.08))
    return np.where(m > 127, 255, 0).astype(np.uint8)


# -- held-out families -----------------------------------------------------------------------------

def cross(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plus/cross or T shape: thin arms meeting."""
    m = _canvas(size)
    t = max(2, int(size * rng.uniform(0.1, 0.2)))
    c = size // 2
    h = int(size * rng.uniform(0.35, 0.47))
    cv2.rectangle(m, (c - h, c - t // 2), (c + h, c + t // 2), 255, -1)
    top = c - h if rng.random() < 0.5 else c - t // 2  # cross or T
    cv2.rectangle(m, (c - t // 2, top), (c + t // 2, c + h), 255, -1)
    return m


def crescent(rng: np.random.Generator, size: int) -> np.ndarray:
    """A crescent: a disc minus an offset disc (strongly concave)."""
    m = _canvas(size)
    c = size // 2
    r = int(size * rng.uniform(0.38, 0.47))
    cv2.circle(m, (c, c), r, 255, -1)
    a = rng.uniform(0, 2 * np.pi)
    off = r * rng.uniform(0.4, 0.6)
    cv2.circle(m, (int(c + off * np.cos(a)), int(c + off * np.sin(a))), int(r * rng.uniform(0.75, 0.9)), 0, -1)
    return m


def gear(rng: np.random.Generator, size: int) -> np.ndarray:
    """A gear: a toothed disc with a round hole."""
    n = int(rng.integers(8, 16))
    ang = np.linspace(0, 2 * np.pi, 4 * n, endpoint=False)
    r = np.where((np.arange(4 * n) // 2) % 2 == 0, 0.47, 0.38) * size
    m = _radial(rng, size, r, ang)
    cv2.circle(m, (size // 2, size // 2), int(size * rng.uniform(0.1, 0.2)), 0, -1)
    return m


def frame(rng: np.random.Generator, size: int) -> np.ndarray:
    """A rectangular frame (a picture frame, a window): a polygon with a polygonal hole."""
    m = _canvas(size)
    c = size // 2
    hw, hh = int(size * rng.uniform(0.3, 0.47)), int(size * rng.uniform(0.3, 0.47))
    cv2.rectangle(m, (c - hw, c - hh), (c + hw, c + hh), 255, -1)
    b = rng.uniform(0.15, 0.3)
    cv2.rectangle(m, (c - int(hw * (1 - b * 2)), c - int(hh * (1 - b * 2))),
                  (c + int(hw * (1 - b * 2)), c + int(hh * (1 - b * 2))), 0, -1)
    return m


def dumbbell(rng: np.random.Generator, size: int) -> np.ndarray:
    """Two discs joined by a thin handle (a multi-part object with a thin link)."""
    m = _canvas(size)
    c = size / 2
    a = rng.uniform(0, np.pi)
    d = np.array([np.cos(a), np.sin(a)]) * size * 0.3
    p0, p1 = np.round(c - d).astype(int), np.round(c + d).astype(int)
    cv2.line(m, tuple(p0), tuple(p1), 255, max(2, int(size * 0.06)))
    for p in (p0, p1):
        cv2.circle(m, tuple(p), int(size * rng.uniform(0.12, 0.18)), 255, -1)
    return m


def arc(rng: np.random.Generator, size: int) -> np.ndarray:
    """A thick curved stroke (a banana, a cable loop): thin, curved, elongated."""
    m = _canvas(size)
    c = (size // 2, size // 2)
    r = int(size * rng.uniform(0.3, 0.42))
    start = float(rng.uniform(0, 360))
    cv2.ellipse(m, c, (r, int(r * rng.uniform(0.6, 1.0))), 0, start, start + rng.uniform(150, 260), 255,
                max(2, int(size * rng.uniform(0.08, 0.14))))
    return m


FAMILIES: dict[str, Drawer] = {
    "polygon": polygon, "star": star, "blob": blob, "bar": bar, "ring": ring, "pair": pair,
    "rounded_box": rounded_box,
    "cross": cross, "crescent": crescent, "gear": gear, "frame": frame, "dumbbell": dumbbell, "arc": arc,
}
TRAIN = ("polygon", "star", "blob", "bar", "ring", "pair", "rounded_box")
HELDOUT = ("cross", "crescent", "gear", "frame", "dumbbell", "arc")


def draw(rng: np.random.Generator, family: str, size: int) -> np.ndarray:
    """The mask of one ``family`` shape on a ``size`` x ``size`` canvas (never empty)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown shape family {family!r}; known: {', '.join(FAMILIES)}")
    size = max(int(size), 16)
    m = FAMILIES[family](rng, size)
    if not m.any():  # degenerate draw (tiny canvas): fall back to a disc
        cv2.circle(m, (size // 2, size // 2), size // 3, 255, -1)
    return m
