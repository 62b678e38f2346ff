"""sensor_msgs/CompressedImage -> numpy, as image_transport's ``compressed`` and ``compressedDepth``
plugins write them. No ROS imports: works on rclpy and rosbags messages alike (duck-typed on
``format`` and ``data``).

Most recorded RealSense bags keep ``.../image_raw/compressed`` (JPEG/PNG colour) and
``.../image_raw/compressedDepth`` instead of raw images. The formats, from
ros-perception/image_transport_plugins:

- colour (compressed_image_transport): ``format`` = ``"<encoding>; jpeg compressed bgr8"`` (or
  ``png``; colour is converted to BGR before encoding, mono keeps one channel and the suffix is
  empty: ``"mono8; jpeg compressed "``); very old publishers write only ``"jpeg"``. ``data`` is
  the JPEG/PNG file.
- depth (compressed_depth_image_transport): ``format`` = ``"<encoding>; compressedDepth png|rvl"``
  (old: ``"16UC1; compressedDepth"``). ``data`` = a 12-byte ``ConfigHeader`` (int32 format enum,
  0 = INV_DEPTH; float32 depthParam[2], native = little-endian byte order) followed by a PNG of
  the 16-bit image or an RVL stream (uint32 cols, uint32 rows, then RVL words). 16UC1 is stored
  as is (millimetres above ``depth_max`` zeroed). 32FC1 is stored as quantised inverse depth:
  ``q = uint16(A / d + B)`` with ``A = z0 (z0 + 1)``, ``B = 1 - A / depth_max`` (d >= depth_max or
  NaN -> 0); decoded ``d = A / (q - B)``, ``q == 0`` -> NaN.

Every rejection is a :class:`CompressedImageError` with a ``reason`` key, the same keys the raw
path counts (``unsupported_encoding``, ``zero_size``, ``decode_error``) plus ``unsupported_format``
for a compression this module does not read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import cv2
import numpy as np

from m4sam_ros.msgs.image_codec import COLOR_ENCODINGS, DEPTH_ENCODINGS, numpy_to_image
from m4sam_ros.util.text import quote

#: ConfigHeader of compressed_depth_image_transport: enum compressionFormat (int32), float depthParam[2]
CONFIG_HEADER = struct.Struct("<iff")
INV_DEPTH = 0
#: compressed_depth_image_transport's parameter defaults (depth_max metres, depth_quantization z0)
DEFAULT_DEPTH_MAX = 10.0
DEFAULT_DEPTH_QUANTIZATION = 100.0
#: largest image this module will allocate for one message (pixels); a 4K frame is 8.3 M
MAX_PIXELS = 4096 * 4096
#: bytes a message may carry per pixel of the size limit, and the slack on top (max_message_bytes)
MAX_BYTES_PER_PIXEL = 4
MAX_BYTES_SLACK = 1 << 20


class CompressedImageError(ValueError):
    """A CompressedImage that cannot be decoded; ``reason`` is the counter key, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class CompressedFormat(NamedTuple):
    """What a CompressedImage ``format`` string says."""

    encoding: str | None   # the raw image's encoding before compression (None: not given, old publishers)
    codec: str             # "jpeg", "png" or "rvl"
    depth: bool            # written by compressedDepth
    bgr: bool              # colour was converted to BGR before encoding ("compressed bgr8")


def parse_format(fmt: str) -> CompressedFormat:
    """Reads a ``format`` string the way image_transport's subscribers do."""
    fmt = str(fmt)
    head, sep, rest = fmt.partition(";")
    if not sep:  # old publishers: only the codec name ("jpeg", "png"), or an old compressedDepth without it
        codec = head.strip().lower()
        if codec in ("jpeg", "jpg", "png"):
            return CompressedFormat(None, "jpeg" if codec == "jpg" else codec, False, True)
        if head.strip() in ("16UC1", "32FC1"):  # the first compressedDepth wrote the encoding alone (png)
            return CompressedFormat(head.strip(), "png", True, False)
        raise CompressedImageError("unsupported_format", f"format {quote(fmt)} names no known compression; "
                                   "expected e.g. 'rgb8; jpeg compressed bgr8' or '16UC1; compressedDepth png'")
    encoding = head.strip()
    rest = rest.strip()
    if "compressedDepth" in rest:
        if "compressedDepth rvl" in rest:
            codec = "rvl"
        elif "compressedDepth png" in rest or rest == "compressedDepth":
            codec = "png"
        else:
            raise CompressedImageError("unsupported_format", f"format {quote(fmt)}: compressedDepth with an unknown "
                                       "codec; image_transport writes 'png' or 'rvl'")
        return CompressedFormat(encoding, codec, True, False)
    for codec in ("jpeg", "png"):
        if rest.startswith(f"{codec} compressed"):
            return CompressedFormat(encoding, codec, False, "compressed bgr" in rest)
    raise CompressedImageError("unsupported_format", f"format {quote(fmt)}: only jpeg and png colour and "
                               "compressedDepth (png, rvl) are read; set the publisher's format parameter to one")


def max_message_bytes(max_pixels: int) -> int:
    """Most bytes one CompressedImage may carry for an image of ``max_pixels``: an uncompressed
    8-bit RGBA PNG takes 4 bytes a pixel (plus a filter byte a row), an RVL stream at most 4 a
    pixel (:func:`rvl_max_bytes`); 1 MiB more leaves room for headers and metadata chunks."""
    return MAX_BYTES_PER_PIXEL * int(max_pixels) + MAX_BYTES_SLACK


def _data_view(msg: Any) -> np.ndarray:
    """``msg.data`` as a uint8 array without copying it (bytes, bytearray, array('B'), numpy)."""
    data = msg.data
    if isinstance(data, np.ndarray):
        return data.reshape(-1) if data.dtype == np.uint8 else data.astype(np.uint8).reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), np.uint8)
    except TypeError:  # a list of ints
        return np.frombuffer(bytes(data), np.uint8)


def sniff(data: np.ndarray | bytes) -> str | None:
    """The image format a payload's first bytes announce (the signatures cv2.imdecode's decoders
    check), or None for none of them."""
    head = bytes(np.asarray(data[:16], np.uint8)) if isinstance(data, np.ndarray) else bytes(data[:16])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "HEIF/AVIF"
    if len(head) >= 2 and head[:1] == b"P" and head[1:2] in b"1234567fF":
        return "PNM/PFM"
    return None


_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"II*\x00", "TIFF"),
               (b"MM\x00*", "TIFF"), (b"BM", "BMP"), (b"GIF8", "GIF"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
               (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"#?RADIANCE", "Radiance HDR"), (b"#?RGBE", "Radiance HDR"),
               (b"\x76\x2f\x31\x01", "OpenEXR"), (b"\x59\xa6\x6a\x95", "Sun raster"), (b"RIFF", "RIFF"))
_CODEC_NAME = {"jpeg": "JPEG", "png": "PNG"}
#: JPEG start-of-frame markers (every variant: baseline, extended, progressive, lossless, arithmetic)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: markers libjpeg reads without a length (restart, TEM)
_NO_LENGTH = frozenset(range(0xD0, 0xD8)) | {0x01}
#: markers a camera JPEG has before its frame header are a handful; this many is an attack
MAX_JPEG_MARKERS = 4096


class ImageHeader(NamedTuple):
    """What a JPEG or PNG says about its image before any pixel is decoded."""

    codec: str      # "jpeg" or "png"
    width: int
    height: int
    bits: int       # sample precision (JPEG) or bit depth (PNG)
    channels: int   # components (JPEG) or samples per pixel (PNG; a palette counts 3)


def _find_ff(a: np.ndarray, i: int) -> int:
    """Index of the next 0xFF byte at or after ``i`` (-1: none), scanning in bounded windows."""
    window = 64
    while i < a.size:
        hits = np.flatnonzero(a[i:i + window] == 0xFF)
        if hits.size:
            return i + int(hits[0])
        i += window
        window = min(window * 4, 1 << 16)
    return -1


def _jpeg_header(a: np.ndarray) -> ImageHeader:
    """The frame header of a JPEG, found as libjpeg finds it: bytes that are not a marker are
    skipped ("extraneous bytes before marker"), 0xFF fill bytes and stuffed 0xFF00 too, segments
    are skipped by their length, any start-of-frame variant ends the search."""
    n, i, markers = a.size, 2, 0
    if n < 4 or a[0] != 0xFF or a[1] != 0xD8:
        raise CompressedImageError("decode_error", "no JPEG start-of-image marker")
    while True:
        while True:  # libjpeg next_marker()
            j = i if i < n and a[i] == 0xFF else _find_ff(a, i)
            if j < 0:
                raise CompressedImageError("decode_error", "JPEG ends before its frame header (truncated)")
            k = j + 1
            while k < n and a[k] == 0xFF:
                k += 1
            if k >= n:
                raise CompressedImageError("decode_error", "JPEG ends before its frame header (truncated)")
            i = k + 1
            if a[k] != 0:
                marker = int(a[k])
                break
        markers += 1
        if markers > MAX_JPEG_MARKERS:
            raise CompressedImageError("decode_error", f"JPEG has over {MAX_JPEG_MARKERS} markers before its "
                                       "frame header: not a camera image")
        if marker in _SOF:
            if i + 8 > n:
                raise CompressedImageError("decode_error", "JPEG frame header is truncated")
            height = (int(a[i + 3]) << 8) | int(a[i + 4])
            width = (int(a[i + 5]) << 8) | int(a[i + 6])
            return ImageHeader("jpeg", width, height, int(a[i + 2]), int(a[i + 7]))
        if marker == 0xD8:
            raise CompressedImageError("decode_error", "JPEG has a second start-of-image before its frame header")
        if marker in (0xD9, 0xDA):
            raise CompressedImageError("decode_error", "JPEG has no frame header before its "
                                       + ("end" if marker == 0xD9 else "scan"))
        if marker in _NO_LENGTH:
            continue
        if i + 2 > n:
            raise CompressedImageError("decode_error", "JPEG ends inside a marker segment (truncated)")
        length = (int(a[i]) << 8) | int(a[i + 1])
        if length < 2:
            raise CompressedImageError("decode_error", f"JPEG marker 0x{marker:02X} has a bad length {length}")
        i += length


_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def _png_header(a: np.ndarray) -> ImageHeader:
    """A PNG's IHDR, which libpng requires as the first chunk (anything else is an error there)."""
    if a.size < 33 or bytes(a[12:16]) != b"IHDR" or bytes(a[8:12]) != b"\x00\x00\x00\x0d":
        raise CompressedImageError("decode_error", "PNG does not start with its IHDR chunk")
    width, height = int.from_bytes(bytes(a[16:20]), "big"), int.from_bytes(bytes(a[20:24]), "big")
    bits, ctype = int(a[24]), int(a[25])
    if bits not in _PNG_DEPTHS.get(ctype, ()):
        raise CompressedImageError("decode_error", f"PNG IHDR bit depth {bits} / colour type {ctype} is invalid")
    return ImageHeader("png", width, height, bits, _PNG_CHANNELS[ctype])


def read_header(data: np.ndarray | bytes, codec: str) -> ImageHeader:
    """The size and sample format of a JPEG or PNG payload, read without decoding; data that is
    not the named ``codec`` (a WebP or TIFF on a ``png`` topic) is refused, since cv2.imdecode
    would decode whatever it recognises."""
    a = data if isinstance(data, np.ndarray) else np.frombuffer(bytes(data), np.uint8)
    if a.size == 0:
        raise CompressedImageError("zero_size", "empty data")
    found, want = sniff(a), _CODEC_NAME[codec]
    if found != want:
        if found is None:
            raise CompressedImageError("decode_error", f"data is not a {want} (starts with {bytes(a[:8]).hex()})")
        raise CompressedImageError("unsupported_format", f"data is {found}, but the format names {codec}: only "
                                   "the codec the format string names is decoded")
    header = _jpeg_header(a) if codec == "jpeg" else _png_header(a)
    if header.width == 0 or header.height == 0:
        raise CompressedImageError("zero_size", f"{want} header says {header.width}x{header.height}")
    return header


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width * height > max_pixels:
        raise CompressedImageError("too_large", f"compressed image {width}x{height} = {width * height} pixels "
                                   f"({what}) is over max_image_pixels = {max_pixels}: lower the camera "
                                   "resolution or raise max_image_pixels")


def _imdecode(arr: np.ndarray, flags: int, header: ImageHeader) -> np.ndarray:
    """cv2.imdecode of a payload whose header was checked; the result must have that size."""
    try:
        img = cv2.imdecode(arr, flags)
    except cv2.error as exc:
        raise CompressedImageError("decode_error", f"OpenCV could not decode the {header.codec} "
                                   f"({quote(str(exc).strip())})") from exc
    if img is None or img.size == 0:
        raise CompressedImageError("decode_error", f"not a decodable {header.codec} ({arr.size} B)")
    if img.shape[:2] != (header.height, header.width):
        raise CompressedImageError("decode_error", f"{header.codec} decoded to {img.shape[1]}x{img.shape[0]}, "
                                   f"its header says {header.width}x{header.height}")
    return img


def decode_color(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A compressed colour message as uint8 HxWx3 RGB (the node's colour input). The size comes
    from the header first: an image over ``max_pixels`` is refused before anything is allocated."""
    fmt = parse_format(msg.format)
    if fmt.depth:
        raise CompressedImageError("unsupported_encoding", f"format {quote(msg.format)} is a compressedDepth "
                                   "image on the colour input: swap the colour and depth topics")
    enc = fmt.encoding
    if enc is not None and enc not in COLOR_ENCODINGS:
        raise CompressedImageError("unsupported_encoding", f"colour encoding {quote(enc)} (format "
                                   f"{quote(msg.format)}); accepted: {', '.join(COLOR_ENCODINGS)}")
    data = _data_view(msg)
    header = read_header(data, fmt.codec)
    _check_size(header.width, header.height, max_pixels, f"colour {fmt.codec}")
    if header.bits != 8 and not (header.codec == "png" and header.bits < 8):
        raise CompressedImageError("unsupported_encoding", f"colour {fmt.codec} of {header.bits}-bit samples; "
                                   "8-bit expected")
    # IMREAD_COLOR: always 8-bit BGR, read straight into the one output array (no 4-channel or
    # grey intermediate); EXIF orientation ignored, as camera frames are stored as captured
    img = _imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION, header)
    # the publisher converts colour to bgr8 before encoding ("... compressed bgr8"), old ones always
    # did; without that suffix the stored channels are in the order the encoding names (the
    # subscriber's rule), so the decoded array is already RGB
    if fmt.bgr or enc is None:
        blue = img[..., 0].copy()  # in place: one channel of scratch, not a second frame
        img[..., 0] = img[..., 2]
        img[..., 2] = blue
    return img


def decode_depth(msg: Any, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str]:
    """A compressedDepth message as (HxW uint16 millimetres, "16UC1") or (HxW float32 metres with
    NaN where invalid, "32FC1"), exactly as compressed_depth_image_transport decodes it; the size
    is read from the PNG header or the RVL size words before anything is allocated."""
    fmt = parse_format(msg.format)
    if not fmt.depth:
        raise CompressedImageError("unsupported_format", f"format {quote(msg.format)} is not compressedDepth: "
                                   "depth must come from the compressedDepth transport (…/compressedDepth)")
    enc = fmt.encoding or "16UC1"
    if enc not in DEPTH_ENCODINGS:
        raise CompressedImageError("unsupported_encoding", f"depth encoding {quote(enc)} (format "
                                   f"{quote(msg.format)}); accepted: {', '.join(DEPTH_ENCODINGS)}")
    data = _data_view(msg)
    if data.size <= CONFIG_HEADER.size:
        raise CompressedImageError("zero_size", f"compressedDepth data of {data.size} B holds no image "
                                   f"(a {CONFIG_HEADER.size}-byte header comes first)")
    kind, quant_a, quant_b = CONFIG_HEADER.unpack(bytes(data[:CONFIG_HEADER.size]))
    payload = data[CONFIG_HEADER.size:]
    if enc == "32FC1" and (kind != INV_DEPTH or not (np.isfinite(quant_a) and np.isfinite(quant_b))
                           or quant_a == 0):
        raise CompressedImageError("decode_error", f"32FC1 compressedDepth header format={kind} "
                                   f"depthParam=({quant_a}, {quant_b}): not an inverse-depth quantisation")
    if fmt.codec == "png":
        header = read_header(payload, "png")
        _check_size(header.width, header.height, max_pixels, "compressedDepth png")
        if header.bits != 16 or header.channels != 1:
            raise CompressedImageError("decode_error", f"compressedDepth png holds {header.bits}-bit x "
                                       f"{header.channels} channel(s); 16-bit mono expected")
        img = _imdecode(payload, cv2.IMREAD_UNCHANGED, header)
        if img.dtype != np.uint16 or img.ndim != 2:
            raise CompressedImageError("decode_error", f"compressedDepth png decoded to {img.dtype} x "
                                       f"{1 if img.ndim == 2 else img.shape[2]} channel(s); 16-bit mono expected")
    else:
        img = rvl_decode_image(payload, max_pixels)
    if enc == "32FC1":
        depth = img.astype(np.float32)  # in place from here: one float frame, no temporaries
        depth -= np.float32(quant_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(np.float32(quant_a), depth, out=depth)
        depth[img == 0] = np.nan
        return depth, "32FC1"
    return img.astype(np.uint16, copy=False), "16UC1"


def decompress(msg: Any, side: str, factory: Callable[..., Any] | None = None,
               max_pixels: int = MAX_PIXELS) -> Any:
    """A CompressedImage as the raw Image the node's raw path takes (colour as rgb8, depth as
    16UC1 or 32FC1, the same header), built by ``factory`` (rclpy's or rosbags' Image class; a
    field dict without one). ``side`` is "color" or "depth". Rejections carry the raw path's
    counter keys: ``color_unsupported_encoding``, ``depth_zero_size``, ..., ``decode_error``, and
    ``too_large`` for an image over ``max_pixels`` (read from its header, never decoded) or a
    message over :func:`max_message_bytes`."""
    if side not in ("color", "depth"):
        raise ValueError(f"side must be 'color' or 'depth', got {side!r}")
    size = len(msg.data)
    try:
        limit = max_message_bytes(max_pixels)
        if size > limit:
            raise CompressedImageError("too_large", f"{size} B of data is over the {limit} B a message of "
                                       f"max_image_pixels = {max_pixels} may carry")
        if side == "color":
            arr, encoding = decode_color(msg, max_pixels), "rgb8"
        else:
            arr, encoding = decode_depth(msg, max_pixels)
    except CompressedImageError as exc:
        if exc.reason == "too_large":
            raise CompressedImageError("too_large", f"{side} {exc.detail} (format {quote(msg.format)})") from exc
        reason = exc.reason if exc.reason == "decode_error" else f"{side}_{exc.reason}"
        raise CompressedImageError(reason, f"{side} CompressedImage format {quote(msg.format)}, "
                                   f"{size} B: {exc.detail}") from exc
    return numpy_to_image(arr, encoding, factory=factory, header=getattr(msg, "header", None))


# ------------------------------------------------------------------------------------------- RVL
def _vle_nibbles(values: np.ndarray) -> np.ndarray:
    """Each non-negative value as 3-bit groups, lowest first, the 4th bit set while more follow."""
    values = np.asarray(values, dtype=np.int64)
    bits = np.zeros(values.shape, np.int64)
    v = values.copy()
    while True:
        more = v > 0
        if not more.any():
            break
        bits += more
        v >>= 1
    counts = np.maximum((bits + 2) // 3, 1)
    owner = np.repeat(np.arange(len(values)), counts)
    start = np.cumsum(counts) - counts
    pos = np.arange(int(counts.sum())) - np.repeat(start, counts)
    nib = (values[owner] >> (3 * pos)) & 0x7
    last = pos == counts[owner] - 1
    return (nib | np.where(last, 0, 0x8)).astype(np.uint32)


def rvl_encode(pixels: np.ndarray) -> bytes:
    """RVL stream of uint16 pixels (row-major), byte for byte as RvlCodec::CompressRVL writes it."""
    px = np.ascontiguousarray(pixels, dtype=np.uint16).reshape(-1)
    if px.size == 0:
        return b""
    nz = px != 0
    # runs: (zeros, nonzeros) pairs; a pair starts at every zero->nonzero boundary's zero run
    change = np.flatnonzero(np.diff(nz.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [px.size]])
    run_vals = nz[bounds[:-1]]
    lengths = np.diff(bounds)
    zeros: list[int] = []
    nonzeros: list[int] = []
    i = 0
    while i < len(lengths):  # one pair per zero run (possibly empty) and the nonzero run after it
        z = 0
        if not run_vals[i]:
            z = int(lengths[i])
            i += 1
        n = 0
        if i < len(lengths) and run_vals[i]:
            n = int(lengths[i])
            i += 1
        zeros.append(z)
        nonzeros.append(n)
    vals = px[nz].astype(np.int64)
    delta = np.diff(vals, prepend=0)
    zig = np.where(delta >= 0, delta << 1, ((-delta) << 1) - 1)  # (d << 1) ^ (d >> 31)
    n_pairs = len(zeros)
    nz_counts = np.asarray(nonzeros, np.int64)
    seq_len = 2 * n_pairs + int(nz_counts.sum())
    seq = np.empty(seq_len, np.int64)
    pair_start = np.concatenate([[0], np.cumsum(2 + nz_counts)[:-1]])
    seq[pair_start] = zeros
    seq[pair_start + 1] = nonzeros
    is_delta = np.ones(seq_len, bool)
    is_delta[pair_start] = False
    is_delta[pair_start + 1] = False
    seq[is_delta] = zig
    nib = _vle_nibbles(seq)
    pad = (-len(nib)) % 8
    nib = np.concatenate([nib, np.zeros(pad, np.uint32)]).reshape(-1, 8)
    shifts = np.arange(28, -1, -4, dtype=np.uint32)
    words = (nib << shifts).sum(axis=1, dtype=np.uint64).astype(np.uint32)
    return words.astype("<u4").tobytes()


def rvl_max_bytes(num_pixels: int) -> int:
    """Longest stream RvlCodec::CompressRVL writes for ``num_pixels`` pixels. Every run pair but
    the first starts with >= 1 zero, so a pair's two counts take at most 2 nibbles per pixel it
    covers (2 more for the first); a delta between two uint16 values (zigzag < 2^17) at most 6
    nibbles. So <= 8n + 2 nibbles: n + 1 words."""
    return 4 * (int(num_pixels) + 1)


#: nibbles expanded per step while reading RVL values (bounds the temporaries: ~40 B a nibble)
RVL_CHUNK = 1 << 18


def _rvl_nibbles(buf: np.ndarray) -> np.ndarray:
    """The 4-bit groups of little-endian 32-bit words, highest first (RVL's reading order)."""
    b = buf.reshape(-1, 4)[:, ::-1]  # each word's bytes, most significant first
    nib = np.empty((b.shape[0], 8), np.uint8)
    nib[:, 0::2] = b >> 4
    nib[:, 1::2] = b & 0xF
    return nib.reshape(-1)


def _rvl_values(nib: np.ndarray, terminal: np.ndarray) -> np.ndarray:
    """Every complete variable-length value of the nibble stream (uint32), read vectorised in
    chunks of RVL_CHUNK nibbles; a value of more than 11 nibbles (over 32 bits) is refused."""
    vals = np.empty(int(np.count_nonzero(terminal)), np.uint32)
    out = lo = 0
    while lo < nib.size:
        hi = min(lo + RVL_CHUNK, nib.size)
        ends = np.flatnonzero(terminal[lo:hi]) + lo
        if ends.size == 0:
            if hi == nib.size and hi - lo <= 11:
                break  # the stream's unfinished tail: the caller finds where the image ends
            raise CompressedImageError("decode_error", "RVL stream holds a value wider than 32 bits")
        starts = np.empty_like(ends)
        starts[0] = lo
        starts[1:] = ends[:-1] + 1
        lens = ends - starts + 1
        widest = int(lens.max())
        if widest > 11:
            raise CompressedImageError("decode_error", "RVL stream holds a value wider than 32 bits")
        v = (nib[starts] & 0x7).astype(np.uint64)
        for p in range(1, widest):
            m = np.flatnonzero(lens > p)
            v[m] |= (nib[starts[m] + p] & 0x7).astype(np.uint64) << np.uint64(3 * p)
        if int(v.max()) > 0xFFFFFFFF:
            raise CompressedImageError("decode_error", "RVL stream holds a value wider than 32 bits")
        vals[out:out + v.size] = v
        out += v.size
        lo = int(ends[-1]) + 1
    return vals[:out]


def _rvl_pair_starts(vals: np.ndarray) -> np.ndarray:
    """Indices of the (zeros, nonzeros) pairs in the value stream, without a per-run loop.

    Pair i+1 starts at ``f(j) = j + 2 + vals[j + 1]`` from pair i at j: a chain through a function
    that only moves forward. Pointer doubling finds it: with ``F = f^(2^t)`` the first 2^t chain
    positions R give the next 2^t as F(R), and F(F) is the next F. log2(pairs) + 1 vectorised
    steps over the values, int32 throughout (``len(vals) + 1`` is the "past the end" sentinel)."""
    v = vals.size
    f = np.full(v + 1, v, np.int32)
    if v > 1:  # built in place (no full-size temporaries): f[j] = min(j + 2 + vals[j + 1], v)
        np.minimum(vals[1:], np.uint32(v), out=f[:v - 1].view(np.uint32))
        for lo in range(0, v - 1, RVL_CHUNK):
            hi = min(lo + RVL_CHUNK, v - 1)
            f[lo:hi] += np.arange(lo + 2, hi + 2, dtype=np.int32)
        np.minimum(f, v, out=f)
    chain = np.zeros(1, np.int32)
    jump = f
    del f  # one jump table alive at a time (two while composing)
    while True:
        nxt = jump[chain]
        nxt = nxt[nxt < v]
        if nxt.size == 0:
            return chain
        chain = np.concatenate([chain, nxt])
        jump = jump[jump]


def rvl_decode(stream: bytes | np.ndarray, num_pixels: int) -> np.ndarray:
    """uint16 pixels from an RVL stream (RvlCodec::DecompressRVL), strictly: the stream must be
    whole 32-bit words that hold exactly ``num_pixels`` pixels and then only the encoder's zero
    padding of its last word; a stream that ends early, runs past the image, or has data after it
    raises CompressedImageError. Vectorised (no loop per run); memory is proportional to the
    stream, which may not exceed :func:`rvl_max_bytes` (checked before anything is expanded)."""
    buf = stream.reshape(-1).view(np.uint8) if isinstance(stream, np.ndarray) else \
        np.frombuffer(memoryview(stream).cast("B"), np.uint8)
    n = int(num_pixels)
    if n == 0:
        if buf.size:
            raise CompressedImageError("decode_error", f"RVL stream of {buf.size} B for an image of 0 pixels")
        return np.zeros(0, np.uint16)
    if buf.size == 0:
        raise CompressedImageError("decode_error", "RVL stream is empty")
    if buf.size % 4:
        raise CompressedImageError("decode_error", f"RVL stream of {buf.size} B is not whole 32-bit words "
                                   f"({buf.size % 4} B of trailing data)")
    if buf.size > rvl_max_bytes(n):
        raise CompressedImageError("decode_error", f"RVL stream of {buf.size} B is longer than any RVL stream of "
                                   f"{n} pixels (<= {rvl_max_bytes(n)} B): trailing data")
    nib = _rvl_nibbles(buf)
    terminal = nib < 8
    vals = _rvl_values(nib, terminal)
    before_last = int(np.count_nonzero(terminal[:-8]))  # values that end before the last word
    tail = nib[-8:].copy()
    del nib, terminal
    heads = _rvl_pair_starts(vals)
    has_counts = heads + 1 < vals.size
    cover = vals[heads].astype(np.int64)
    cover[has_counts] += vals[heads[has_counts] + 1]
    done = np.cumsum(cover)
    last = int(np.searchsorted(done, n))  # the pair that completes the image
    if last == done.size or not has_counts[last]:
        filled = int(done[min(last, done.size) - 1]) if last else 0
        raise CompressedImageError("decode_error", f"RVL stream ends after {min(filled, n)} of {n} pixels")
    if done[last] != n:
        raise CompressedImageError("decode_error", f"RVL stream runs past the image ({n} pixels)")
    heads, cover = heads[:last + 1], cover[:last + 1]
    if (cover == 0).any():
        raise CompressedImageError("decode_error", "RVL stream holds an empty run (corrupt data)")
    runs = vals[heads + 1].astype(np.int64)
    used = int(heads[-1]) + 2 + int(runs[-1])  # values the image takes
    if used > vals.size:
        raise CompressedImageError("decode_error", f"RVL stream ends inside its last run ({n} pixels)")
    # nothing after the image but the zero padding of the last word
    if used <= before_last:
        raise CompressedImageError("decode_error", f"RVL stream has data after the image: its {n} pixels end "
                                   f"before the last of its {buf.size // 4} words")
    end = int(np.flatnonzero(tail < 8)[used - before_last - 1])
    if tail[end + 1:].any():
        raise CompressedImageError("decode_error", "RVL stream has trailing data after the image (the last word "
                                   "is padded with zeros)")
    # pixels: a mask of the nonzero runs from their (unique) start and end positions
    starts = done[:last + 1] - runs
    edges = np.zeros(n + 1, np.int8)
    nonempty = runs > 0
    edges[starts[nonempty]] += 1
    edges[starts[nonempty] + runs[nonempty]] -= 1
    nonzero = np.cumsum(edges[:n], dtype=np.int8).view(bool)
    is_delta = np.ones(used, bool)
    is_delta[heads] = False
    is_delta[heads + 1] = False
    zig = vals[:used][is_delta]
    delta = (zig >> np.uint32(1)) ^ (np.uint32(0) - (zig & np.uint32(1)))  # zigzag, modulo 2^32
    out = np.zeros(n, np.uint16)
    # the C++ adds int deltas and stores ushort: the same modulo 2^16
    out[nonzero] = np.cumsum(delta.astype(np.uint16), dtype=np.uint16)
    return out


def rvl_decode_image(payload: bytes | np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """HxW uint16 from compressedDepth's RVL payload (uint32 cols, uint32 rows, RVL words); the
    size words are checked against ``max_pixels`` and the stream length before decoding."""
    buf = payload.reshape(-1).view(np.uint8) if isinstance(payload, np.ndarray) else \
        np.frombuffer(memoryview(payload).cast("B"), np.uint8)
    if buf.size < 8:
        raise CompressedImageError("decode_error", f"RVL payload of {buf.size} B has no size header")
    cols, rows = struct.unpack("<II", bytes(buf[:8]))
    if rows == 0 or cols == 0:
        raise CompressedImageError("zero_size", f"RVL image of {cols}x{rows}")
    _check_size(cols, rows, max_pixels, "compressedDepth rvl")
    n = rows * cols
    # image_transport's own sanity check: RVL cannot compress better than ~5 pixels per byte here
    if n > (buf.size - 8) * 5:
        raise CompressedImageError("decode_error", f"RVL image claims {cols}x{rows} from {buf.size} B: corrupt")
    return rvl_decode(buf[8:], n).reshape(rows, cols)


# ---------------------------------------------------------------------------------- encoders
def encode_color(rgb: np.ndarray, encoding: str = "rgb8", codec: str = "jpeg", quality: int = 95,
                 png_level: int = 9) -> tuple[str, bytes]:
    """(format, data) of a colour image as compressed_image_transport's publisher writes them; for
    tests and tools that write compressed bags."""
    img = np.asarray(rgb)
    if codec not in ("jpeg", "png"):
        raise ValueError(f"codec must be 'jpeg' or 'png', got {codec!r}")
    if encoding == "mono8":
        target, suffix = img, ""
    elif encoding in ("rgb8", "rgba8"):
        target, suffix = np.ascontiguousarray(img[..., 2::-1]), "bgr8"
    elif encoding in ("bgr8", "bgra8"):
        target, suffix = np.ascontiguousarray(img[..., :3]), "bgr8"
    else:
        raise ValueError(f"encoding {encoding!r} is not a colour encoding")
    if codec == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
                  cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_RST_INTERVAL, 0]
        ok, buf = cv2.imencode(".jpg", target, params)
    else:
        ok, buf = cv2.imencode(".png", target, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:  # pragma: no cover - OpenCV always has jpeg and png
        raise ValueError(f"OpenCV could not encode {codec}")
    return f"{encoding}; {codec} compressed {suffix}", buf.tobytes()


def encode_depth(depth: np.ndarray, encoding: str, codec: str = "png", depth_max: float = DEFAULT_DEPTH_MAX,
                 depth_quantization: float = DEFAULT_DEPTH_QUANTIZATION, png_level: int = 9) -> tuple[str, bytes]:
    """(format, data) of a depth image as compressed_depth_image_transport's encoder writes them."""
    if codec not in ("png", "rvl"):
        raise ValueError(f"codec must be 'png' or 'rvl', got {codec!r}")
    d = np.asarray(depth)
    quant_a = quant_b = np.float32(0.0)
    if encoding == "32FC1":
        d = d.astype(np.float32)
        z0, dmax = np.float32(depth_quantization), np.float32(depth_max)
        quant_a = np.float32(z0 * (z0 + np.float32(1.0)))
        quant_b = np.float32(np.float32(1.0) - quant_a / dmax)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inv = quant_a / d + quant_b
        keep = d < dmax  # NaN compares false -> 0, as the C++ loop does
        if ((inv[keep] < 0) | (inv[keep] >= 65536)).any():
            raise ValueError(f"depth below {quant_a / (65535 - quant_b):.4f} m or <= 0 cannot be quantised "
                             "(the C++ cast is undefined there)")
        img = np.where(keep, inv, 0).astype(np.uint16)  # float -> unsigned short truncates
    elif encoding in ("16UC1", "mono16"):
        img = d.astype(np.uint16, copy=True)
        img[img > np.uint16(int(np.float32(depth_max) * np.float32(1000.0)))] = 0
    else:
        raise ValueError(f"compressedDepth needs 16UC1 or 32FC1, got {encoding!r}")
    if codec == "png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
        if not ok:  # pragma: no cover
            raise ValueError("OpenCV could not encode png")
        payload = buf.tobytes()
    else:
        payload = struct.pack("<II", img.shape[1], img.shape[0]) + rvl_encode(img)
    header = CONFIG_HEADER.pack(INV_DEPTH, float(quant_a), float(quant_b))
    return f"{encoding}; compressedDepth {codec}", header + payload


__all__ = [
    "CONFIG_HEADER", "MAX_PIXELS", "CompressedFormat", "CompressedImageError", "ImageHeader", "decode_color",
    "decode_depth", "decompress", "encode_color", "encode_depth", "max_message_bytes", "parse_format",
    "read_header", "rvl_decode", "rvl_decode_image", "rvl_encode", "rvl_max_bytes", "sniff",
]
