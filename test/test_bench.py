"""m4sam-bench at a tiny size: all three predictors run on the same frames and the JSON has the keys."""

from __future__ import annotations

import json
from pathlib import Path

from m4sam_ros.benchmarks.bench import main

KEYS = {"sam2_vp_ms", "stream_rgb_ms", "m4sam_ms", "ratio_stream_rgb_vs_sam2_vp", "ratio_m4sam_vs_sam2_vp",
        "stream_state_bytes_warm", "stream_state_bytes_end", "sam2_vp_state_bytes_warm", "sam2_vp_state_bytes_end"}


def test_bench_writes_every_figure(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["--size", "64", "--frames", "20", "--warmup", "1", "--model-size", "demo", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert KEYS <= set(res)
    assert all(res[k] > 0 for k in KEYS)
    assert res["ratio_m4sam_vs_sam2_vp"] == res["m4sam_ms"] / res["sam2_vp_ms"]
    # past the memory window the stream holds a fixed amount; SAM2's video predictor keeps growing
    assert res["stream_state_bytes_end"] == res["stream_state_bytes_warm"]
    assert res["sam2_vp_state_bytes_end"] > res["sam2_vp_state_bytes_warm"]
    assert "ratio_m4sam_vs_sam2_vp" in capsys.readouterr().out


def test_memory_soak(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    assert main(["--size", "64", "--frames", "40", "--memory-only", "--model-size", "demo", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["stream_state_bytes_warm"] == res["stream_state_bytes_mid"] == res["stream_state_bytes_end"]


def test_gpu_suite_runs_end_to_end_on_cpu_at_tiny_size(tmp_path: Path) -> None:
    """The one GPU command, shrunk: official-format random SAM2 weights -> training steps with a
    finite loss, streaming figures, a memory check that holds; one JSON."""
    import torch

    out = tmp_path / "suite.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: one thread is 3x faster than two on the shared CI cores
    try:
        assert main(["--gpu-suite", "--device", "cpu", "--tiny", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads(out.read_text())
    train = res["train"]
    assert train["loss_finite"] and train["steps"] == 3 and train["s_per_step"] > 0
    assert train["sam2_checkpoint_format"].startswith("official")
    assert {"adapters", "memory", "heads"} <= set(train["groups"])
    stream = res["stream_demo_64"]
    assert stream["fps"] > 0 and 0 < stream["p50_ms"] <= stream["p99_ms"]
    assert "skipped" in res["stream_demo_64_compiled"]
    assert res["memory"]["equal"] and res["memory"]["state_bytes_early"] == res["memory"]["state_bytes_late"]
    assert "no CUDA" in res["onnx"]["skipped"]  # the ONNX GPU route says it was not run


def test_onnxruntime_backend_figures(tmp_path: Path) -> None:
    """--backend onnxruntime: export, both backends on the same frames, ratios that are the
    quotients of the printed times, and each backend's peak RSS from its own process."""
    out = tmp_path / "ort.json"
    assert main(["--backend", "onnxruntime", "--size", "64", "--frames", "5", "--warmup", "1", "--model-size", "demo",
                 "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    for b in ("torch_rgbd", "torch_rgb", "ort_rgbd", "ort_rgb"):
        assert res[f"{b}_ms_t1"] > 0 and res[f"{b}_cpu_ms_t1"] > 0, b
    assert res["ratio_ort_vs_torch_t1"] == round(res["ort_rgbd_ms_t1"] / res["torch_rgbd_ms_t1"], 3)
    assert res["rgbd_over_rgb_ort_cpu_t1"] == round(res["ort_rgbd_cpu_ms_t1"] / res["ort_rgb_cpu_ms_t1"], 3)
    # the torch-free process holds no torch: well under the PyTorch process's peak
    assert 0 < res["ort_peak_rss_mib"] < 0.8 * res["torch_peak_rss_mib"]
