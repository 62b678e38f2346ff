"""ONNX export + the ONNX Runtime backend: parity with the PyTorch predictor, and no torch needed.

One tiny export (the demo config at 64 px, random weights) serves every test here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from m4sam_ros.data.synth.world import generate_video
from m4sam_ros.export.graphs import rotate
from m4sam_ros.export.onnx_export import export_model
from m4sam_ros.model import build_m4sam
from m4sam_ros.predictor.onnx_runtime import OrtStreamingPredictor
from m4sam_ros.predictor.slot_bank import from_bf16_bits, to_bf16_bits
from m4sam_ros.predictor.streaming import StreamingPredictor

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
N_FRAMES = 30
REINIT_AT = (19, 24)  # explicit re-initialisations; with max_cond_frames=2 the second evicts frame 0
#: no automatic re-initialisation (the random model's maps disagree): the run tracks for 19 frames,
#: so tracked memories are evicted (15 kept), then two requests re-condition it
SETTINGS = {"reinit_low_score_frames": 10**9, "reinit_iou_frames": 10**9, "reinit_cut_threshold": -1.0,
            "max_cond_frames": 2, "output": "combined"}


def _object_head_bias(model: torch.nn.Module) -> torch.Tensor:
    head = model.sam.sam_mask_decoder.pred_obj_score_head
    last = head if isinstance(head, torch.nn.Linear) else head.layers[-1]
    return last.bias


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, list]:
    """(model, export folder, frames): the object-score head is shifted so that the tracked frames'
    scores straddle 0 with a clear margin, i.e. the run has "no object" frames as well as object frames."""
    torch.manual_seed(0)
    model = build_m4sam("m4sam_demo", image_size=SIZE)
    with torch.no_grad():  # SAM2 starts its temporal encodings at std 0.02: too faint for a wrong index to show
        model.sam.maskmem_tpos_enc.normal_(0.0, 1.0)
    video = generate_video(3, N_FRAMES, 96, 72)
    frames = list(zip(video.rgb, video.depth, strict=True))
    probe = StreamingPredictor(model, "cpu", **SETTINGS)
    logits = []
    for i, (rgb, depth) in enumerate(frames[:18]):
        r = probe.step(rgb, depth, stamp=0.1 * i)
        if not r.reinitialized:
            logits.append(float(np.log(r.object_score / (1 - r.object_score))))
    logits = np.sort(logits)
    gaps = np.diff(logits)
    mid = len(logits) // 2
    cut = max(range(mid - 3, mid + 3), key=lambda i: gaps[i])  # the widest gap near the median
    with torch.no_grad():
        _object_head_bias(model).sub_(float((logits[cut] + logits[cut + 1]) / 2))
    out = tmp_path_factory.mktemp("onnx") / "model"
    export_model(model, out, max_cond_frames=2)
    return model, out, frames


def test_rotary_encoding_equals_sam2_complex_one() -> None:
    """The real-valued rotation is SAM2's complex ``apply_rotary_enc`` (queries and repeated keys)."""
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    cis = compute_axial_cis(dim=16, end_x=4, end_y=4)
    q = torch.randn(1, 2, 16, 16)
    k = torch.randn(1, 2, 48, 16)
    q_ref, k_ref = apply_rotary_enc(q, k, cis, repeat_freqs_k=True)
    torch.testing.assert_close(rotate(q, cis.real, cis.imag), q_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(rotate(k, cis.real.repeat(3, 1), cis.imag.repeat(3, 1)), k_ref, rtol=0, atol=1e-6)


def test_bf16_bits_round_like_torch() -> None:
    x = torch.randn(4096) * 10
    x[:3] = torch.tensor([1.00390625, 1.01171875, -2.00390625])  # exact ties: round half to even
    bits = to_bf16_bits(x.numpy())
    np.testing.assert_array_equal(from_bf16_bits(bits), x.to(torch.bfloat16).float().numpy())


def test_manifest_names_static_shapes_and_hashes(exported: tuple) -> None:
    model, out, _ = exported
    man = json.loads((out / "manifest.json").read_text())
    assert man["image_size"] == SIZE and man["opset"] >= 17
    lay = man["layout"]
    # 2 conditioning slots + num_maskmem - 1 = 6 recent frames; 2 + 15 pointers of 2 tokens each
    assert (lay["cond_slots"], lay["mem_slots"], lay["ptr_slots"], lay["tokens_per_ptr"]) == (2, 8, 17, 2)
    att = man["graphs"]["memory_attention"]["inputs"]
    assert att["mem_feats"]["shape"] == [8, 32, 4, 4] and att["ptr_valid"]["shape"] == [17]
    for name, g in man["graphs"].items():
        assert len(g["sha256"]) == 64 and (out / g["file"]).is_file(), name
        assert all(isinstance(d, int) for io in ("inputs", "outputs") for v in g[io].values() for d in v["shape"])
    assert man["config"]["name"] == "m4sam_demo" and len(man["config_sha256"]) == 64


def test_graph_optimisation_does_not_blow_up_the_weights(exported: tuple, tmp_path: Path) -> None:
    """ONNX Runtime's constant folding keeps every graph's constants near its weights' size. Rules
    out the qkv adapters' in-place slice add exported as ScatterND: its int64 index tensor (4 per
    element of qkv) was folded into constants, 110 -> 1700 MB resident for hiera-t at 256 px
    (here 64 px: the exported constants grow ~3x)."""
    import onnx
    import onnxruntime as ort

    _, out, _ = exported
    for name in json.loads((out / "manifest.json").read_text())["graphs"]:
        src = onnx.load(str(out / f"{name}.onnx"))
        if name.startswith("encoder"):  # SAM2's prompt encoder has two small ones of its own
            assert not [n.name for n in src.graph.node if n.op_type == "ScatterND"], name
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # constant folding
        opts.optimized_model_filepath = str(tmp_path / f"{name}.opt.onnx")
        ort.InferenceSession(str(out / f"{name}.onnx"), opts, providers=["CPUExecutionProvider"])

        def constant_bytes(m: onnx.ModelProto) -> int:
            return sum(onnx.numpy_helper.to_array(t).nbytes for t in m.graph.initializer)

        before, after = constant_bytes(src), constant_bytes(onnx.load(opts.optimized_model_filepath))
        assert after <= 1.25 * before + 2**20, (name, before, after)


def test_parity_with_the_pytorch_predictor(exported: tuple) -> None:
    """30 frames: tracked-memory eviction, two re-initialisations (the second evicts the first
    conditioning frame), "no object" frames. Logits and object scores within 1e-3, masks on
    >= 99.5 % of pixels, the same boxes, the same state."""
    model, out, frames = exported
    ref = StreamingPredictor(model, "cpu", **SETTINGS)
    ort_pred = OrtStreamingPredictor(out, threads=1, **SETTINGS)
    scores = []
    for i, (rgb, depth) in enumerate(frames):
        if i in REINIT_AT:
            ref.request_reinit()
            ort_pred.request_reinit()
        a = ref.step(rgb, depth, stamp=0.1 * i)
        b = ort_pred.step(rgb, depth, stamp=0.1 * i)
        assert b.reinitialized == a.reinitialized == (i == 0 or i in REINIT_AT), i
        np.testing.assert_allclose(b.memory_logits, a.memory_logits, rtol=0, atol=1e-3, err_msg=f"frame {i}")
        assert abs(b.object_score - a.object_score) < 1e-3, i
        np.testing.assert_allclose(b.coarse, a.coarse, rtol=0, atol=1e-4, err_msg=f"frame {i}")
        assert (b.mask == a.mask).mean() >= 0.995, i
        assert [x[:4] for x in b.boxes] == [x[:4] for x in a.boxes], i
        np.testing.assert_allclose([x.score for x in b.boxes], [x.score for x in a.boxes], atol=1e-4)
        assert list(ort_pred.memory.cond) == list(ref.memory.cond), i
        assert list(ort_pred.memory.non_cond) == list(ref.memory.non_cond), i
        if not a.reinitialized:
            scores.append(a.object_score)
    assert min(scores) < 0.5 < max(scores), "the run must hold 'no object' and object frames"
    assert list(ref.memory.cond) == [19, 24] and len(ref.memory.non_cond) == 5
    assert ort_pred.state_nbytes() == ref.state_nbytes()
    assert ort_pred.max_state_nbytes() == ref.max_state_nbytes()


NO_TORCH = textwrap.dedent("""
    import sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "sam2", "torchvision", "hydra"):
                raise ImportError(f"{name} is blocked: the ONNX Runtime backend must not need it")
    sys.meta_path.insert(0, Block())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker failed")
    import numpy as np
    from m4sam_ros.predictor import OrtStreamingPredictor
    from m4sam_ros.data.synth.world import generate_video
    p = OrtStreamingPredictor(sys.argv[1], threads=1, max_cond_frames=2)
    rng = np.random.default_rng(0)
    for i in range(4):
        rgb = rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)
        depth = rng.integers(300, 3000, (72, 96), dtype=np.uint16)
        r = p.step(rgb, depth, stamp=0.1 * i)
    blocked = [m for m in sys.modules if m.split(".")[0] in ("torch", "sam2")]
    print("ok", r.frame_index, r.mask.shape, blocked)
""")


def test_runs_where_torch_cannot_be_imported(exported: tuple, tmp_path: Path) -> None:
    """The runtime path imports numpy, OpenCV and onnxruntime only: torch and sam2 blocked."""
    _, out, _ = exported
    script = tmp_path / "no_torch.py"
    script.write_text(NO_TORCH.replace("from m4sam_ros.data.synth.world import generate_video\n", ""))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok 3 (72, 96) []"), proc.stdout


def test_refuses_a_folder_without_manifest_and_too_many_cond_frames(exported: tuple, tmp_path: Path) -> None:
    _, out, _ = exported
    with pytest.raises(FileNotFoundError, match="m4sam-export"):
        OrtStreamingPredictor(tmp_path)
    with pytest.raises(ValueError, match="conditioning slots"):
        OrtStreamingPredictor(out, max_cond_frames=3)
    with pytest.raises(ValueError, match="rgb-only-encoder"):
        OrtStreamingPredictor(out, rgb_only=True)
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ValueError, match="onnxruntime-gpu"):
            OrtStreamingPredictor(out, providers="cuda", max_cond_frames=2)


def test_export_cli_validates_each_graph_against_pytorch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """m4sam-export --checkpoint ... --validate: every graph within 1e-4 of its PyTorch module; a
    missing checkpoint is refused by name and leaves no folder."""
    from m4sam_ros.export.onnx_export import main as export_main
    from m4sam_ros.model import save_m4sam_checkpoint

    torch.manual_seed(1)
    ckpt = tmp_path / "m.pt"
    save_m4sam_checkpoint(build_m4sam("m4sam_demo", image_size=32), ckpt)
    out = tmp_path / "onnx"
    assert export_main(["--checkpoint", str(ckpt), "--out", str(out), "--validate", "--rgb-only-encoder"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "max |ORT - torch|" in ln]
    assert len(lines) == 6 and all(float(ln.split("=")[-1]) < 1e-4 for ln in lines), lines
    man = json.loads((out / "manifest.json").read_text())
    assert man["image_size"] == 32 and man["checkpoint"] == "m.pt" and man["rgb_only_encoder"]
    with pytest.raises(SystemExit, match="not found"):
        export_main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
