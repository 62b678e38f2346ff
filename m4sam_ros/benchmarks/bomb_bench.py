"""Decompression-bomb benchmark: the peak resident memory one hostile CompressedImage costs the
node's decoder (``msgs.compressed.decompress``), against a plain ``cv2.imdecode`` of the same
bytes (what decoding before checking costs), each measured in a fresh subprocess.

    python -m m4sam_ros.benchmarks.bomb_bench                    # bombs claim 8000x8000
    python -m m4sam_ros.benchmarks.bomb_bench --side 16000 --no-baseline

The corpus (``corpus()``) is built here from small real images with patched headers, so it needs
no files: JPEG frame headers claiming a huge size behind stray bytes, fill bytes, a progressive
or arithmetic SOF; WebP / TIFF / a JPEG on a ``png`` topic; a stray-byte JPEG inside
``compressedDepth png``; a PNG IHDR claim; RVL with trailing data or a huge size; a 16-bit colour
PNG; a message over the byte limit. The goal: peak RSS growth for any one message <= 2x the decoded
colour frame at the size limit (``max_image_pixels`` x 3 bytes). Peak RSS is the kernel's VmHWM,
reset through ``/proc/self/clear_refs`` before each message (Linux >= 4.0).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from m4sam_ros.msgs import compressed as cz

#: node default (params.py max_image_pixels)
DEFAULT_MAX_PIXELS = 4096 * 2304


@dataclass
class Bomb:
    """One hostile message: the side it is sent on, its ``format`` and ``data``, what it claims."""

    name: str
    side: str
    format: str
    data: bytes
    claims: str

    def message(self) -> SimpleNamespace:
        """A duck-typed CompressedImage (``format`` and ``data``), as rclpy and rosbags give them."""
        return SimpleNamespace(format=self.format, data=self.data)


def _small_jpeg(progressive: bool = False) -> bytes:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[4:12, 4:12] = (200, 40, 90)
    ok, buf = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE,
                                         int(progressive)])
    assert ok
    return buf.tobytes()


def _patch_sof(jpeg: bytes, width: int, height: int, stray: bytes = b"", marker: int | None = None) -> bytes:
    """The JPEG with its frame header claiming ``width`` x ``height`` (16-bit fields), ``stray``
    bytes inserted before the SOF marker and optionally another SOF variant."""
    b = bytearray(jpeg)
    sof = next(i for i in range(2, len(b) - 1) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC1, 0xC2))
    b[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    if marker is not None:
        b[sof + 1] = marker
    return bytes(b[:sof]) + stray + bytes(b[sof:])


def _png_claim(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    b = bytearray(buf.tobytes())
    b[16:24] = struct.pack(">II", width, height)
    return bytes(b)


def _webp_claim(side: int) -> bytes:
    """A small lossless WebP whose VP8L header claims ``side`` x ``side`` (14-bit fields)."""
    ok, buf = cv2.imencode(".webp", np.zeros((8, 8, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok
    b = bytearray(buf.tobytes())
    i = b.find(b"VP8L")
    if i >= 0:
        bits = ((side - 1) & 0x3FFF) | (((side - 1) & 0x3FFF) << 14) | (int.from_bytes(b[i + 9:i + 13], "little")
                                                                        & ~0xFFFFFFF)
        b[i + 9:i + 13] = bits.to_bytes(4, "little")
    return bytes(b)


def _tiff(side: int, big: bool) -> bytes:
    """A TIFF of ``side`` x ``side`` (deflate-compressed flat colour: a few kB) or, without
    ``big``, a small one (the check refuses it by its signature either way)."""
    n = side if big else 64
    ok, buf = cv2.imencode(".tiff", np.full((n, n, 3), 77, np.uint8), [cv2.IMWRITE_TIFF_COMPRESSION, 8])
    assert ok
    return buf.tobytes()


def corpus(side: int = 8000, big: bool = False) -> list[Bomb]:
    """Every bomb class; ``side`` is the claimed width and height (<= 65535). ``big`` makes the
    TIFF a real ``side`` x ``side`` image (encoding it takes that much memory once, here)."""
    jpg, prog = _small_jpeg(), _small_jpeg(progressive=True)
    colour = "rgb8; jpeg compressed bgr8"
    depth_hdr = cz.CONFIG_HEADER.pack(cz.INV_DEPTH, 0.0, 0.0)
    small_rvl = struct.pack("<II", 64, 48) + cz.rvl_encode(np.full(64 * 48, 900, np.uint16))
    png16 = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint16))[1].tobytes()
    claim = f"{side}x{side}"
    return [
        Bomb("jpeg_sof_claim", "color", colour, _patch_sof(jpg, side, side), claim),
        Bomb("jpeg_stray_byte_before_sof", "color", colour, _patch_sof(jpg, side, side, b"\x00"), claim),
        Bomb("jpeg_fill_and_garbage", "color", colour, _patch_sof(jpg, side, side, b"\x12\x34\xff\x00\xff\xff"),
             claim),
        Bomb("jpeg_progressive_sof2", "color", colour, _patch_sof(prog, side, side), claim),
        Bomb("jpeg_arithmetic_sof9", "color", colour, _patch_sof(jpg, side, side, marker=0xC9), claim),
        Bomb("webp_on_png_topic", "color", "rgb8; png compressed bgr8", _webp_claim(min(side, 16383)),
             f"{min(side, 16383)}^2"),
        Bomb("tiff_on_jpeg_topic", "color", colour, _tiff(side, big), claim if big else "64x64"),
        Bomb("jpeg_on_png_topic", "color", "rgb8; png compressed bgr8", _patch_sof(jpg, side, side), claim),
        Bomb("png_ihdr_claim", "color", "rgb8; png compressed bgr8", _png_claim(side, side), claim),
        Bomb("png16_colour", "color", "rgb8; png compressed bgr8", png16, "8x8x16bit"),
        Bomb("depth_png_holding_stray_jpeg", "depth", "16UC1; compressedDepth png",
             depth_hdr + _patch_sof(jpg, side, side, b"\x00"), claim),
        Bomb("depth_png_ihdr_claim", "depth", "16UC1; compressedDepth png", depth_hdr + _png_claim(side, side),
             claim),
        Bomb("rvl_trailing_8MB", "depth", "16UC1; compressedDepth rvl", depth_hdr + small_rvl + bytes(8 << 20),
             "64x48 + 8 MB"),
        Bomb("rvl_size_claim", "depth", "16UC1; compressedDepth rvl",
             depth_hdr + struct.pack("<II", side, side) + bytes(4096), claim),
        Bomb("over_byte_limit", "color", colour, jpg + bytes(cz.max_message_bytes(DEFAULT_MAX_PIXELS)),
             "limit + 1 B"),
    ]


# ------------------------------------------------------------------------------- measurement
def _hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _trim() -> None:
    """Hands freed heap memory back to the kernel, so the RSS before a call holds no free pages
    a decoder could reuse unseen (glibc keeps them otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the subprocess env's mmap threshold still applies
        pass


def peak_growth_mb(fn: object, *args: object) -> tuple[float, str]:
    """(peak RSS over the RSS before, in MB; the outcome) of calling ``fn(*args)``."""
    gc.collect()
    _trim()
    _reset_peak()
    before = _rss_kb()
    try:
        out = fn(*args)  # type: ignore[operator]
        outcome = "decoded" if out is not None else "None"
        del out
    except cz.CompressedImageError as exc:
        outcome = f"refused: {exc.reason}"
    except Exception as exc:  # noqa: BLE001 - a baseline decoder may raise anything
        outcome = f"{type(exc).__name__}"
    return (_hwm_kb() - before) / 1024, outcome


def measure(names: list[str] | None, side: int, max_pixels: int, baseline: bool, big: bool) -> list[dict]:
    """In this process: each bomb through ``decompress`` (and ``cv2.imdecode`` with ``baseline``)."""
    rows = []
    for bomb in corpus(side, big):
        if names and bomb.name not in names:
            continue
        msg = bomb.message()
        ours, outcome = peak_growth_mb(cz.decompress, msg, bomb.side, None, max_pixels)
        row = {"name": bomb.name, "claims": bomb.claims, "bytes": len(bomb.data), "ours_mb": round(ours, 2),
               "outcome": outcome}
        if baseline:
            payload = np.frombuffer(bomb.data[12:] if bomb.side == "depth" else bomb.data, np.uint8)
            base, base_out = peak_growth_mb(cv2.imdecode, payload, cv2.IMREAD_UNCHANGED)
            row.update(baseline_mb=round(base, 2), baseline_outcome=base_out)
        rows.append(row)
    return rows


def legit_at_limit(max_pixels: int) -> list[dict]:
    """The control: real frames of about ``max_pixels`` (16:9) decoded, with their peak growth."""
    w = int((max_pixels * 16 / 9) ** 0.5) // 16 * 16
    h = max_pixels // w
    rng = np.random.default_rng(0)
    rgb = cv2.resize(rng.integers(0, 255, (h // 32, w // 32, 3), dtype=np.uint8), (w, h))
    depth = (cv2.resize(rng.integers(500, 4000, (h // 32, w // 32)).astype(np.float32), (w, h))).astype(np.uint16)
    rows = []
    for name, side, (fmt, data) in (("jpeg_frame", "color", cz.encode_color(rgb, codec="jpeg")),
                                    ("png_frame", "color", cz.encode_color(rgb, codec="png", png_level=1)),
                                    ("depth_png_frame", "depth", cz.encode_depth(depth, "16UC1", "png", png_level=1)),
                                    ("depth_rvl_frame", "depth", cz.encode_depth(depth, "16UC1", "rvl"))):
        msg = SimpleNamespace(format=fmt, data=data)
        fn = cz.decode_color if side == "color" else cz.decode_depth
        arr_mb, outcome = peak_growth_mb(fn, msg, max_pixels)
        msg_mb, _ = peak_growth_mb(cz.decompress, msg, side, None, max_pixels)
        frame_mb = w * h * (3 if side == "color" else 2) / 2**20
        rows.append({"name": f"{name} {w}x{h}", "bytes": len(data), "frame_mb": round(frame_mb, 2),
                     "array_mb": round(arr_mb, 2), "message_mb": round(msg_mb, 2), "outcome": outcome})
    return rows


def run_isolated(names: list[str] | None = None, side: int = 8000, max_pixels: int = DEFAULT_MAX_PIXELS,
                 baseline: bool = False, big: bool = False, legit: bool = False) -> dict:
    """``measure`` (and ``legit_at_limit``) in a fresh interpreter: nothing earlier in this process
    (imports, caches) moves the figures."""
    args = [sys.executable, "-m", "m4sam_ros.benchmarks.bomb_bench", "--json", "--side", str(side),
            "--max-pixels", str(max_pixels)] + (["--only", ",".join(names)] if names else []) \
        + ([] if baseline else ["--no-baseline"]) + (["--big"] if big else []) + (["--legit"] if legit else [])
    # a fixed mmap threshold: every large buffer is its own mapping, returned to the kernel when freed
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    root = Path(__file__).resolve().parents[2]  # the package's parent: importable as in this process
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    out = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env, cwd=root)
    if out.returncode != 0:
        raise RuntimeError(f"bomb_bench failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Console entry: prints one line per bomb and the verdict; exit 1 if a bomb breaks the bound."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, default=8000, help="claimed width = height of the bombs (<= 65535)")
    ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="the node's max_image_pixels")
    ap.add_argument("--only", default="", help="comma-separated bomb names")
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain cv2.imdecode baseline")
    ap.add_argument("--big", action="store_true", help="a real side x side TIFF (costs that memory to build)")
    ap.add_argument("--legit", action="store_true", help="also decode real frames at the size limit")
    ap.add_argument("--json", action="store_true", help="measure here and print one JSON line")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    if args.json:
        result = {"bombs": measure(names, args.side, args.max_pixels, not args.no_baseline, args.big)}
        if args.legit:
            result["legit"] = legit_at_limit(args.max_pixels)
        print(json.dumps(result))
        return 0
    result = run_isolated(names, args.side, args.max_pixels, not args.no_baseline, args.big, args.legit)
    bound = 2 * 3 * args.max_pixels / 2**20
    print(f"max_image_pixels {args.max_pixels}: bound = 2 x colour frame = {bound:.1f} MB peak RSS growth")
    worst = 0.0
    for r in result["bombs"]:
        base = (f"  cv2.imdecode {r['baseline_mb']:8.1f} MB ({r['baseline_outcome']})"
                if "baseline_mb" in r else "")
        print(f"{r['name']:30s} {r['claims']:>12s} {r['bytes']:>9d} B  ours {r['ours_mb']:6.2f} MB "
              f"({r['outcome']}){base}")
        worst = max(worst, r["ours_mb"])
    for r in result.get("legit", []):
        print(f"{r['name']:30s} {r['bytes']:>9d} B  frame {r['frame_mb']:6.1f} MB  array {r['array_mb']:6.1f} MB  "
              f"message {r['message_mb']:6.1f} MB ({r['outcome']})")
    ok = worst <= bound
    print(f"worst bomb {worst:.2f} MB <= {bound:.1f} MB: {'ok' if ok else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
