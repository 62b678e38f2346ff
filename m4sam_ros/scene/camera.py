"""The one camera model behind every 3D output (boxes, markers, object points). No ROS imports.

``CameraModel`` holds what ``sensor_msgs/CameraInfo`` says about the image the depth is
registered to: K, D and the distortion model, R, P, with binning and ROI already applied the way
``image_geometry.PinholeCameraModel.fromCameraInfo`` applies them (focal lengths divided by the
binning, the principal point shifted by the ROI offset, then divided). ``ros/compat.py`` builds it
from the real image_geometry when that is importable and from :meth:`CameraModel.from_camera_info`
(this module's numpy copy of the same arithmetic) otherwise; ``test/test_camera_model.py`` holds
the two to the same numbers.

Back-projection follows image_geometry too: the depth image is the raw image the CameraInfo
describes (RealSense's aligned depth is), so a pixel is rectified (``rectifyPoint``: OpenCV's
undistortPoints with K, D, R, P; the ``equidistant`` model through cv2.fisheye, as the C++
PinholeCameraModel does) and turned into a ray with P (``projectPixelTo3dRay``); the ray scaled
to the pixel's depth is the 3D point (camera optical frame: x right, y down, z forward, metres).
With D = 0, R = I and P = [K | 0] (RealSense) rectification is the identity and the ray is
``((u - cx) / fx, (v - cy) / fy, 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

#: distortion models whose non-zero D this model can undo (image_geometry's names)
PLUMB_BOB_LIKE = ("plumb_bob", "rational_polynomial", "")
EQUIDISTANT = "equidistant"


#: focal lengths (pixels) a real camera can have: below 1 px or above 1e6 px is a broken calibration
FOCAL_RANGE = (1.0, 1e6)
#: principal point bound (pixels): far outside any image a sensor can produce
PRINCIPAL_LIMIT = 1e6


def intrinsics_problem(fx: float, fy: float, cx: float, cy: float) -> str | None:
    """Why these intrinsics cannot be used (None: usable). Finite and > 0 is not enough: a
    subnormal focal length (5e-324) back-projects every pixel to inf/NaN."""
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)):
        return f"intrinsics must be finite, got fx={fx} fy={fy} cx={cx} cy={cy}: check the camera_info topic"
    if not (FOCAL_RANGE[0] <= fx <= FOCAL_RANGE[1] and FOCAL_RANGE[0] <= fy <= FOCAL_RANGE[1]):
        return (f"focal lengths must be {FOCAL_RANGE[0]:g}..{FOCAL_RANGE[1]:g} px, got fx={fx:g} fy={fy:g}: "
                "not a usable calibration")
    if abs(cx) > PRINCIPAL_LIMIT or abs(cy) > PRINCIPAL_LIMIT:
        return f"principal point cx={cx:g} cy={cy:g} is beyond {PRINCIPAL_LIMIT:g} px: not a usable calibration"
    return None


class CameraModelError(ValueError):
    """A CameraInfo that cannot describe the image; ``reason`` is the node's counter key."""

    reason = "bad_camera_info"

    def __init__(self, detail: str) -> None:
        super().__init__(f"bad_camera_info: {detail}")
        self.detail = detail


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A pinhole camera (+ distortion) for an image of ``width`` x ``height`` pixels.

    ``K`` (3x3), ``P`` (3x4) already carry binning and ROI; ``width``/``height`` are the size of
    the image they describe (ROI size / binning; 0 when the CameraInfo gave none)."""

    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    width: int
    height: int
    distortion_model: str = "plumb_bob"
    frame_id: str = ""
    _rays: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------------------- building
    @classmethod
    def from_matrices(cls, K: Any, D: Any, R: Any, P: Any, width: int, height: int,  # noqa: N803 - ROS names
                      distortion_model: str = "plumb_bob", frame_id: str = "") -> CameraModel:
        """Checks and completes matrices (as from image_geometry): an all-zero P becomes [K | 0]
        and an all-zero R the identity (what a monocular calibration writes); raises
        CameraModelError naming the field when the camera cannot project."""
        k = np.array(K, np.float64).reshape(3, 3)
        p = np.array(P, np.float64).reshape(3, 4)
        r = np.array(R, np.float64).reshape(3, 3)
        d = np.array(D if D is not None else [], np.float64).reshape(-1)
        if not np.isfinite(k).all() or not np.isfinite(p).all() or not np.isfinite(d).all() \
                or not np.isfinite(r).all():
            raise CameraModelError(f"non-finite values in K/D/R/P (fx={k[0, 0]} fy={k[1, 1]} cx={k[0, 2]} "
                                   f"cy={k[1, 2]}): check the camera_info topic")
        if not p.any():
            p = np.concatenate([k, np.zeros((3, 1))], axis=1)
        if not r.any():
            r = np.eye(3)
        for name, m in (("K", k), ("P", p)):
            if m[0, 0] <= 0 or m[1, 1] <= 0:
                raise CameraModelError(f"focal lengths in {name} must be > 0, got fx={m[0, 0]} fy={m[1, 1]}: an "
                                       "uncalibrated camera publishes zeros; calibrate it (camera_calibration)")
            problem = intrinsics_problem(m[0, 0], m[1, 1], m[0, 2], m[1, 2])
            if problem is not None:
                raise CameraModelError(f"{name}: {problem}")
        model = str(distortion_model or "")
        if d.any() and model not in PLUMB_BOB_LIKE and model != EQUIDISTANT:
            raise CameraModelError(f"distortion model {model!r} with non-zero D is not supported; use plumb_bob, "
                                   "rational_polynomial or equidistant, or publish rectified depth with D = 0")
        if d.any() and model == EQUIDISTANT and d.size < 4:
            raise CameraModelError(f"equidistant distortion needs 4 coefficients, got {d.size}")
        if d.any() and model != EQUIDISTANT and d.size not in (4, 5, 8, 12, 14):
            raise CameraModelError(f"{model or 'plumb_bob'} distortion with {d.size} coefficients; OpenCV takes "
                                   "4, 5, 8, 12 or 14 (plumb_bob: 5, rational_polynomial: 8)")
        return cls(k, d, r, p, int(width), int(height), model, str(frame_id))

    @classmethod
    def from_camera_info(cls, info: Any) -> CameraModel:
        """image_geometry's fromCameraInfo in numpy, for installs without image_geometry: binning
        (0 means 1) divides the focal lengths, the ROI offset shifts the principal point first;
        an all-zero ROI is the full image. Works on rclpy and rosbags CameraInfo alike."""
        bx, by = max(1, int(info.binning_x)), max(1, int(info.binning_y))
        roi = info.roi
        x_off, y_off = int(roi.x_offset), int(roi.y_offset)
        roi_w, roi_h = int(roi.width), int(roi.height)
        if x_off == 0 and y_off == 0 and roi_w == 0 and roi_h == 0:
            roi_w, roi_h = int(info.width), int(info.height)
        k = np.array(info.k, np.float64).reshape(3, 3)
        p = np.array(info.p, np.float64).reshape(3, 4)
        if not p.any():  # before the ROI shift, so that [K | 0] is shifted like K
            p = np.concatenate([k, np.zeros((3, 1))], axis=1)
        for m in (k, p):
            m[0, 0] /= bx
            m[1, 1] /= by
            m[0, 2] = (m[0, 2] - x_off) / bx
            m[1, 2] = (m[1, 2] - y_off) / by
        frame = getattr(getattr(info, "header", None), "frame_id", "")
        return cls.from_matrices(k, list(info.d), info.r, p, roi_w // bx, roi_h // by, str(info.distortion_model),
                                 frame)

    @classmethod
    def pinhole(cls, fx: float, fy: float, cx: float, cy: float, width: int = 0, height: int = 0,
                frame_id: str = "") -> CameraModel:
        """A distortion-free camera from four numbers (tests, synthetic data)."""
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls.from_matrices(k, [], np.eye(3), np.concatenate([k, np.zeros((3, 1))], axis=1), width, height,
                                 "plumb_bob", frame_id)

    # ------------------------------------------------------------------------------ properties
    @property
    def fx(self) -> float:
        """P's x focal length (image_geometry's fx())."""
        return float(self.P[0, 0])

    @property
    def fy(self) -> float:
        return float(self.P[1, 1])

    @property
    def cx(self) -> float:
        return float(self.P[0, 2])

    @property
    def cy(self) -> float:
        return float(self.P[1, 2])

    @property
    def distorted(self) -> bool:
        """Whether D has a non-zero coefficient (pixels are rectified before projecting)."""
        return bool(self.D.size and self.D.any())

    def scaled_to(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to ``width`` x ``height`` (a camera_info of
        another resolution than the depth). Each axis takes its own factor, pixel centres stay
        on pixel centres: c' = (c + 0.5) s - 0.5. Unknown size (0) or the same size: unchanged."""
        if self.width <= 0 or self.height <= 0 or (int(width), int(height)) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        s = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return CameraModel(s @ self.K, self.D, self.R, s @ self.P, int(width), int(height), self.distortion_model,
                           self.frame_id)

    # ---------------------------------------------------------------------------- projection
    @property
    def identity_rectification(self) -> bool:
        """Whether rectify() is the identity: no distortion, R = I and P's 3x3 part = K."""
        return (not self.distorted and np.array_equal(self.R, np.eye(3))
                and np.array_equal(self.P[:, :3], self.K))

    def rectify(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rectified pixel coordinates of raw pixels (image_geometry's rectifyPoint, vectorised:
        undistort with K and D, rotate by R, project with P)."""
        u = np.asarray(u, np.float64)
        v = np.asarray(v, np.float64)
        if self.identity_rectification:
            return u, v
        src = np.stack([u.reshape(-1), v.reshape(-1)], axis=1).reshape(-1, 1, 2)
        if self.distortion_model == EQUIDISTANT and self.distorted:
            dst = cv2.fisheye.undistortPoints(src, self.K, self.D[:4], R=self.R, P=self.P)
        else:
            dst = cv2.undistortPoints(src, self.K, self.D if self.distorted else None, R=self.R, P=self.P)
        dst = dst.reshape(-1, 2)
        return dst[:, 0].reshape(u.shape), dst[:, 1].reshape(v.shape)

    def rays(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x/z, y/z) of the rays through raw pixels (u, v): rectify, then P's intrinsics."""
        ur, vr = self.rectify(u, v)
        return (ur - self.cx) / self.fx, (vr - self.cy) / self.fy

    def ray_grid(self, height: int, width: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``rays`` of every ``stride``-th pixel of an image, cached (undistortion is costly)."""
        key = (int(height), int(width), int(stride))
        if key not in self._rays:
            vs, us = np.mgrid[0:height:stride, 0:width:stride]
            xr, yr = self.rays(us, vs)
            self._rays.clear()
            self._rays[key] = (xr.astype(np.float32), yr.astype(np.float32))
        return self._rays[key]

    def backproject(self, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(N, 3) float32 points at depth ``z`` (metres along the optical axis) of pixels (u, v)."""
        xr, yr = self.rays(u, v)
        z = np.asarray(z, np.float64)
        return np.stack([xr * z, yr * z, z], axis=-1).reshape(-1, 3).astype(np.float32)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) rectified pixel coordinates of (N, 3) points (image_geometry's project3dToPixel)."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        h = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ self.P.T
        with np.errstate(divide="ignore", invalid="ignore"):
            return h[:, :2] / h[:, 2:3]

    def describe(self) -> str:
        """One line for logs: size, focal lengths, principal point, distortion."""
        dist = f"{self.distortion_model} D={np.round(self.D, 4).tolist()}" if self.distorted else "no distortion"
        return (f"{self.width}x{self.height} fx={self.fx:.2f} fy={self.fy:.2f} cx={self.cx:.2f} cy={self.cy:.2f}, "
                f"{dist}")


__all__ = ["CameraModel", "CameraModelError", "EQUIDISTANT", "PLUMB_BOB_LIKE"]
