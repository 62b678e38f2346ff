"""`make demo`: the real node on a replayed synthetic RGB-D bag, recorded and scored.

Steps: generate a held-out synthetic table-top scene (``DEMO_SCENE``: objects resting on a table in
front of a wall, the camera looking down at it at an angle, a look-alike picture of an object lying
at background depth, small clutter) as a rosbag2 (and keep its ground truth), start the real
``m4sam_node`` process with the bundled demo model, replay the bag into it over DDS at its recorded
rate (localhost only), record everything the node publishes into a bag, then write
``demo_output/``: the recorded bag, ``overlay.mp4``, ``contact_sheet.png`` and ``summary.json``
(pairs sent, masks received, latency, frames/s, S-measure and MAE, and the loss split into the
node's own drops, from its /diagnostics, and what the harness lost).

The player and the recorder run in processes of their own (``apps/demo_io.py``): the player only
sleeps and publishes messages deserialised before the replay, the recorder only appends raw bytes
until the replay is over. This process waits meanwhile; it uses no ROS at all.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 50))

import numpy as np  # noqa: E402

from m4sam_ros.apps.demo_io import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, OUTPUT_TOPICS  # noqa: E402
from m4sam_ros.util.atomic import building_dir  # noqa: E402
from m4sam_ros.util.cli import DefaultsHelpFormatter  # noqa: E402

DEMO_SCENE = {"layout": "tabletop", "distractors": ("poster", "clutter"), "rest": True}
#: how often the node publishes /diagnostics during the demo (its counters end the recording)
DIAGNOSTICS_PERIOD_S = 0.5
__all__ = ["COLOR_TOPIC", "DEMO_SCENE", "DEPTH_TOPIC", "INFO_TOPIC", "OUTPUT_TOPICS", "run_demo", "summarize"]


def _num(values: dict[str, str], key: str) -> float | None:
    try:
        return float(values[key])
    except (KeyError, ValueError):
        return None


def node_figures(diagnostics: dict[str, str]) -> dict[str, Any]:
    """The node's own account of the run, from its last /diagnostics values: pairs it received,
    processed and dropped as stale (newest-only hand-off), rejected, and its per-stage times."""
    if not diagnostics:
        return {}
    out: dict[str, Any] = {}
    for key, name in (("pairs_in", "pairs_received"), ("processed", "processed"), ("dropped_pairs", "dropped_stale"),
                      ("rejected_total", "rejected"), ("skipped_rate_limit", "skipped_rate_limit"),
                      ("skipped_paused", "skipped_paused")):
        v = _num(diagnostics, key)
        out[name] = int(v) if v is not None else None
    out["stage_ms_mean"] = {k[len("stage_ms_mean_"):]: _num(diagnostics, k) for k in diagnostics
                            if k.startswith("stage_ms_mean_")}
    out["stage_cpu_ms_mean"] = {k[len("stage_cpu_ms_mean_"):]: _num(diagnostics, k) for k in diagnostics
                                if k.startswith("stage_cpu_ms_mean_")}
    for key in ("pair_to_mask_ms_mean", "pair_to_mask_ms_p95", "pair_to_output_ms_mean", "pair_to_output_ms_p95"):
        out[key] = _num(diagnostics, key)
    return out


def summarize(published_at: dict[int, float], received_at: dict[int, float], masks: dict[int, np.ndarray],
              ground_truth: dict[int, np.ndarray], pairs_sent: int, wall_s: float,
              node: dict[str, Any] | None = None) -> dict[str, Any]:
    """The demo's figures: delivery, latency, throughput and accuracy against the scene's truth.

    ``dropped_pairs`` is every pair sent without a mask back. With ``node`` (``node_figures``) it is
    split: ``lost_in_node`` (dropped as stale, rejected, or skipped by ``max_rate`` / ``~/enable``: the
    node's own counters) and ``lost_in_harness``: ``never_reached_node`` (pairs sent that the node
    never formed: lost between the player and the node's pairing, which includes DDS delivery and
    the node's input queue, ``qos_depth``, overflowing while its executor waits for a core) and
    ``masks_not_recorded`` (masks it published that the recorder did not get)."""
    from m4sam_ros.evaluation.metrics import score_pairs

    latencies = [1e3 * (received_at[s] - published_at[s]) for s in received_at if s in published_at]
    scored = [(masks[s], ground_truth[s]) for s in masks if s in ground_truth]
    scores = score_pairs(scored) if scored else {}
    out: dict[str, Any] = {
        "pairs_sent": pairs_sent,
        "masks_received": len(received_at),
        "dropped_pairs": pairs_sent - len(received_at),
        "latency_ms_mean": float(np.mean(latencies)) if latencies else None,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "frames_per_second": len(received_at) / wall_s if wall_s > 0 else 0.0,
        "s_measure": scores.get("S"),
        "mae": scores.get("MAE"),
        "frames_scored": len(scored),
    }
    if node and node.get("pairs_received") is not None and node.get("processed") is not None:
        never_reached = max(0, pairs_sent - node["pairs_received"])
        not_recorded = max(0, node["processed"] - len(received_at))
        out["lost_in_node"] = {k: node.get(k) or 0 for k in ("dropped_stale", "rejected", "skipped_rate_limit",
                                                             "skipped_paused")}
        out["lost_in_harness"] = {"never_reached_node": never_reached, "masks_not_recorded": not_recorded}
        out["node"] = node
    return out


def start_node(checkpoint: Path | None, log_path: Path, extra_params: dict[str, str] | None = None
               ) -> subprocess.Popen:
    """The real ``m4sam_node`` in its own process, remapped onto the RealSense topics."""
    params = {"model_config": "m4sam_demo", "device": "cpu", "qos_reliability": "reliable",
              "publish_points": "false", **(extra_params or {})}
    if checkpoint is not None:
        params["checkpoint"] = str(checkpoint)
    cmd = [sys.executable, "-m", "m4sam_ros.ros.node", "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    cmd += ["-r", f"color/image_raw:={COLOR_TOPIC}", "-r", f"depth/image_raw:={DEPTH_TOPIC}",
            "-r", f"depth/camera_info:={INFO_TOPIC}"]
    # one torch thread: the player/recorder process shares the two cores, and OpenMP threads that
    # spin-wait for a busy core made inference several times slower than one thread
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS=os.environ.get("M4SAM_NODE_THREADS", "1"))
    log = open(log_path, "w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_node(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGINT (a clean shutdown), then SIGKILL if it does not end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def build_parser() -> argparse.ArgumentParser:
    """The `make demo` command line (test/test_cli_help.py reads every flag's help)."""
    p = argparse.ArgumentParser(prog="m4sam-demo", description=__doc__.splitlines()[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--out", default="demo_output", help="folder for the bags, contact sheet and summary")
    p.add_argument("--frames", type=int, default=90, help="frames of the synthetic scene replayed")
    p.add_argument("--seed", type=int, default=90213, help="scene seed (held out from training)")
    p.add_argument("--checkpoint", default=None, help="M4-SAM checkpoint (default: the bundled demo model)")
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                   help="onnxruntime: export the model (m4sam-export) and run the node on ONNX Runtime")
    return p


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - exercised by `make demo`
    args = build_parser().parse_args(argv)
    summary = run_demo(Path(args.out), frames=args.frames, seed=args.seed,
                       checkpoint=Path(args.checkpoint) if args.checkpoint else None, backend=args.backend)
    print(json.dumps(summary, indent=2))
    print(describe(summary))
    return 0 if summary["masks_received"] > 0 else 1


def describe(summary: dict[str, Any]) -> str:
    """One line: masks back of pairs sent, and where the rest went (the node's own drops vs the harness's)."""
    s = summary
    line = (f"{s['masks_received']} of {s['pairs_sent']} pairs came back as masks, {s['frames_per_second']:.1f} "
            f"frames/s, latency p95 {s['latency_ms_p95'] or float('nan'):.0f} ms")
    if "lost_in_node" in s:
        ln, lh = s["lost_in_node"], s["lost_in_harness"]
        line += (f"; the node dropped {ln['dropped_stale']} as stale (newest-only), rejected {ln['rejected']}, "
                 f"skipped {ln['skipped_rate_limit'] + ln['skipped_paused']}; the harness lost "
                 f"{lh['never_reached_node']} before the node and {lh['masks_not_recorded']} after it")
    else:
        line += "; no /diagnostics from the node: the loss cannot be split"
    return line


def run_demo(out: Path, frames: int = 90, seed: int = 90213, checkpoint: Path | None = None,
             width: int = 320, height: int = 240, fps: float = 15.0,
             node_params: dict[str, str] | None = None, backend: str = "torch") -> dict[str, Any]:
    """The whole demo; writes ``out`` (replaced only when the run succeeded) and returns the summary.
    ``node_params``: more ``-p name:=value`` for the node (e.g. ``max_rate``);
    ``backend="onnxruntime"``: the model is exported to ``out/onnx`` and the node runs it there."""
    if backend not in ("torch", "onnxruntime"):
        raise ValueError(f"backend must be torch or onnxruntime, got {backend!r}")
    with building_dir(Path(out)) as stage:
        stage.mkdir()
        return _run_demo_in(stage, frames, seed, checkpoint, width, height, fps, node_params or {}, backend)


def export_demo_model(checkpoint: Path | None, out: Path) -> Path:
    """``m4sam-export`` of ``checkpoint`` (default: the bundled demo model) into ``out``."""
    from m4sam_ros.export.onnx_export import main as export_main
    from m4sam_ros.util.assets import DEMO_MODEL

    if export_main(["--checkpoint", str(checkpoint or DEMO_MODEL), "--out", str(out)]) != 0:
        raise RuntimeError("m4sam-export failed")
    return out


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _io_process(role: str, args: list[str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "m4sam_ros.apps.demo_io", role, *args]
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log, "w"),
                            text=True, start_new_session=True)


def _await_line(proc: subprocess.Popen, expected: str, what: str, log: Path,
                watch: dict[str, tuple[subprocess.Popen, Path]], timeout: float = 300.0) -> None:
    """Blocks until ``proc`` prints ``expected``; a watched process that exits first (the node
    failing to load its model, say) is an error naming its log, at once."""
    import select

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for name, (other, other_log) in watch.items():
            if other.poll() is not None:
                raise RuntimeError(f"the demo's {name} exited (code {other.returncode}) before the {what} was "
                                   f"ready; see {other_log}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == expected:
                return
            if not line:  # EOF: it exited
                proc.wait(5)
                raise RuntimeError(f"the demo's {what} exited (code {proc.returncode}) before it was ready; "
                                   f"see {log}")
    raise RuntimeError(f"the demo's {what} was not ready within {timeout:.0f} s; see {log}")


def _send(proc: subprocess.Popen, line: str) -> None:
    try:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
    except (BrokenPipeError, OSError, AttributeError):
        pass


def _end(proc: subprocess.Popen, timeout: float) -> int | None:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def read_outputs(bag: Path) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Masks and overlays (RGB) by colour stamp, read back from the recorded bag."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from m4sam_ros.msgs.image_codec import image_to_numpy, to_rgb
    from m4sam_ros.ros.compat import stamp_to_ns

    masks: dict[int, np.ndarray] = {}
    overlays: dict[int, np.ndarray] = {}
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        conns = [c for c in reader.connections if c.topic.rsplit("/", 1)[-1] in ("mask", "overlay")]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = stamp_to_ns(msg.header.stamp)
            if conn.topic.endswith("/mask"):
                masks[stamp] = image_to_numpy(msg)
            else:
                overlays[stamp] = to_rgb(image_to_numpy(msg), msg.encoding)
    return masks, overlays


def _run_demo_in(stage: Path, frames: int, seed: int, checkpoint: Path | None, width: int, height: int,
                 fps: float, node_params: dict[str, str], backend: str = "torch") -> dict[str, Any]:
    from m4sam_ros.data.synth import DEPTH_STAMP_OFFSET_NS, frame_stamps_ns, generate_video, write_bag
    from m4sam_ros.msgs.sync import pair_sequence

    load_start = os.getloadavg()
    video = generate_video(seed, frames, width, height, fps, **DEMO_SCENE)
    input_bag = write_bag(video, stage / "input_bag")
    stamps = frame_stamps_ns(video)
    truth = dict(zip(stamps, video.gt, strict=True))
    events = sorted([(0, s, s) for s in stamps] + [(1, s + DEPTH_STAMP_OFFSET_NS, s) for s in stamps],
                    key=lambda e: e[1])
    pairs_sent = len(pair_sequence(events, queue_size=10, slop_s=0.02))

    params = {"diagnostics_period": str(DIAGNOSTICS_PERIOD_S), **node_params}
    if backend == "onnxruntime":
        params |= {"backend": "onnxruntime", "model_dir": str(export_demo_model(checkpoint, stage / "onnx"))}
    node_proc = start_node(checkpoint, stage / "node.log", params)
    player = _io_process("play", ["--bag", str(input_bag), "--out", str(stage / "player.json")], stage / "player.log")
    recorder = _io_process("record", ["--bag", str(stage / "output_bag"), "--out", str(stage / "recorder.json"),
                                      "--expected", str(pairs_sent)], stage / "recorder.log")
    cpu: dict[str, float | None] = {}
    try:
        _await_line(recorder, "ready", "recorder", stage / "recorder.log", {"node": (node_proc, stage / "node.log")})
        _await_line(player, "subscribed", "player", stage / "player.log", {"node": (node_proc, stage / "node.log")})

        def cpu_now() -> dict[str, float | None]:
            return {"node": _cpu_s(node_proc.pid), "recorder": _cpu_s(recorder.pid), "demo": time.process_time()}

        cpu0 = cpu_now()
        _send(player, "go")
        player_code = _end(player, frames / fps * 3 + 60)
        cpu1 = cpu_now()
        cpu = {k: cpu1[k] - v if v is not None and cpu1[k] is not None else None for k, v in cpu0.items()}
        if player_code != 0:
            raise RuntimeError(f"the demo's player failed (exit {player_code}); see {stage / 'player.log'}")
        _send(recorder, "done")
        if _end(recorder, 60) != 0:
            raise RuntimeError(f"the demo's recorder failed; see {stage / 'recorder.log'}")
    finally:
        for p in (player, recorder):
            if p.poll() is None:
                p.kill()
                p.wait()
        code = stop_node(node_proc)
    played = json.loads((stage / "player.json").read_text())
    recorded = json.loads((stage / "recorder.json").read_text())
    published_at = {int(k): v for k, v in played["published_at"].items()}
    received_at = {int(k): v for k, v in recorded["received_at"].items()}
    masks, overlays = read_outputs(stage / "output_bag")
    t_first, t_last = min(published_at.values()), max(published_at.values())
    wall = max(max(received_at.values(), default=t_last), t_last) - t_first
    node = node_figures(recorded["diagnostics"])
    summary = summarize(published_at, received_at, masks, truth, pairs_sent, wall, node)
    late_ms = 1e3 * np.asarray(played["late_s"] or [0.0])
    summary["harness"] = {
        "player_late_ms_p95": float(np.percentile(late_ms, 95)), "player_late_ms_max": float(late_ms.max()),
        "replay_wall_s": played["replay_end"] - played["replay_start"], "player_all_acked": played.get("all_acked"),
        "cpu_s_during_replay": {"player": played["cpu_s"], **cpu}, "recorded": recorded["counts"]}
    summary["load_average"] = {"start": list(load_start), "end": list(os.getloadavg())}
    summary["node_exit_code"] = code
    summary["frames"] = frames
    summary["scene_seed"] = seed
    summary["image_size"] = [width, height]
    summary["fps"] = fps
    summary["checkpoint"] = str(checkpoint) if checkpoint else "bundled demo model"
    summary["backend"] = backend
    _write_media(stage, video, stamps, masks, overlays, fps, width, height)
    (stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _write_media(stage: Path, video: Any, stamps: list[int], masks: dict[int, np.ndarray],
                 overlays: dict[int, np.ndarray], fps: float, width: int, height: int) -> None:
    """``overlay.mp4`` and ``contact_sheet.png`` (colour | depth | mask | overlay, four frames)."""
    import cv2

    from m4sam_ros.model.depth import normalize_depth
    from m4sam_ros.viz.visualize import contact_sheet

    ordered = sorted(s for s in overlays if s in masks)
    if not ordered:
        return
    vw = cv2.VideoWriter(str(stage / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for s in ordered:
        vw.write(np.ascontiguousarray(overlays[s][..., ::-1]))
    vw.release()
    index = {s: i for i, s in enumerate(stamps)}
    picks = [ordered[int(round(k * (len(ordered) - 1) / 3))] for k in range(4)]
    rows = []
    for s in picks:
        i = index[s]
        depth = cv2.applyColorMap((normalize_depth(video.depth[i]) * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
        rows.append([video.rgb[i], depth[..., ::-1], masks[s], overlays[s]])
    cv2.imwrite(str(stage / "contact_sheet.png"), contact_sheet(rows)[..., ::-1])


if __name__ == "__main__":
    sys.exit(main())
