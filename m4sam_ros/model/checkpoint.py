"""Checkpoints: SAM2's official format (strict) and M4-SAM's own (trained parts + config).

Every load goes through ``torch.load(weights_only=True)``: a file that needs arbitrary Python
objects to unpickle (a code payload) is refused instead of executed.

The SAM2 weights rule (one rule, applied by ``build_m4sam`` for every entry point): an M4-SAM
checkpoint records under ``sam2_weights`` the SAM2 checkpoint its frozen parts came from (file
name, size, SHA-256), or ``None`` when it holds every weight itself (trained from a random SAM2
init in full, as the demo model, or written by ``m4sam-train --export-full``). A checkpoint that
needs SAM2's weights refuses to build without them (``MissingSAM2WeightsError``, one message
everywhere); a SAM2 file with another SHA-256 warns loudly (``SAM2WeightsMismatchWarning``).
A model whose SAM2 base is random (no SAM2 file loaded) is saved with every weight: a checkpoint
always rebuilds the model it was saved from.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .config import load_config
from .m4sam import M4SAM

log = logging.getLogger(__name__)

FORMAT = "m4sam"
FORMAT_VERSION = 1
# Settings that do not change which weights exist or what they mean: a checkpoint may be used
# at another resolution (Hiera interpolates its position embedding, RoPE is recomputed).
_CONFIG_KEYS_IGNORED = ("name", "image_size")


#: the checkpoint key recording the SAM2 weights a checkpoint needs (None: it holds every weight)
SAM2_WEIGHTS_KEY = "sam2_weights"
#: SAM2.1's released checkpoint file per hydra config (the file a legacy checkpoint expects)
SAM2_FILES = {"sam2.1_hiera_t.yaml": "sam2.1_hiera_tiny.pt", "sam2.1_hiera_s.yaml": "sam2.1_hiera_small.pt",
              "sam2.1_hiera_b+.yaml": "sam2.1_hiera_base_plus.pt", "sam2.1_hiera_l.yaml": "sam2.1_hiera_large.pt"}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded onto this model (format, keys or config)."""


class UnreadableCheckpointError(CheckpointError):
    """A file that is not a readable checkpoint at all: missing, empty, truncated, another format."""


#: what a checkpoint is expected to be, said when a file is not one
EXPECTED = ("a PyTorch checkpoint written by torch.save (a zip archive: m4sam-train's checkpoint.pt, "
            "the bundled demo_model.pt or the official sam2.1_hiera_*.pt)")


def describe_file(path: Path) -> str:
    """What a file looks like from its size and first bytes (for a refusal that says what it is)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(32)
    kinds = ((b"PK\x03\x04", "a zip archive"), (b"\x80", "a pickle stream"), (b"\x89PNG", "a PNG image"),
             (b"\xff\xd8", "a JPEG image"), (b"\x1f\x8b", "a gzip file"), (b"<", "an HTML/XML page"),
             (b"version https://git-lfs", "a Git LFS pointer (the weights were not fetched: git lfs pull)"))
    kind = next((name for magic, name in kinds if head.startswith(magic)), None)
    if kind is None:
        kind = "text" if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head) else \
            f"data starting {head[:8].hex()}"
    return f"{size} B, {kind}"
class MissingSAM2WeightsError(CheckpointError):
    """An M4-SAM checkpoint that holds only its trained parts, built without the SAM2 weights it
    was trained on (its image encoder would silently be random)."""


class SAM2WeightsMismatchWarning(UserWarning):
    """The SAM2 file given is not the one the M4-SAM checkpoint was trained on (other SHA-256)."""


def safe_load(path: str | Path) -> Any:
    """torch.load with weights_only=True, with a clear message when a file is refused, empty,
    truncated or not a checkpoint at all (what the file is and what was expected)."""
    path = Path(path)
    if not path.exists():
        raise UnreadableCheckpointError(f"{path}: no such file; expected {EXPECTED}")
    if path.is_dir():
        raise UnreadableCheckpointError(f"{path}: is a folder; expected {EXPECTED} (a file)")
    if path.stat().st_size == 0:
        raise UnreadableCheckpointError(f"{path}: the file is empty (0 B), e.g. an interrupted copy or download; "
                              f"expected {EXPECTED}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        with open(path, "rb") as f:
            head = f.read(4)
        if not head.startswith((b"PK\x03\x04", b"\x80")):  # neither torch.save's zip nor a pickle
            raise UnreadableCheckpointError(f"{path}: not a checkpoint ({describe_file(path)}); expected {EXPECTED}") from e
        raise CheckpointError(
            f"{path}: refused to load: it is not a plain weights file (it needs arbitrary Python "
            f"objects to unpickle, which could run code). Only tensors and plain containers are "
            f"accepted (torch.load weights_only=True). Details: {str(e).splitlines()[0]}") from e
    except (EOFError, RuntimeError, OSError, ValueError) as e:  # truncated zip, not a zip, unreadable
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UnreadableCheckpointError(f"{path}: cannot be read as a checkpoint ({describe_file(path)}): "
                              f"{type(e).__name__}: {first}; expected {EXPECTED}") from e


_FINGERPRINTS: dict[tuple[str, int, int], dict[str, Any]] = {}


def sam2_fingerprint(path: str | Path) -> dict[str, Any]:
    """``{"name", "size", "sha256"}`` of a SAM2 checkpoint file: what a checkpoint trained on it
    records (cached per path, size and mtime: hashing Hiera-L's 900 MB takes seconds)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _FINGERPRINTS[key] = {"name": p.name, "size": st.st_size, "sha256": h.hexdigest()}
    return dict(_FINGERPRINTS[key])


def sam2_requirement(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """The SAM2 weights a loaded M4-SAM checkpoint needs: None when it holds every weight, else
    ``{"name", "size", "sha256"}`` (size and sha256 None for a checkpoint written before the record
    existed: then the name is SAM2.1's release file of its config)."""
    if SAM2_WEIGHTS_KEY in ckpt:
        record = ckpt[SAM2_WEIGHTS_KEY]
        return None if record is None else dict(record)
    try:
        cfg = load_config(dict(ckpt.get("config", {})))
    except ValueError:
        return {"name": "the SAM2.1 checkpoint of its config", "size": None, "sha256": None}
    if cfg.get("train_base_in_full"):  # everything trained, everything saved (the bundled demo model)
        return None
    name = SAM2_FILES.get(Path(str(cfg["sam2_config"])).name, f"the SAM2.1 checkpoint of {cfg['sam2_config']}")
    return {"name": name, "size": None, "sha256": None}


def _describe(record: dict[str, Any]) -> str:
    if record.get("sha256"):
        return f"{record['name']} ({record['size']:,} bytes, SHA-256 {record['sha256']})"
    return f"{record['name']} (not recorded in this older checkpoint)"


def missing_sam2_message(checkpoint: str | Path, record: dict[str, Any]) -> str:
    """THE message every entry point gives when a checkpoint's SAM2 weights are not given."""
    return (f"{checkpoint} holds only the parts M4-SAM trained; its image encoder comes from SAM2's "
            f"pre-trained weights {_describe(record)}, which were not given, so it would run on a random "
            f"encoder. Pass that file: --sam2-checkpoint PATH (m4sam-eval, m4sam-bag, m4sam-bench, "
            f"m4sam-train), parameter sam2_checkpoint:=PATH (m4sam_node), sam2_checkpoint=PATH (build_m4sam, "
            f"StreamingPredictor.from_config); or deploy a self-contained checkpoint written by "
            f"`m4sam-train --export-full OUT.pt --init CKPT --sam2-checkpoint PATH`.")


def check_sam2_weights(checkpoint: str | Path, ckpt: dict[str, Any], sam2_checkpoint: str | Path | None
                       ) -> dict[str, Any] | None:
    """Applies the SAM2 weights rule to a loaded M4-SAM checkpoint; returns its requirement.
    Raises ``MissingSAM2WeightsError`` without the file it needs; warns on another SHA-256."""
    record = sam2_requirement(ckpt)
    if record is None:
        return None
    if sam2_checkpoint is None:
        raise MissingSAM2WeightsError(missing_sam2_message(checkpoint, record))
    if record.get("sha256"):
        given = sam2_fingerprint(sam2_checkpoint)
        if given["sha256"] != record["sha256"]:
            text = (f"SAM2 WEIGHTS MISMATCH: {checkpoint} was trained on {_describe(record)}, but "
                    f"{sam2_checkpoint} is {_describe(given)}. The adapters, fusion and heads were fitted to "
                    f"other encoder features: expect degraded or meaningless maps. Pass the file it was "
                    f"trained on.")
            log.warning(text)
            warnings.warn(text, SAM2WeightsMismatchWarning, stacklevel=3)
    return record


def _atomic_save(obj: Any, path: str | Path) -> None:
    from m4sam_ros.util.atomic import torch_save

    torch_save(obj, path)


def _fmt_keys(keys: list[str], limit: int = 20) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_sam2_checkpoint(sam: nn.Module, path: str | Path) -> None:
    """Load an official SAM2 checkpoint ``{"model": state_dict}`` strictly into SAM2Base."""
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a SAM2 checkpoint (expected a dict with key 'model')")
    sd = ckpt["model"]
    own = sam.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: SAM2 checkpoint does not match the model config. "
            f"missing keys ({len(missing)}): {_fmt_keys(missing)}; "
            f"unexpected keys ({len(unexpected)}): {_fmt_keys(unexpected)}")
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
           if tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        raise CheckpointError(f"{path}: shape mismatch: {_fmt_keys(bad)}")
    sam.load_state_dict(sd, strict=True)


def trained_group_names(model: M4SAM) -> set[str]:
    """The parameter groups this model's config trains."""
    return model.trained_groups()


def trained_state_dict(model: M4SAM) -> dict[str, torch.Tensor]:
    """Parameters and buffers of the parts the config trains (what an M4-SAM checkpoint holds)."""
    groups = trained_group_names(model)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if model.parameter_group_of(k) in groups}


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for k in sorted(set(a) | set(b)):
        if not prefix and k in _CONFIG_KEYS_IGNORED:
            continue
        name = f"{prefix}{k}"
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += _config_diff(va, vb, name + ".")
        elif va != vb:
            diffs.append(f"{name}: checkpoint={va!r} model={vb!r}")
    return diffs


def save_m4sam_checkpoint(model: M4SAM, path: str | Path, extra: dict[str, Any] | None = None,
                          full: bool = False) -> None:
    """Write what M4-SAM trains + its config + format version + the SAM2 weights it needs,
    atomically (temp + os.replace). ``full`` (or a model whose SAM2 base is random, i.e. no SAM2
    file was loaded into it) writes every weight and records that it needs none."""
    record = getattr(model, "sam2_weights", None)
    full = full or record is None
    sd = ({k: v.detach().cpu().clone() for k, v in model.state_dict().items()} if full
          else trained_state_dict(model))
    obj = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config,
        "state_dict": sd,
        SAM2_WEIGHTS_KEY: None if full else dict(record),
        "extra": extra or {},
    }
    _atomic_save(obj, path)


#: The outputs a checkpoint may recommend (``extra["recommended_output"]``): the branch its
#: held-out evaluation found best. ``output: auto`` (node, m4sam-bag, m4sam-heldout) uses it.
OUTPUT_BRANCHES = ("memory", "coarse", "combined")


def recommended_output(checkpoint: str | Path | dict[str, Any]) -> str:
    """The branch the checkpoint (a path, or the dict already loaded) recommends, or ``memory``
    (the paper's output) when it names none."""
    ckpt = checkpoint if isinstance(checkpoint, dict) else safe_load(checkpoint)
    extra = ckpt.get("extra", {}) if isinstance(ckpt, dict) else {}
    value = extra.get("recommended_output", "memory") if isinstance(extra, dict) else "memory"
    return value if value in OUTPUT_BRANCHES else "memory"


def set_recommended_output(src: str | Path, dst: str | Path, output: str) -> None:
    """Copies checkpoint ``src`` to ``dst`` (atomically) with ``extra["recommended_output"]`` set;
    weights, config and the rest of ``extra`` unchanged. How a measured best branch is bundled."""
    if output not in OUTPUT_BRANCHES:
        raise ValueError(f"output must be one of {OUTPUT_BRANCHES}, got {output!r}")
    ckpt = safe_load(src)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{src}: not an M4-SAM checkpoint (no format={FORMAT!r})")
    _atomic_save(dict(ckpt, extra=dict(ckpt.get("extra", {}), recommended_output=output)), dst)


def read_m4sam_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, refused unless it is an M4-SAM checkpoint of a version this code reads."""
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an M4-SAM checkpoint (no format={FORMAT!r})")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {ckpt.get('format_version')!r} "
                              f"unsupported (this code reads {FORMAT_VERSION})")
    return ckpt


def load_m4sam_checkpoint(model: M4SAM, path: str | Path, ckpt: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load an M4-SAM checkpoint strictly (every weight it must hold: a trained part missing is
    refused, naming it); refuses another config naming the differing settings. ``ckpt``: the
    dict already read from ``path``. Returns the checkpoint's ``extra`` dict."""
    if ckpt is None:
        ckpt = read_m4sam_checkpoint(path)
    try:  # settings added since the checkpoint was written take their defaults (old files load)
        ckpt_config = load_config(dict(ckpt.get("config", {})))
    except ValueError as e:
        raise CheckpointError(f"{path}: checkpoint config is not valid here: {e}") from e
    diffs = _config_diff(ckpt_config, model.config)
    if diffs:
        raise CheckpointError(f"{path}: checkpoint was made for another model config; differing "
                              f"settings: {'; '.join(diffs)}")
    sd = ckpt["state_dict"]
    # a self-contained checkpoint must hold every weight, one on SAM2's weights its trained parts
    expected = model.state_dict() if sam2_requirement(ckpt) is None else trained_state_dict(model)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{path}: missing keys ({len(missing)}): {_fmt_keys(missing)}; "
                              f"unexpected keys ({len(unexpected)}): {_fmt_keys(unexpected)}")
    result = model.load_state_dict(sd, strict=False)
    if result.unexpected_keys:  # cannot happen after the check above; keep loud if it does
        raise CheckpointError(f"{path}: unexpected keys {result.unexpected_keys}")
    model.sam2_weights = sam2_requirement(ckpt)
    return ckpt.get("extra", {})
