"""The one camera model behind points, boxes and markers: image_geometry's numbers for binning,
ROI and distortion (the real PinholeCameraModel from ../shared/ros, and the pip-only fallback held
to it), resizing with a factor per axis, and back-projection that undoes the lens distortion.

Inputs are chosen so that the plausible wrong code fails: an off-centre principal point (a
"centre of the image" guess is wrong), different binning and scale factors per axis (the other
axis' factor is wrong), an ROI offset together with binning (subtract-then-divide, not the
reverse), distortion strong enough that ignoring it moves a point by centimetres.
"""

from __future__ import annotations

import cv2
import image_geometry
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CameraInfo, RegionOfInterest

from m4sam_ros.ros import compat, pipeline
from m4sam_ros.scene.camera import CameraModel, CameraModelError

K = [600.0, 0.0, 331.0, 0.0, 580.0, 236.0, 0.0, 0.0, 1.0]  # off-centre principal point, fx != fy
EYE = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def info(k=K, d=(), p=None, w=640, h=480, bx=0, by=0, roi=(0, 0, 0, 0), model="plumb_bob", r=EYE) -> CameraInfo:
    msg = CameraInfo(width=w, height=h, distortion_model=model, binning_x=bx, binning_y=by,
                     roi=RegionOfInterest(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3]))
    msg.header.frame_id = "camera_color_optical_frame"
    msg.k = [float(v) for v in k]
    msg.d = [float(v) for v in d]
    msg.r = [float(v) for v in r]
    msg.p = [float(v) for v in (p if p is not None else [k[0], 0, k[2], 0, 0, k[4], k[5], 0, 0, 0, 1, 0])]
    return msg


def real(msg: CameraInfo) -> image_geometry.PinholeCameraModel:
    m = image_geometry.PinholeCameraModel()
    m.fromCameraInfo(msg)
    return m


BOTH = [compat.ros_camera_model, compat.standin_camera_model]


@pytest.mark.parametrize("build", BOTH, ids=["image_geometry", "fallback"])
def test_binning_and_roi_shift_the_projection_as_image_geometry_does(build) -> None:
    # binning 2 x 4 and an ROI at (100, 40): c' = (c - offset) / binning, f' = f / binning
    msg = info(bx=2, by=4, roi=(100, 40, 400, 320))
    cam = build(msg)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (300.0, 145.0, 115.5, 49.0)
    assert (cam.width, cam.height) == (200, 80) and cam.frame_id == "camera_color_optical_frame"
    ig = real(msg)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (ig.fx(), ig.fy(), ig.cx(), ig.cy())
    for pt in ((0.3, -0.2, 2.0), (-1.0, 0.5, 4.5)):
        np.testing.assert_allclose(cam.project(np.array([pt]))[0], ig.project3dToPixel(pt), rtol=1e-12)
        # and back: the pixel of a point, at the point's depth, is the point
        u, v = ig.project3dToPixel(pt)
        np.testing.assert_allclose(cam.backproject(np.array([u]), np.array([v]), np.array([pt[2]]))[0], pt,
                                   rtol=1e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fx=st.floats(100, 2000), fy=st.floats(100, 2000), cx=st.floats(50, 600), cy=st.floats(50, 450),
       bx=st.integers(0, 4), by=st.integers(0, 4), xo=st.integers(0, 60), yo=st.integers(0, 60),
       with_p=st.booleans(), dist=st.lists(st.floats(-0.2, 0.2), min_size=5, max_size=5),
       distorted=st.booleans())
def test_fallback_gives_the_real_image_geometry_numbers(fx, fy, cx, cy, bx, by, xo, yo, with_p, dist,
                                                        distorted) -> None:
    """Property: for any calibration, binning and ROI, the fallback's K, D, R, P, image size and
    back-projected rays equal the real PinholeCameraModel's (its rectifyPoint + projectPixelTo3dRay)."""
    k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    p = [fx * 0.9, 0.0, cx + 3, 0.0, 0.0, fy * 0.9, cy - 2, 0.0, 0.0, 0.0, 1.0, 0.0] if with_p else None
    msg = info(k=k, d=dist if distorted else [0.0] * 5, p=p, bx=bx, by=by, roi=(xo, yo, 500, 400))
    mine, theirs = compat.standin_camera_model(msg), compat.ros_camera_model(msg)
    for a, b in ((mine.K, theirs.K), (mine.P, theirs.P), (mine.D, theirs.D), (mine.R, theirs.R)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert (mine.width, mine.height) == (theirs.width, theirs.height) == (500 // max(bx, 1), 400 // max(by, 1))
    ig = real(msg)
    us, vs = np.array([0.0, 17.0, 120.5, 230.0]), np.array([0.0, 99.0, 33.0, 180.0])
    xr, yr = mine.rays(us, vs)
    for u, v, x, y in zip(us, vs, xr, yr, strict=True):
        ray = ig.projectPixelTo3dRay(ig.rectifyPoint((u, v)))
        np.testing.assert_allclose((x, y), (ray[0] / ray[2], ray[1] / ray[2]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("build", BOTH, ids=["image_geometry", "fallback"])
def test_a_camera_info_without_p_takes_k(build) -> None:
    """Some drivers fill only K; P = [K | 0] (what a monocular calibration writes), shifted by the ROI."""
    cam = build(info(p=[0.0] * 12, roi=(30, 20, 500, 400)))
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (600.0, 580.0, 301.0, 216.0)


@pytest.mark.parametrize("build", BOTH, ids=["image_geometry", "fallback"])
def test_scaling_to_another_aspect_ratio_takes_each_axis_own_factor(build) -> None:
    """Issue 22 item 1: 640x480 -> 320x120 (x / 2, y / 4): cx' = (cx + .5) / 2 - .5, cy' = (cy + .5) / 4 - .5.
    The y factor on cx (or the x factor on cy) would give 82.375 / 118.75: both wrong here."""
    cam = build(info()).scaled_to(320, 120)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (300.0, 145.0, 165.25, 58.625)
    assert (cam.width, cam.height) == (320, 120)
    # a point projects onto the same place of the scene in both images
    pt = np.array([[0.4, -0.3, 2.5]])
    full = build(info()).project(pt)[0]
    np.testing.assert_allclose(cam.project(pt)[0], ((full[0] + 0.5) / 2 - 0.5, (full[1] + 0.5) / 4 - 0.5))


def test_scene_inputs_scale_the_camera_info_to_the_depth_image() -> None:
    depth = np.full((120, 320), 2000, np.uint16)
    depth_m, cam = pipeline.scene_inputs(depth, "16UC1", info(), pipeline.OutputSettings())
    assert (cam.cx, cam.cy, cam.fx, cam.fy) == (165.25, 58.625, 300.0, 145.0)
    assert depth_m.dtype == np.float32 and depth_m[0, 0] == pytest.approx(2.0)


@pytest.mark.parametrize("build", BOTH, ids=["image_geometry", "fallback"])
def test_plumb_bob_distortion_is_undone(build) -> None:
    """Points seen through a real lens model (OpenCV's projectPoints with K, D) come back where
    they were; a model that ignores D misses by centimetres at the image edge."""
    d = [-0.28, 0.09, 0.0012, -0.0009, -0.012]
    cam = build(info(d=d))
    rng = np.random.default_rng(3)
    pts = np.stack([rng.uniform(-1.2, 1.2, 50), rng.uniform(-0.9, 0.9, 50), rng.uniform(1.5, 4.0, 50)], axis=1)
    uv, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), np.array(K).reshape(3, 3), np.array(d))
    uv = uv.reshape(-1, 2)
    back = cam.backproject(uv[:, 0], uv[:, 1], pts[:, 2])
    np.testing.assert_allclose(back, pts, atol=2e-4)
    naive = CameraModel.pinhole(600.0, 580.0, 331.0, 236.0).backproject(uv[:, 0], uv[:, 1], pts[:, 2])
    assert np.abs(naive - pts).max() > 0.05


def test_equidistant_distortion_is_undone_like_the_cpp_model() -> None:
    d = [0.05, -0.01, 0.003, -0.0005]
    cam = compat.standin_camera_model(info(d=d, model="equidistant"))
    pts = np.array([[0.5, -0.4, 2.0], [-0.9, 0.6, 3.0], [0.0, 0.0, 1.0]])
    uv, _ = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), np.array(K).reshape(3, 3),
                                      np.array(d))
    uv = uv.reshape(-1, 2)
    np.testing.assert_allclose(cam.backproject(uv[:, 0], uv[:, 1], pts[:, 2]), pts, atol=2e-4)


def test_bad_camera_infos_are_refused_naming_the_problem() -> None:
    with pytest.raises(CameraModelError, match="uncalibrated") as exc:
        compat.standin_camera_model(info(k=[0.0] * 9, p=[0.0] * 12))
    assert exc.value.reason == "bad_camera_info"
    with pytest.raises(CameraModelError, match="non-finite"):
        compat.ros_camera_model(info(k=[float("nan")] + K[1:]))
    with pytest.raises(CameraModelError, match="kannala|not supported"):
        compat.standin_camera_model(info(d=[0.1, 0.0, 0.0, 0.0], model="kannala_brandt_x"))
    with pytest.raises(CameraModelError, match="3 coefficients"):
        compat.ros_camera_model(info(d=[0.1, 0.0, 0.01]))
    # a distortion model we do not undo is fine while its coefficients are all zero
    assert not compat.standin_camera_model(info(d=[0.0] * 4, model="kannala_brandt_x")).distorted
    with pytest.raises(CameraModelError, match="K must have 9"):
        compat.camera_model(type("Info", (), {**{f: getattr(info(), f) for f in (
            "d", "r", "p", "width", "height", "binning_x", "binning_y", "roi", "distortion_model", "header")},
            "k": [1.0, 2.0]})())


def test_camera_model_is_parsed_once_per_camera_info() -> None:
    a = compat.camera_model(info())
    assert compat.camera_model(info()) is a
    b = compat.camera_model(info(bx=2))
    assert b is not a and b.fx == 300.0
