"""Background geometry for the synthetic world: a pinhole camera inside a set of planes.

A layout is a list of planes in world coordinates (metres; x right, y down = gravity, z forward) and
a camera pose. Rendering casts one ray per pixel and keeps the nearest plane hit (infinite planes
bound the room; finite patches such as a table top only count inside their extent), which gives a
metric depth map with true perspective, and per-pixel plane coordinates used to map each plane's
texture. ``TRAIN`` and ``HELDOUT`` name disjoint layout families.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Plane:
    """``normal . X = offset`` in world coordinates; ``extent`` bounds a finite patch in the plane's
    own (u, v) coordinates, ``support`` marks surfaces objects may rest on."""

    normal: np.ndarray
    offset: float
    name: str
    extent: tuple[float, float, float, float] | None = None   # umin, umax, vmin, vmax
    support: bool = False

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.normal / np.linalg.norm(self.normal)
        ref = np.array([0.0, 1.0, 0.0]) if abs(n[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
        u = np.cross(ref, n)
        u /= np.linalg.norm(u)
        return u, np.cross(n, u)


@dataclass
class Layout:
    family: str
    planes: list[Plane]
    pitch: float          # camera tilt down, radians
    roll: float
    yaw: float
    height: float = 0.0   # camera height above the floor (metres), for the record
    support_plane: int | None = None   # index of the plane objects rest on (None: they float)
    extra: dict = field(default_factory=dict)

    def rotation(self, jitter: np.ndarray | None = None) -> np.ndarray:
        """Camera-to-world rotation (optical frame: x right, y down, z forward)."""
        p, r, y = self.pitch, self.roll, self.yaw
        if jitter is not None:
            p, r, y = p + jitter[0], r + jitter[1], y + jitter[2]
        cp, sp, cr, sr, cy, sy = np.cos(p), np.sin(p), np.cos(r), np.sin(r), np.cos(y), np.sin(y)
        rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])    # positive pitch looks down (+y)
        rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        return ry @ rx @ rz


def pixel_rays(w: int, h: int, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """HxWx3 camera-frame rays with z = 1 (so a hit's ray parameter is its depth)."""
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)


def render(layout: Layout, rays: np.ndarray, rot: np.ndarray, cam: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (metres, inf where nothing is hit), the index of the plane hit and its (u, v) coords."""
    cam = np.zeros(3) if cam is None else cam
    world = rays @ rot.T
    h, w = rays.shape[:2]
    depth = np.full((h, w), np.inf)
    index = np.full((h, w), -1, np.int32)
    uv = np.zeros((h, w, 2))
    for i, pl in enumerate(layout.planes):
        denom = world @ pl.normal
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (pl.offset - cam @ pl.normal) / denom
        ok = np.isfinite(t) & (t > 1e-3)
        pts = cam + world * t[..., None]
        a, b = pl.axes()
        pu, pv = pts @ a, pts @ b
        if pl.extent is not None:
            ok &= (pu >= pl.extent[0]) & (pu <= pl.extent[1]) & (pv >= pl.extent[2]) & (pv <= pl.extent[3])
        better = ok & (t < depth)
        depth[better] = t[better]
        index[better] = i
        uv[better] = np.stack([pu, pv], -1)[better]
    return depth, index, uv


def _room(rng: np.random.Generator, floor_y: float, wall_z: float, ceiling: float | None = None,
          side: float | None = None) -> list[Plane]:
    planes = [Plane(np.array([0.0, 0.0, 1.0]), wall_z, "wall"),
              Plane(np.array([0.0, 1.0, 0.0]), floor_y, "floor", support=True)]
    if ceiling is not None:
        planes.append(Plane(np.array([0.0, -1.0, 0.0]), ceiling, "ceiling"))
    if side is not None:
        planes += [Plane(np.array([-1.0, 0.0, 0.0]), side, "wall_left"), Plane(np.array([1.0, 0.0, 0.0]), side,
                                                                                "wall_right")]
    return planes


def wall_floor(rng: np.random.Generator) -> Layout:
    """A wall ahead and a floor below; the camera level or tilted a little down."""
    return Layout("wall_floor", _room(rng, rng.uniform(0.8, 1.6), rng.uniform(2.0, 5.0)),
                  pitch=np.radians(rng.uniform(-5, 30)), roll=np.radians(rng.normal(0, 4)),
                  yaw=np.radians(rng.uniform(-30, 30)), support_plane=None)


def tabletop(rng: np.random.Generator) -> Layout:
    """A table top (finite patch) in front of a wall, floor beneath; the camera looks down at it.
    Objects rest on the table."""
    cam_h = rng.uniform(0.3, 0.7)   # camera height above the table
    floor = cam_h + rng.uniform(0.6, 0.9)
    z0 = rng.uniform(0.25, 0.5)
    wall = z0 + rng.uniform(0.8, 1.8)
    half = rng.uniform(0.4, 1.0)
    table = Plane(np.array([0.0, 1.0, 0.0]), cam_h, "table", extent=(-half, half, z0, wall - rng.uniform(0, 0.3)),
                  support=True)
    planes = [table, *_room(rng, floor, wall)]
    planes[2].support = False
    return Layout("tabletop", planes, pitch=np.radians(rng.uniform(25, 55)), roll=np.radians(rng.normal(0, 3)),
                  yaw=np.radians(rng.uniform(-20, 20)), height=cam_h, support_plane=0)


def floor_down(rng: np.random.Generator) -> Layout:
    """Looking steeply down at a floor (a robot arm's or a drone's view); a wall may show at the top."""
    return Layout("floor_down", _room(rng, rng.uniform(0.5, 1.5), rng.uniform(1.5, 4.0)),
                  pitch=np.radians(rng.uniform(45, 85)), roll=np.radians(rng.normal(0, 6)),
                  yaw=np.radians(rng.uniform(-45, 45)), support_plane=1)


def slanted_wall(rng: np.random.Generator) -> Layout:
    """One wall at a strong random slant (seen obliquely), with a floor or ceiling beside it."""
    a = np.radians(rng.uniform(35, 70)) * rng.choice([-1, 1])
    e = np.radians(rng.uniform(-20, 20))
    n = np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
    planes = [Plane(n, rng.uniform(1.2, 3.0), "wall")]
    if rng.random() < 0.5:
        planes.append(Plane(np.array([0.0, 1.0, 0.0]), rng.uniform(0.8, 1.5), "floor"))
    else:
        planes.append(Plane(np.array([0.0, -1.0, 0.0]), rng.uniform(0.8, 1.5), "ceiling"))
    planes.append(Plane(np.array([0.0, 0.0, 1.0]), rng.uniform(4.0, 7.0), "far"))
    return Layout("slanted_wall", planes, pitch=np.radians(rng.uniform(-15, 25)), roll=np.radians(rng.normal(0, 5)),
                  yaw=0.0)


def ceiling_room(rng: np.random.Generator) -> Layout:
    """A room seen level or looking up: wall, floor and ceiling, the ceiling near at the top."""
    return Layout("ceiling_room", _room(rng, rng.uniform(1.0, 1.6), rng.uniform(2.5, 5.0), rng.uniform(0.6, 1.2)),
                  pitch=np.radians(rng.uniform(-30, 5)), roll=np.radians(rng.normal(0, 4)),
                  yaw=np.radians(rng.uniform(-30, 30)))


# -- held out ---------------------------------------------------------------------------------------

def corridor(rng: np.random.Generator) -> Layout:
    """A narrow corridor: near side walls at both image borders, floor, ceiling, a far end wall."""
    return Layout("corridor", _room(rng, rng.uniform(0.8, 1.4), rng.uniform(5.0, 9.0), rng.uniform(0.6, 1.2),
                                    side=rng.uniform(0.6, 1.1)),
                  pitch=np.radians(rng.uniform(-10, 20)), roll=np.radians(rng.normal(0, 3)),
                  yaw=np.radians(rng.uniform(-15, 15)))


def shelf(rng: np.random.Generator) -> Layout:
    """Shelves: stacked horizontal boards (finite patches) in front of a back wall; objects stand on
    the middle board."""
    back = rng.uniform(1.2, 2.2)
    depth_of_board = rng.uniform(0.3, 0.5)
    gap = rng.uniform(0.3, 0.5)
    half = rng.uniform(0.5, 1.2)
    planes = [Plane(np.array([0.0, 0.0, 1.0]), back, "wall")]
    for k in (-1, 0, 1, 2):
        planes.append(Plane(np.array([0.0, 1.0, 0.0]), 0.15 + k * gap, f"board{k}",
                            extent=(-half, half, back - depth_of_board, back), support=k == 0))
    planes.append(Plane(np.array([0.0, 1.0, 0.0]), 0.15 + 3 * gap + 0.3, "floor"))
    return Layout("shelf", planes, pitch=np.radians(rng.uniform(0, 20)), roll=np.radians(rng.normal(0, 3)),
                  yaw=np.radians(rng.uniform(-20, 20)), support_plane=2)


def corner(rng: np.random.Generator) -> Layout:
    """A concave room corner facing the camera: two walls meeting in a vertical edge, and a floor."""
    d = rng.uniform(2.0, 4.0)
    a = np.radians(rng.uniform(35, 55))
    planes = [Plane(np.array([-np.sin(a), 0.0, np.cos(a)]), d * np.cos(a), "wall_left"),
              Plane(np.array([np.sin(a), 0.0, np.cos(a)]), d * np.cos(a), "wall_right"),
              Plane(np.array([0.0, 1.0, 0.0]), rng.uniform(0.8, 1.5), "floor")]
    return Layout("corner", planes, pitch=np.radians(rng.uniform(0, 25)), roll=np.radians(rng.normal(0, 4)),
                  yaw=np.radians(rng.uniform(-15, 15)))


FAMILIES = {"wall_floor": wall_floor, "tabletop": tabletop, "floor_down": floor_down, "slanted_wall": slanted_wall,
            "ceiling_room": ceiling_room, "corridor": corridor, "shelf": shelf, "corner": corner}
TRAIN = ("wall_floor", "tabletop", "floor_down", "slanted_wall", "ceiling_room")
HELDOUT = ("corridor", "shelf", "corner")


def make(rng: np.random.Generator, family: str) -> Layout:
    """A random layout of one family."""
    if family not in FAMILIES:
        raise ValueError(f"unknown layout family {family!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[family](rng)
