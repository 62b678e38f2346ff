"""image_codec: the project's own Image <-> numpy codec decodes every accepted encoding exactly as
the real cv_bridge Python core (../shared/ros/rolling/cv_bridge, vision_opencv 3.4.0) does, where
that code works, and correctly where it does not (rows padded by a non-multiple of the pixel size,
big-endian data under numpy 2).

cv_bridge's compiled helper (cv_bridge_boost) is not available here; its only part that
`imgmsg_to_cv2(..., "passthrough")` needs is the encoding -> OpenCV type table (getCvType,
CV_MAT_CNWrap, CV_MAT_DEPTHWrap), which is ported below from cv_bridge's src/cv_bridge.cpp."""

import re
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from m4sam_ros.msgs.image_codec import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    image_to_numpy,
    numpy_to_image,
    to_rgb,
)

# cv_bridge.cpp getCvType(): the fixed encodings, then the generic "<bits><U|S|F>C<n>" ones.
_FIXED = {"bgr8": cv2.CV_8UC3, "mono8": cv2.CV_8UC1, "rgb8": cv2.CV_8UC3, "mono16": cv2.CV_16UC1,
          "bgr16": cv2.CV_16UC3, "rgb16": cv2.CV_16UC3, "bgra8": cv2.CV_8UC4, "rgba8": cv2.CV_8UC4,
          "bgra16": cv2.CV_16UC4, "rgba16": cv2.CV_16UC4}
_DEPTH = {"8U": cv2.CV_8U, "8S": cv2.CV_8S, "16U": cv2.CV_16U, "16S": cv2.CV_16S, "32S": cv2.CV_32S,
          "32F": cv2.CV_32F, "64F": cv2.CV_64F}


def _get_cv_type(encoding: str) -> int:
    if encoding in _FIXED:
        return _FIXED[encoding]
    m = re.fullmatch(r"(8U|8S|16U|16S|32S|32F|64F)C([0-9]+)", encoding)
    if m:
        return cv2.CV_MAKETYPE(_DEPTH[m[1]], int(m[2]))
    m = re.fullmatch(r"(8U|8S|16U|16S|32S|32F|64F)", encoding)
    if m:
        return cv2.CV_MAKETYPE(_DEPTH[m[1]], 1)
    raise RuntimeError(f"Unrecognized image encoding [{encoding}]")


@pytest.fixture(scope="module")
def cv_bridge_core(shared_ros):
    """The real cv_bridge Python package, with the three table functions of its boost helper."""
    CV_BRIDGE_PY = shared_ros / "rolling" / "cv_bridge" / "python"  # noqa: N806
    assert (CV_BRIDGE_PY / "cv_bridge" / "core.py").is_file(), f"cv_bridge sources missing at {CV_BRIDGE_PY}"
    boost = types.ModuleType("cv_bridge.boost")
    helper = types.ModuleType("cv_bridge.boost.cv_bridge_boost")
    helper.getCvType = _get_cv_type
    helper.CV_MAT_CNWrap = lambda t: ((t >> 3) & 511) + 1  # OpenCV's CV_MAT_CN
    helper.CV_MAT_DEPTHWrap = lambda t: t & 7  # CV_MAT_DEPTH
    saved = {k: v for k, v in sys.modules.items() if k == "cv_bridge" or k.startswith("cv_bridge.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(CV_BRIDGE_PY))
    sys.modules["cv_bridge.boost"] = boost
    sys.modules["cv_bridge.boost.cv_bridge_boost"] = helper
    try:
        import cv_bridge

        assert Path(cv_bridge.__file__).parent == CV_BRIDGE_PY / "cv_bridge"
        yield cv_bridge.CvBridge()
    finally:
        sys.path.remove(str(CV_BRIDGE_PY))
        for k in [k for k in sys.modules if k == "cv_bridge" or k.startswith("cv_bridge.")]:
            del sys.modules[k]
        sys.modules.update(saved)


LAYOUT = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
          "mono8": (np.uint8, 1), "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1)}


def _array(encoding, h=6, w=7, seed=0):
    dtype, ch = LAYOUT[encoding]
    rng = np.random.default_rng(seed)
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dtype is np.float32:
        return rng.uniform(0.1, 8.0, shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def _msg(arr, encoding, pad=0, big_endian=False):
    h, w = arr.shape[:2]
    rows = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder(">" if big_endian else "<")))
    rows = rows.view(np.uint8).reshape(h, -1)
    data = np.concatenate([rows, np.full((h, pad), 0xCD, np.uint8)], axis=1)
    return Image(height=h, width=w, encoding=encoding, is_bigendian=big_endian, step=data.shape[1],
                 data=data.tobytes())


def test_the_accepted_encodings():
    assert set(SUPPORTED_ENCODINGS) == set(LAYOUT)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("pad_pixels", [0, 1, 5])
def test_same_arrays_as_cv_bridge(cv_bridge_core, encoding, pad_pixels):
    """Row padding by whole pixels: cv_bridge's own decoding works; both give the same array."""
    arr = _array(encoding, seed=pad_pixels)
    dtype, ch = LAYOUT[encoding]
    msg = _msg(arr, encoding, pad=pad_pixels * ch * np.dtype(dtype).itemsize)
    ref = cv_bridge_core.imgmsg_to_cv2(msg, "passthrough")
    ours = image_to_numpy(msg)
    assert np.array_equal(ref, arr)  # the reference is right here...
    assert ours.dtype == ref.dtype.newbyteorder("=") and ours.shape == ref.shape
    assert np.array_equal(ours, ref)  # ...and so are we, bit for bit
    assert ours.flags.c_contiguous and ours.flags.writeable


@pytest.mark.parametrize("encoding,pad", [("rgb8", 1), ("rgb8", 2), ("bgr8", 4), ("rgba8", 2),
                                          ("16UC1", 1), ("32FC1", 2)])
def test_padding_not_a_whole_pixel_cv_bridge_skews_we_do_not(cv_bridge_core, encoding, pad):
    """A step that is not a multiple of the pixel size (some drivers align rows to 4 bytes): the
    real cv_bridge reads the buffer as if rows had no padding and returns a skewed image."""
    arr = _array(encoding, h=5, w=5, seed=pad)
    msg = _msg(arr, encoding, pad=pad)
    assert np.array_equal(image_to_numpy(msg), arr)
    try:
        ref = cv_bridge_core.imgmsg_to_cv2(msg, "passthrough")
    except (TypeError, ValueError):
        assert encoding != "rgb8", "rgb8 with a 1-2 byte pad used to give a skewed image"
        return  # cv_bridge cannot even build the array: no silent corruption, but no image either
    assert not np.array_equal(ref, arr), "cv_bridge decoded it right after all: update this test"


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_big_endian(cv_bridge_core, encoding):
    """Big-endian data on this little-endian machine: we decode it; cv_bridge's byte swap uses
    ndarray.newbyteorder, which numpy 2 removed, so the real code fails there."""
    arr = _array(encoding, seed=7)
    msg = _msg(arr, encoding, pad=2, big_endian=True)
    ours = image_to_numpy(msg)
    assert np.array_equal(ours, arr) and ours.dtype.isnative
    if int(np.__version__.split(".")[0]) >= 2 and sys.byteorder == "little":
        with pytest.raises(AttributeError, match="newbyteorder"):
            cv_bridge_core.imgmsg_to_cv2(msg, "passthrough")
    else:  # numpy 1.x (`make test-numpy1`): the swap works, but a pad that is not a whole pixel skews rows
        ref = cv_bridge_core.imgmsg_to_cv2(msg, "passthrough")
        assert np.array_equal(ref, arr) == (2 % arr.itemsize == 0)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_encode_matches_cv_bridge(cv_bridge_core, encoding):
    """numpy_to_image writes what cv_bridge.cv2_to_imgmsg writes (fields and bytes)."""
    arr = _array(encoding, seed=3)
    ours = numpy_to_image(arr, encoding, factory=lambda **f: f)
    ref = cv_bridge_core.cv2_to_imgmsg(arr, encoding)
    assert (ours["height"], ours["width"], ours["step"], ours["encoding"], bool(ours["is_bigendian"])) == (
        ref.height, ref.width, ref.step, ref.encoding, bool(ref.is_bigendian))
    assert ours["data"].tobytes() == bytes(ref.data)


def test_to_rgb_channel_orders():
    rgb = _array("rgb8", seed=1)
    alpha = np.full(rgb.shape[:2] + (1,), 9, np.uint8)
    assert np.array_equal(to_rgb(rgb[..., ::-1], "bgr8"), rgb)
    assert np.array_equal(to_rgb(np.concatenate([rgb, alpha], 2), "rgba8"), rgb)
    assert np.array_equal(to_rgb(np.concatenate([rgb[..., ::-1], alpha], 2), "bgra8"), rgb)
    mono = rgb[..., 0]
    assert np.array_equal(to_rgb(mono, "mono8"), np.stack([mono] * 3, axis=2))
    with pytest.raises(ImageDecodeError, match="not a colour encoding"):
        to_rgb(mono, "16UC1")


def test_bad_messages_say_what_is_wrong():
    arr = _array("rgb8")
    with pytest.raises(ImageDecodeError, match="unsupported encoding 'yuv422'.*supported: rgb8"):
        image_to_numpy(Image(height=1, width=1, encoding="yuv422", step=2, data=bytes(2)))
    with pytest.raises(ImageDecodeError, match="step 20 is shorter than a row"):
        image_to_numpy(Image(height=6, width=7, encoding="rgb8", step=20, data=bytes(120)))
    with pytest.raises(ImageDecodeError, match="data length 125 != step\\*height"):
        image_to_numpy(Image(height=6, width=7, encoding="rgb8", step=21, data=bytes(125)))
    with pytest.raises(ImageDecodeError, match="zero-size"):
        image_to_numpy(Image(height=0, width=7, encoding="rgb8", step=21))
    with pytest.raises(ImageDecodeError, match="does not fit encoding 'mono8'"):
        numpy_to_image(arr, "mono8")
