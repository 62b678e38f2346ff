"""Checkpoints: SAM2 official format (strict), pickle payloads refused, M4-SAM round trip."""

import hashlib
import os
import pickle
import warnings

import pytest
import torch
import torch.nn as nn

from m4sam_ros.model import (
    CheckpointError,
    build_m4sam,
    load_config,
    load_m4sam_checkpoint,
    load_sam2_checkpoint,
    save_m4sam_checkpoint,
)
from m4sam_ros.model.checkpoint import (
    SAM2WeightsMismatchWarning,
    check_sam2_weights,
    recommended_output,
    safe_load,
    sam2_fingerprint,
    trained_state_dict,
)


def _perturb_trained(model):
    """Make every trained tensor non-trivial (B != 0, fusion out != 0, ...)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def _outputs(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    s = model.image_size
    x = torch.randn(1, 2, 3, s, s, generator=g)
    d = torch.rand(1, 2, 1, s, s, generator=g)
    model.eval()
    with torch.no_grad():
        enc = model.encode(x[:, 0], d[:, 0])
        clip = model.forward_clip(x, d)
    flat = [v for v in clip.values() if isinstance(v, torch.Tensor)]
    flat += [s for v in clip.values() if isinstance(v, list) for s in v]  # side outputs
    return [enc.coarse_logits, *enc.backbone_out["backbone_fpn"], *flat]


def test_official_sam2_checkpoint_loads_strictly(tmp_path):
    torch.manual_seed(0)
    src = build_m4sam("m4sam_demo").sam
    path = tmp_path / "sam2_demo.pt"
    torch.save({"model": src.state_dict()}, path)
    torch.manual_seed(1)
    model = build_m4sam("m4sam_demo", sam2_checkpoint=path)
    for k, v in src.state_dict().items():
        assert torch.equal(model.sam.state_dict()[k], v), k


def test_renamed_key_fails_naming_it(tmp_path):
    sd = build_m4sam("m4sam_demo").sam.state_dict()
    key = "memory_encoder.out_proj.weight"
    sd["memory_encoder.out_projection.weight"] = sd.pop(key)
    path = tmp_path / "renamed.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError) as e:
        build_m4sam("m4sam_demo", sam2_checkpoint=path)
    assert key in str(e.value) and "memory_encoder.out_projection.weight" in str(e.value)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create a file: a stand-in for any code
        return (open, (str(self.marker), "w"))


def test_pickle_with_code_payload_is_refused(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Payload(marker)}, f, protocol=2)
    torch.save({"model": {"w": torch.zeros(1)}, "x": _Payload(marker)}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        with pytest.raises(CheckpointError, match="refused"):
            load_sam2_checkpoint(nn.Linear(1, 1), p)
        with pytest.raises(CheckpointError, match="refused"):
            safe_load(p)
    assert not marker.exists()


def test_m4sam_round_trip_demo_identical_outputs(tmp_path):
    torch.manual_seed(0)
    a = build_m4sam("m4sam_demo")
    _perturb_trained(a)
    path = tmp_path / "ckpt" / "m4sam_demo.pt"
    save_m4sam_checkpoint(a, path, extra={"epoch": 3})
    assert [p.name for p in path.parent.iterdir()] == ["m4sam_demo.pt"]  # no temp file left
    torch.manual_seed(1)
    b = build_m4sam("m4sam_demo", m4sam_checkpoint=path)
    assert load_m4sam_checkpoint(b, path) == {"epoch": 3}
    for u, v in zip(_outputs(a), _outputs(b), strict=True):
        assert torch.equal(u, v)


def test_m4sam_round_trip_peft_holds_only_trained_parts(tmp_path):
    """Hiera-T config: the checkpoint holds adapters/fusion/GMLFF/head and SAM2's memory branch
    (train_memory_branch), never the image encoder; with the same SAM2 weights (official-format
    file) the rebuilt model gives identical outputs."""
    s = 64
    torch.manual_seed(0)
    sam_path, ckpt_path = tmp_path / "sam2.pt", tmp_path / "m4sam.pt"
    torch.save({"model": build_m4sam("m4sam_hiera_t", image_size=s).sam.state_dict()}, sam_path)
    a = build_m4sam("m4sam_hiera_t", image_size=s, sam2_checkpoint=sam_path)  # trained on SAM2 weights
    _perturb_trained(a)
    save_m4sam_checkpoint(a, ckpt_path)
    keys = set(torch.load(ckpt_path, weights_only=True)["state_dict"])
    assert keys and all(k.split(".")[0] in {"adapters", "fusion", "gmlff", "head"}
                        or (k.startswith("sam.") and not k.startswith("sam.image_encoder."))
                        for k in keys)
    assert any(k.startswith("sam.memory_attention.") for k in keys)
    assert keys == set(trained_state_dict(a))
    torch.manual_seed(1)
    b = build_m4sam("m4sam_hiera_t", sam2_checkpoint=sam_path, m4sam_checkpoint=ckpt_path,
                    image_size=s)
    for u, v in zip(_outputs(a), _outputs(b), strict=True):
        assert torch.equal(u, v)


def test_config_mismatch_refused_naming_setting(tmp_path):
    path = tmp_path / "m.pt"
    save_m4sam_checkpoint(build_m4sam("m4sam_demo"), path)
    cfg = load_config("m4sam_demo")
    cfg["moe_lora"]["top_k"] = 1
    other = build_m4sam(cfg)
    with pytest.raises(CheckpointError, match=r"moe_lora\.top_k: checkpoint=2 model=1"):
        load_m4sam_checkpoint(other, path)
    # A resolution change is allowed: the weights do not depend on it.
    load_m4sam_checkpoint(build_m4sam("m4sam_demo", image_size=64), path)


def test_not_an_m4sam_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="not an M4-SAM checkpoint"):
        load_m4sam_checkpoint(build_m4sam("m4sam_demo"), path)


def test_a_newer_format_version_is_refused_naming_it(tmp_path):
    """A checkpoint from a newer release (format_version 2) is refused with its version and the one
    this code reads, before any weight is touched. Wrong code: read any version (keys that mean
    something else in the new format load silently)."""
    model = build_m4sam("m4sam_demo", image_size=64)
    path = tmp_path / "v2.pt"
    save_m4sam_checkpoint(model, path)
    ckpt = torch.load(path, weights_only=True)
    torch.save(dict(ckpt, format_version=2), path)
    with pytest.raises(CheckpointError, match=r"format_version 2 unsupported \(this code reads 1\)"):
        load_m4sam_checkpoint(model, path)


def test_sam2_weight_of_another_shape_fails_naming_it(tmp_path):
    """A SAM2 file of another model size has every key, but some of another shape: refused as a
    CheckpointError naming the key and both shapes (what the node and the tools report), not
    torch's RuntimeError from deep inside load_state_dict."""
    sd = build_m4sam("m4sam_demo").sam.state_dict()
    key = "memory_encoder.out_proj.weight"
    sd[key] = torch.zeros(sd[key].shape[0] + 1, *sd[key].shape[1:])
    path = tmp_path / "other_size.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError, match=r"shape mismatch: " + key.replace(".", r"\.")):
        build_m4sam("m4sam_demo", sam2_checkpoint=path)


def test_recommended_output_picks_auto_everywhere(tmp_path):
    """A checkpoint's recommended branch is what output="auto" means (predictor construction and
    run-time changes); explicit branches win; no recommendation means memory."""
    from m4sam_ros.model.checkpoint import set_recommended_output
    from m4sam_ros.predictor.streaming import StreamingPredictor

    torch.manual_seed(0)
    plain = tmp_path / "plain.pt"
    save_m4sam_checkpoint(build_m4sam("m4sam_demo", image_size=64), plain, extra={"step": 5})
    tagged = tmp_path / "tagged.pt"
    set_recommended_output(plain, tagged, "coarse")
    assert recommended_output(plain) == "memory" and recommended_output(tagged) == "coarse"
    assert safe_load(tagged)["extra"] == {"step": 5, "recommended_output": "coarse"}
    torch.testing.assert_close(safe_load(tagged)["state_dict"], safe_load(plain)["state_dict"], rtol=0, atol=0)
    auto = StreamingPredictor.from_config(None, m4sam_checkpoint=tagged, output="auto")
    assert auto.output == "coarse"
    assert StreamingPredictor.from_config(None, m4sam_checkpoint=tagged).output == "memory"  # the API default
    assert StreamingPredictor.from_config(None, m4sam_checkpoint=plain, output="auto").output == "memory"
    auto.set_thresholds(output="combined")
    assert auto.output == "combined"
    auto.set_thresholds(output="auto")
    assert auto.output == "coarse"
    with pytest.raises(ValueError, match="output must be one of"):
        auto.set_thresholds(output="both")
    with pytest.raises(ValueError, match="output must be one of"):
        set_recommended_output(plain, tmp_path / "x.pt", "both")
    assert not (tmp_path / "x.pt").exists()


def test_a_sam2_file_replaced_in_place_is_hashed_again(tmp_path) -> None:
    """The SHA-256 of a SAM2 file is cached (hashing Hiera-L takes seconds), but a file replaced at
    the same path (another download, another size or time) is hashed again, so the mismatch
    warning still fires. Wrong code: cache by path alone (the old hash is reported forever)."""
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    path.write_bytes(b"first download")
    first = sam2_fingerprint(path)
    assert first == {"name": path.name, "size": 14, "sha256": hashlib.sha256(b"first download").hexdigest()}
    path.write_bytes(b"another release")
    os.utime(path, ns=(1, 1))
    second = sam2_fingerprint(path)
    assert second["size"] == 15 and second["sha256"] == hashlib.sha256(b"another release").hexdigest()
    # the rule compares the content, not the name: the same file name with other bytes warns
    record = {"sam2_weights": dict(first)}
    with pytest.warns(SAM2WeightsMismatchWarning, match="SAM2 WEIGHTS MISMATCH"):
        check_sam2_weights("ckpt.pt", record, path)
    path.write_bytes(b"first download")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAM2WeightsMismatchWarning)
        assert check_sam2_weights("ckpt.pt", record, path) == first


def test_an_unknown_recommended_output_falls_back_to_memory(tmp_path) -> None:
    """A checkpoint whose extra names a branch this code does not have (a typo, a newer release)
    recommends the paper's output, memory. Wrong code: pass the name on (the predictor would fail
    at the first frame, or the node refuse to start)."""
    assert recommended_output({"extra": {"recommended_output": "memroy"}}) == "memory"
    assert recommended_output({"extra": {"recommended_output": "combined"}}) == "combined"
    assert recommended_output({"extra": "not a dict"}) == "memory"
