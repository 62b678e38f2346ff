"""The demo harness (issue 24): the player keeps its schedule, the loss is split into the node's
own drops and the harness's, the node's stage timings add up and tell CPU from waiting."""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from m4sam_ros.apps.demo import node_figures, run_demo, summarize
from m4sam_ros.apps.demo_io import COLOR_TOPIC, DEPTH_TOPIC, replay
from m4sam_ros.model import build_m4sam, save_m4sam_checkpoint
from m4sam_ros.ros.diagnostics import StageClock, Timings


class FakeClock:
    """Virtual time: sleeping advances it, and so does publishing (by ``cost`` per message)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def _msg(ns: int) -> SimpleNamespace:
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9)))


def test_player_keeps_an_absolute_schedule_after_a_late_message() -> None:
    # 5 colour frames at 10 Hz (+ depth 3 ms later); publishing frame 1's colour takes 250 ms
    clock = FakeClock()
    msgs = []
    for i in range(5):
        ns = 10**9 + i * 100_000_000
        msgs += [(COLOR_TOPIC, ns, _msg(ns)), (DEPTH_TOPIC, ns + 3_000_000, _msg(ns + 3_000_000))]
    costs = {(COLOR_TOPIC, 10**9 + 100_000_000): 0.25}

    def publisher(topic: str):
        def publish(m: SimpleNamespace) -> None:
            clock.t += costs.get((topic, m.header.stamp.sec * 10**9 + m.header.stamp.nanosec), 0.0)
        return publish

    published_at, late = replay(msgs, {COLOR_TOPIC: publisher(COLOR_TOPIC), DEPTH_TOPIC: publisher(DEPTH_TOPIC)},
                                clock=clock, sleep=clock.sleep)
    times = [published_at[10**9 + i * 100_000_000] - 100.0 for i in range(5)]
    # frame 1 went out 250 ms late, and frames 2 and 3 (due at 0.2 and 0.3 s) as soon as it was out;
    # frame 4 is back on time: a late message never shifts the schedule after it
    assert times == pytest.approx([0.0, 0.35, 0.35, 0.35, 0.4])
    # lateness of each message against its own due time (order: colour 0, depth 0, colour 1, ...)
    assert late == pytest.approx([0, 0, 0.25, 0.247, 0.15, 0.147, 0.05, 0.047, 0, 0])


def test_player_rate_scales_the_schedule() -> None:
    clock = FakeClock()
    msgs = [(COLOR_TOPIC, 10**9 + i * 200_000_000, _msg(10**9 + i * 200_000_000)) for i in range(3)]
    published_at, _ = replay(msgs, {COLOR_TOPIC: lambda m: None}, rate=2.0, clock=clock, sleep=clock.sleep)
    assert sorted(v - 100.0 for v in published_at.values()) == pytest.approx([0.0, 0.1, 0.2])


def test_summary_splits_the_loss_between_node_and_harness() -> None:
    gt = np.zeros((8, 8), np.uint8)
    gt[2:6, 2:6] = 255
    # 10 pairs sent; the node got 8 (2 lost on the way in), processed 5, dropped 2 as stale,
    # skipped 1 over max_rate; the recorder got 4 of its 5 masks (1 lost on the way out)
    node = node_figures({"pairs_in": "8", "processed": "5", "dropped_pairs": "2", "rejected_total": "0",
                         "skipped_rate_limit": "1", "skipped_paused": "0", "stage_ms_mean_inference": "30.500",
                         "stage_cpu_ms_mean_inference": "29.000", "pair_to_mask_ms_mean": "40.000"})
    received = {s: 0.1 * s for s in range(4)}
    s = summarize({s: 0.1 * s - 0.05 for s in range(10)}, received, {k: gt for k in received},
                  {k: gt for k in range(10)}, pairs_sent=10, wall_s=1.0, node=node)
    assert s["masks_received"] == 4 and s["dropped_pairs"] == 6
    assert s["lost_in_node"] == {"dropped_stale": 2, "rejected": 0, "skipped_rate_limit": 1, "skipped_paused": 0}
    assert s["lost_in_harness"] == {"never_reached_node": 2, "masks_not_recorded": 1}
    assert s["node"]["stage_ms_mean"] == {"inference": 30.5} and s["node"]["stage_cpu_ms_mean"] == {"inference": 29.0}
    assert s["node"]["pair_to_mask_ms_mean"] == 40.0 and s["node"]["pair_to_output_ms_mean"] is None
    # without the node's diagnostics nothing is guessed
    assert "lost_in_node" not in summarize({}, {}, {}, {}, pairs_sent=3, wall_s=1.0, node=node_figures({}))


def _spin_cpu(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_stage_clock_tells_cpu_from_waiting() -> None:
    clock = StageClock(time.perf_counter() - 0.05)  # the pair waited 50 ms for the worker
    _spin_cpu(0.03)
    clock.lap("decode")
    time.sleep(0.04)  # waiting (for a core, the GIL, I/O) is wall time, not CPU time
    clock.lap("inference")
    clock.lap("mask")
    assert clock.wall_ms["queue"] >= 50
    assert clock.cpu_ms["decode"] >= 30 and clock.wall_ms["decode"] >= 30
    assert clock.wall_ms["inference"] >= 40 and clock.cpu_ms["inference"] < 15
    assert clock.to_mask_ms == pytest.approx(sum(clock.wall_ms.values()), abs=1e-6)
    assert clock.total_ms == pytest.approx(clock.to_mask_ms, abs=1e-6)

    t = Timings()
    t.add(clock)
    other = StageClock(time.perf_counter())
    other.lap("decode")
    other.lap("inference")
    other.lap("encode")  # no ~/mask subscriber on this frame: no mask lap
    t.add(other)
    v = t.values()
    assert v["timed_frames"] == 2
    assert v["stage_ms_mean_decode"] == pytest.approx((clock.wall_ms["decode"] + other.wall_ms["decode"]) / 2)
    assert v["stage_cpu_ms_mean_mask"] == pytest.approx(clock.cpu_ms["mask"] / 2)
    assert v["pair_to_mask_ms_mean"] == pytest.approx(clock.to_mask_ms)  # only the frame that published one
    assert v["pair_to_output_ms_mean"] == pytest.approx((clock.total_ms + other.total_ms) / 2)
    assert math.isnan(Timings().values()["pair_to_mask_ms_p95"])


def test_demo_loss_split_and_node_timings_end_to_end(tmp_path: Path) -> None:
    """The real node, capped at 2.5 pairs/s, fed 10 pairs at 5 Hz: about half are skipped by the
    node itself, and the summary says so from the node's final counters (not the harness's)."""
    torch.manual_seed(0)
    ckpt = tmp_path / "random_demo.pt"
    save_m4sam_checkpoint(build_m4sam("m4sam_demo"), ckpt)
    s = run_demo(tmp_path / "out", frames=10, seed=5, checkpoint=ckpt, width=96, height=72, fps=5.0,
                 node_params={"max_rate": "2.5"})
    node, ln, lh = s["node"], s["lost_in_node"], s["lost_in_harness"]
    assert s["node_exit_code"] == 0 and s["pairs_sent"] == 10
    assert ln["skipped_rate_limit"] >= 3, (ln, lh, node)
    # every pair reaches the node (the player stays until its samples are acknowledged) and the
    # recorder keeps every mask
    assert lh == {"never_reached_node": 0, "masks_not_recorded": 0}, (ln, lh, node)
    assert s["harness"]["player_all_acked"] is True
    # the node's final counters: every pair sent is a mask back or one of the node's own losses
    # or one that never reached it - nothing unaccounted for, nothing counted twice
    assert node["processed"] == s["masks_received"]
    assert s["masks_received"] + sum(ln.values()) + lh["never_reached_node"] == 10, (ln, lh, node)
    # the stages are contiguous laps: pair in -> mask out is queue + decode + inference + mask
    st = node["stage_ms_mean"]
    assert set(st) == {"queue", "decode", "inference", "mask", "encode", "publish"}
    assert st["inference"] > 0 and node["stage_cpu_ms_mean"]["inference"] > 0
    assert node["pair_to_mask_ms_mean"] == pytest.approx(st["queue"] + st["decode"] + st["inference"] + st["mask"],
                                                          abs=0.01)
    assert node["pair_to_output_ms_mean"] == pytest.approx(sum(st.values()), abs=0.01)
    h = s["harness"]
    assert h["recorded"]["mask"] == s["masks_received"] and h["player_late_ms_max"] < 1000
    assert set(h["cpu_s_during_replay"]) == {"player", "node", "recorder", "demo"}


def test_demo_names_the_node_log_when_the_node_cannot_start(tmp_path: Path) -> None:
    out = tmp_path / "demo_output"
    with pytest.raises(RuntimeError, match=r"node exited \(code 1\) before the recorder was ready; see .*node\.log"):
        run_demo(out, frames=8, seed=5, checkpoint=tmp_path / "missing.pt", width=96, height=72, fps=5.0)
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))  # nothing half-written left behind


def test_bench_overhead_counts_the_worker_stages_not_the_queue() -> None:
    from m4sam_ros.benchmarks.demo_bench import median_node, overhead

    runs = [{"stage_ms_mean": {"queue": 50.0, "decode": 1.0, "inference": 30.0, "mask": 1.0, "encode": 5.0, "publish": 2.0},
             "stage_cpu_ms_mean": {"decode": 1.0, "inference": 28.0, "mask": 1.0, "encode": 4.0, "publish": 2.0}},
            {"stage_ms_mean": {"queue": 10.0, "decode": 3.0, "inference": 50.0, "mask": 1.0, "encode": 5.0, "publish": 2.0},
             "stage_cpu_ms_mean": {"decode": 1.0, "inference": 32.0, "mask": 1.0, "encode": 6.0, "publish": 2.0}}, {}]
    node = median_node(runs)
    assert node["runs"] == 2 and node["stage_ms_mean"]["inference"] == 40.0 and node["stage_cpu_ms_mean"]["encode"] == 5.0
    ov = overhead(node, {"step_ms_mean": 40.0, "step_cpu_ms_mean": 30.0})
    # to the mask: decode + inference + mask (the queue is waiting, not work); in all: + encode + publish
    assert ov["to_mask_ms"] == 43.0 and ov["to_mask_overhead_wall"] == pytest.approx(3 / 40)
    assert ov["to_mask_cpu_ms"] == 32.0 and ov["to_mask_overhead_cpu"] == pytest.approx(2 / 30)
    assert ov["to_mask_overhead_cpu_vs_own_inference"] == pytest.approx(2 / 30)
    assert ov["all_ms"] == 50.0 and ov["all_cpu_ms"] == 39.0 and ov["all_overhead_cpu"] == pytest.approx(9 / 30)
