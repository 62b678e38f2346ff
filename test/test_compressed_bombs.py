"""Issue 21: hostile CompressedImages are refused before anything is allocated, and RVL is strict.

The bombs come from the benchmark's corpus generator (m4sam_ros/benchmarks/bomb_bench.py); their
peak RSS is measured in a fresh interpreter (VmHWM reset per message) and must stay under 2x the
decoded colour frame at the size limit. Each bomb claims 16000 x 16000 (768 MB if decoded), so a
decoder that checks after decoding is caught by a factor of ~100, not by a timing."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import numpy as np
import pytest
from test_compressed import RefRvl, _depth_mm, _rgb, ref_compressed_color, ref_compressed_depth

from m4sam_ros.benchmarks import bomb_bench
from m4sam_ros.msgs import compressed as cz

SIDE = 16000
LIMIT = 1280 * 720
BOUND_MB = 2 * 3 * LIMIT / 2**20  # 2 x the decoded colour frame at the limit: 5.3 MB


@pytest.fixture(scope="module")
def measured() -> dict:
    return bomb_bench.run_isolated(side=SIDE, max_pixels=LIMIT, legit=False)


def test_every_bomb_class_is_refused_within_the_rss_bound(measured: dict) -> None:
    rows = {r["name"]: r for r in measured["bombs"]}
    assert set(rows) == {b.name for b in bomb_bench.corpus(SIDE)}
    expected = {
        "jpeg_sof_claim": "too_large", "jpeg_stray_byte_before_sof": "too_large",
        "jpeg_fill_and_garbage": "too_large", "jpeg_progressive_sof2": "too_large",
        "jpeg_arithmetic_sof9": "too_large", "webp_on_png_topic": "color_unsupported_format",
        "tiff_on_jpeg_topic": "color_unsupported_format", "jpeg_on_png_topic": "color_unsupported_format",
        "png_ihdr_claim": "too_large", "png16_colour": "color_unsupported_encoding",
        "depth_png_holding_stray_jpeg": "depth_unsupported_format", "depth_png_ihdr_claim": "too_large",
        "rvl_trailing_8MB": "too_large",  # over this limit's byte cap first; trailing data itself: tests below
        "rvl_size_claim": "too_large", "over_byte_limit": "too_large",
    }
    for name, reason in expected.items():
        assert rows[name]["outcome"] == f"refused: {reason}", rows[name]
        assert rows[name]["ours_mb"] <= BOUND_MB, rows[name]


def test_the_rss_probe_sees_a_real_decode() -> None:
    """The measurement itself: decoding a frame at the limit shows up (>= the frame), so a bomb's
    ~0 MB is the decoder not allocating, not the probe missing it."""
    rgb = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    fmt, data = cz.encode_color(rgb, codec="png", png_level=1)
    grew, outcome = bomb_bench.peak_growth_mb(cz.decode_color, SimpleNamespace(format=fmt, data=data), LIMIT)
    assert outcome == "decoded" and grew >= 0.9 * 1280 * 720 * 3 / 2**20


def _jpeg_claiming(w: int, h: int, stray: bytes = b"") -> bytes:
    return bomb_bench._patch_sof(bytes(ref_compressed_color(_rgb(), "rgb8", "jpeg").data), w, h, stray)


@pytest.mark.parametrize("stray", [b"", b"\x00", b"\x12\x34", b"\xff\x00\xff\xff", b"\xff\xff\xff"])
def test_jpeg_frame_header_is_found_past_what_libjpeg_skips(stray: bytes) -> None:
    data = _jpeg_claiming(64, 48, stray)  # the real size: still decodable, libjpeg skips the stray bytes
    header = cz.read_header(np.frombuffer(data, np.uint8), "jpeg")
    assert (header.width, header.height, header.bits, header.channels) == (64, 48, 8, 3)
    with pytest.raises(cz.CompressedImageError) as info:
        cz.decode_color(SimpleNamespace(format="rgb8; jpeg compressed bgr8", data=_jpeg_claiming(60000, 300, stray)),
                        max_pixels=64 * 48)
    assert info.value.reason == "too_large" and "60000x300" in str(info.value)


def test_decode_checks_the_decoded_size_against_the_header() -> None:
    ok = cz.decode_color(SimpleNamespace(format="rgb8; jpeg compressed bgr8", data=_jpeg_claiming(64, 48, b"\0")))
    assert ok.shape == (48, 64, 3)
    # a header parse that missed a frame (libjpeg's second SOF is an error anyway) never yields another size
    png = bytes(ref_compressed_color(_rgb(), "rgb8", "png").data)
    assert cz.read_header(png, "png")[:3] == ("png", 64, 48)


def test_formats_the_format_string_does_not_name_are_refused() -> None:
    png = bytes(ref_compressed_color(_rgb(), "rgb8", "png").data)
    jpg = bytes(ref_compressed_color(_rgb(), "rgb8", "jpeg").data)
    for fmt, data in (("rgb8; jpeg compressed bgr8", png), ("rgb8; png compressed bgr8", jpg)):
        with pytest.raises(cz.CompressedImageError) as info:
            cz.decompress(SimpleNamespace(format=fmt, data=data), "color")
        assert info.value.reason == "color_unsupported_format"
    # both still decode under their own names
    for fmt, data in (("rgb8; png compressed bgr8", png), ("rgb8; jpeg compressed bgr8", jpg)):
        assert cz.decode_color(SimpleNamespace(format=fmt, data=data)).shape == (48, 64, 3)


def test_message_bytes_are_limited() -> None:
    jpg = bytes(ref_compressed_color(_rgb(), "rgb8", "jpeg").data)
    limit = cz.max_message_bytes(64 * 48)
    padded = jpg + bytes(limit - len(jpg))  # exactly the limit: decoded (libjpeg ignores data after EOI)
    assert cz.decompress(SimpleNamespace(format="rgb8; jpeg compressed bgr8", data=padded), "color",
                         None, 64 * 48)["width"] == 64
    with pytest.raises(cz.CompressedImageError) as info:
        cz.decompress(SimpleNamespace(format="rgb8; jpeg compressed bgr8", data=padded + b"\0"), "color", None,
                      64 * 48)
    assert info.value.reason == "too_large" and f"over the {limit} B" in str(info.value)


def test_untrusted_format_strings_are_quoted_short() -> None:
    with pytest.raises(cz.CompressedImageError) as info:
        cz.decompress(SimpleNamespace(format="x\n" * 500_000, data=b"\0" * 20), "color")
    text = str(info.value)
    assert len(text) < 400 and "\n" not in text and "(1000000 chars)" in text


# ------------------------------------------------------------------------------------------- RVL
def _rvl_msg(d: np.ndarray) -> bytes:
    return bytes(ref_compressed_depth(d, "16UC1", "rvl").data)


@pytest.mark.parametrize("extra", [b"\0\0\0\0", b"\x01\0\0\0", b"\0", b"\0\0\0\0" * 1000])
def test_rvl_trailing_data_is_refused(extra: bytes) -> None:
    good = _rvl_msg(_depth_mm())
    assert cz.decode_depth(SimpleNamespace(format="16UC1; compressedDepth rvl", data=good))[0].shape == (24, 32)
    with pytest.raises(cz.CompressedImageError, match="trailing data|data after the image"):
        cz.decode_depth(SimpleNamespace(format="16UC1; compressedDepth rvl", data=good + extra))


def test_rvl_nonzero_padding_in_the_last_word_is_refused() -> None:
    px = np.array([5, 0, 7], np.uint16)  # 6 nibbles: the last word has 2 padding nibbles
    ref = RefRvl().compress([int(v) for v in px])
    np.testing.assert_array_equal(cz.rvl_decode(ref, 3), px)
    bad = (int.from_bytes(ref[-4:], "little") | 0x3).to_bytes(4, "little")
    with pytest.raises(cz.CompressedImageError, match="trailing data"):
        cz.rvl_decode(ref[:-4] + bad, 3)


def test_rvl_runs_past_or_short_of_the_image_are_refused() -> None:
    px = np.array([0, 0, 3, 4, 0, 9], np.uint16)
    ref = RefRvl().compress([int(v) for v in px])
    for n in (5, 7, 60):  # the stream holds 6 pixels
        with pytest.raises(cz.CompressedImageError):
            cz.rvl_decode(ref, n)
    np.testing.assert_array_equal(cz.rvl_decode(ref, 6), px)


@pytest.mark.parametrize("seed", range(6))
def test_rvl_decodes_the_reference_encoder_on_hard_patterns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    kind = seed % 3
    if kind == 0:    # alternating zero / nonzero with extreme deltas
        px = np.zeros(n, np.uint16)
        px[1::2] = rng.choice([1, 65535], size=px[1::2].size)
    elif kind == 1:  # long zero runs (counts of several nibbles) and single pixels
        px = np.where(rng.random(n) < 0.97, 0, rng.integers(1, 65535, n)).astype(np.uint16)
    else:            # dense noise
        px = rng.integers(0, 65535, n).astype(np.uint16)
    ref = RefRvl().compress([int(v) for v in px])
    assert cz.rvl_encode(px) == ref and len(ref) <= cz.rvl_max_bytes(n)
    np.testing.assert_array_equal(cz.rvl_decode(ref, n), px)


def test_rvl_worst_case_stream_fits_the_length_bound() -> None:
    """The bound the decoder refuses above is never hit by the reference encoder: alternating
    1-pixel zero runs and +-65535 deltas are the longest stream per pixel."""
    for n in (1, 2, 3, 1001, 1002):
        px = np.zeros(n, np.uint16)
        px[1::2] = np.where(np.arange(px[1::2].size) % 2, 65535, 1)
        px2 = np.where(np.arange(n) % 2, 65535, 1).astype(np.uint16)
        for p in (px, px2):
            assert len(cz.rvl_encode(p)) <= cz.rvl_max_bytes(n)
            np.testing.assert_array_equal(cz.rvl_decode(cz.rvl_encode(p), n), p)


def test_rvl_payload_size_words_are_checked_before_decoding() -> None:
    hdr = cz.CONFIG_HEADER.pack(0, 0.0, 0.0)
    claim = hdr + struct.pack("<II", 5000, 5000) + bytes(1 << 20)
    with pytest.raises(cz.CompressedImageError) as info:
        cz.decompress(SimpleNamespace(format="16UC1; compressedDepth rvl", data=claim), "depth", None, LIMIT)
    assert info.value.reason == "too_large" and "5000x5000" in str(info.value)
    d = _depth_mm()
    out = cz.decode_depth(SimpleNamespace(format="16UC1; compressedDepth rvl", data=_rvl_msg(d)))[0]
    expected = d.copy()
    expected[expected > 10000] = 0
    np.testing.assert_array_equal(out, expected)
