#!/usr/bin/env python3
"""Mutation check: does the test suite notice deliberate bugs?

Each mutant below is one deliberate bug (a regular expression and its replacement in one file)
plus the tests that should catch it. The script copies the repository (tracked and untracked,
non-ignored files) to a temporary folder - the working tree is never touched - runs the union of
the selected tests once on the unmodified copy (they must pass, or nothing below means anything),
then for each mutant writes the bug into the copy, runs that mutant's tests (stopping at the first
failure) and restores the file. A mutant whose tests still pass SURVIVED: the suite does not pin
that behaviour. A mutant whose pattern no longer matches the code exactly once is STALE: edit its
pattern when you change the code it targets, so the list stays in step.

    .venv/bin/python tools/mutation_check.py              # every mutant (minutes; OMP_NUM_THREADS=1)
    .venv/bin/python tools/mutation_check.py --list       # the mutants and whether each still matches
    .venv/bin/python tools/mutation_check.py --only predictor-memory-fp32 --only depth-minmax

Exit status: 0 when every mutant was killed; 1 when one survived, is stale or errored; 2 when the
unmodified copy already fails its tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug: ``pattern`` (a regex that must match ``path`` exactly once) is replaced by
    ``replacement`` (``re.sub`` syntax); ``tests`` are pytest arguments that must then fail."""

    name: str
    path: str
    pattern: str
    replacement: str
    tests: tuple[str, ...]
    why: str
    owner: str


P = "test/test_predictor.py"
H = "test/test_honest_eval.py"
MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- the seven of issue 15's table
    Mutant("predictor-memory-fp32", "m4sam_ros/predictor/memory_bank.py",
           r'out\["maskmem_features"\]\.to\(torch\.bfloat16\)', 'out["maskmem_features"]',
           (f"{P}::test_parity_with_sam2_video_predictor",),
           "frame memories stored in fp32 instead of bf16 (SAM2's video predictor storage)", "MODEL"),
    Mutant("predictor-bound-report", "m4sam_ros/predictor/controls.py",
           r"(def max_state_nbytes\(self\)[^\n]*:\n)", r"\1        return 10**12\n",
           (P, "-k", "bound"), "max_state_nbytes() reports 10**12", "MODEL"),
    Mutant("predictor-no-low-score-reinit", "m4sam_ros/predictor/reinit_policy.py",
           r"object_score < self\.score_threshold", "False",
           (P, "-k", "low_object_score"), "low-object-score re-initialisation removed", "MODEL"),
    Mutant("predictor-keeps-failed-track", "m4sam_ros/predictor/memory_bank.py",
           r"self\.non_cond\.clear\(\)", "pass",
           (P, "-k", "reconditioning or bound"), "re-conditioning keeps the failed track's frames", "MODEL"),
    Mutant("depth-minmax", "m4sam_ros/model/depth.py",
           r"near, far = np\.percentile\(values, \[LOW_PERCENTILE, HIGH_PERCENTILE\]\)",
           "near, far = values.min(), values.max()",
           ("test/test_depth_norm.py",), "metric depth normalised with min/max, not the 1st/99th percentiles",
           "TRAIN"),
    Mutant("depth-relative-minmax", "m4sam_ros/model/depth.py",
           r"low, high = np\.percentile\(values, \[LOW_PERCENTILE, HIGH_PERCENTILE\]\)",
           "low, high = values.min(), values.max()",
           ("test/test_depth_norm.py",), "16-bit benchmark depth stretched between min/max, not percentiles",
           "TRAIN"),
    Mutant("eval-resize-nearest", "m4sam_ros/evaluation/metrics.py",
           r"interpolation=cv2\.INTER_LINEAR", "interpolation=cv2.INTER_NEAREST",
           ("test/test_eval_resize.py",), "predictions resized to the GT with nearest, not bilinear", "TESTS"),
    Mutant("jitter-on-depth", "m4sam_ros/data/clips.py",
           r"depth01 = normalize_depth\(([^)\n]*)\)",
           r"depth01 = np.clip(normalize_depth(\1) * aug.brightness, 0.0, 1.0)",
           ("test/test_augment.py",), "brightness jitter applied to depth too", "TRAIN"),
    # ---------------------------------------------------------------- the other gaps issue 15 names
    Mutant("bag-output-without-pairs", "m4sam_ros/apps/bag.py",
           r"if summary\.processed == 0:", "if False:",
           ("test/test_bag_io.py", "-k", "no_processable_pair"), "a bag with no processable pair still writes output",
           "IO"),
    Mutant("node-no-input-validation", "m4sam_ros/ros/pipeline.py",
           r"problem = compat\.image_problem\(msg, allowed\)", "problem = None",
           ("test/test_node.py", "-k", "fuzz or bad_input"),
           "Image messages no longer validated (step, data length, encoding, size)", "NODE"),
    Mutant("node-no-worker-catch-all", "m4sam_ros/ros/worker.py",
           r"(def _loop\(self\)[\s\S]*?)except BaseException as exc:", r"\1except ZeroDivisionError as exc:",
           ("test/test_worker.py",),
           "the worker thread's catch-all removed (one bad pair ends the worker)", "NODE"),
    Mutant("node-model-error-uncaught", "m4sam_ros/ros/node.py",
           r"(result = predictor\.step\([\s\S]*?)except Exception as exc:", r"\1except ZeroDivisionError as exc:",
           ("test/test_node.py", "-k", "bad_input"),
           "a model error in the node is no longer counted as inference_error", "NODE"),
    Mutant("predictor-import-error", "m4sam_ros/predictor/streaming.py",
           r"(from __future__ import annotations\n)", r"\1import m4sam_ros._mutant_no_such_module  # noqa\n",
           ("test/test_bag.py",), "the predictor cannot be imported (importorskip would hide it)", "IO"),
    # ---------------------------------------------------------------- more on the predictor
    Mutant("predictor-unbounded-history", "m4sam_ros/predictor/memory_bank.py",
           r"while len\(self\.non_cond\) > self\.keep_non_cond:", "while False:",
           (P, "-k", "constant"), "tracked frames never evicted: the state grows forever", "MODEL"),
    Mutant("predictor-one-frame-short", "m4sam_ros/predictor/streaming.py",
           r"self\.sam\.max_obj_ptrs_in_encoder - 1\)", "self.sam.max_obj_ptrs_in_encoder - 2)",
           (P, "-k", "constant"), "keeps 14 tracked frames where SAM2 reads 15 object pointers", "MODEL"),
    Mutant("predictor-cond-uncapped", "m4sam_ros/predictor/memory_bank.py",
           r"while cond and len\(self\.cond\) > self\.max_cond_frames:", "while False:",
           (P, "-k", "bound"), "conditioning frames never dropped", "MODEL"),
    Mutant("predictor-pos-enc-per-frame", "m4sam_ros/predictor/memory_bank.py",
           r'"maskmem_pos_enc": self\.pos_enc,',
           '"maskmem_pos_enc": [x.clone() for x in self.pos_enc],',
           (P, "-k", "constant"), "one positional encoding copy per frame instead of one shared", "MODEL"),
    Mutant("predictor-no-stamp-reset", "m4sam_ros/predictor/streaming.py",
           r"stamp < self\._last_stamp", "False",
           (P, "-k", "backwards"), "a stamp going backwards (looping bag) no longer restarts", "MODEL"),
    Mutant("predictor-no-iou-reinit", "m4sam_ros/predictor/reinit_policy.py",
           r"iou < self\.iou_threshold", "False",
           (P, "-k", "bound"), "memory/coarse disagreement no longer re-initialises", "MODEL"),
    Mutant("predictor-no-scene-cut", "m4sam_ros/predictor/reinit_policy.py",
           r"return float\(np\.mean\(prev \* thumb\)\) < self\.cut_threshold", "return False",
           (P, "-k", "scene_cut"), "scene cuts no longer re-condition", "MODEL"),
    Mutant("predictor-box-min-area", "m4sam_ros/predictor/result.py",
           r"if area < min_area:", "if area < 0:",
           (P, "-k", "boxes"), "boxes below the minimum area kept", "MODEL"),
    # ---------------------------------------------------------------- data and metrics
    Mutant("depth-holes-not-zero", "m4sam_ros/model/depth.py",
           r"out\[valid\] = np\.clip\(nearness\[valid\], 0\.0, 1\.0\)", "out[:] = np.clip(nearness, 0.0, 1.0)",
           ("test/test_depth_norm.py",), "invalid depth pixels get a nearness instead of 0", "TRAIN"),
    Mutant("depth-polarity", "m4sam_ros/model/depth.py",
           r"nearness = 1\.0 - \(", "nearness = 0.0 + (",
           ("test/test_depth_norm.py",), "far pixels map to 1 (farness instead of nearness)", "TRAIN"),
    Mutant("metrics-floor-quantise", "m4sam_ros/evaluation/metrics.py",
           r"np\.round\(np\.clip\(", "np.floor(np.clip(",
           ("test/test_metrics.py",), "maps quantised by truncation, not rounding", "TESTS"),
    Mutant("metrics-beta", "m4sam_ros/evaluation/metrics.py",
           r"BETA2 = 0\.3", "BETA2 = 1.0",
           ("test/test_metrics.py",), "F-measure with beta^2 = 1 instead of 0.3", "TESTS"),
    Mutant("metrics-mean-e", "m4sam_ros/evaluation/metrics.py",
           r'"meanE": float\(e_curve\.mean\(\)\)', '"meanE": float(e_curve.max())',
           ("test/test_metrics.py",), "mean E-measure reports the maximum", "TESTS"),
    # ---------------------------------------------------------------- colour/depth pairing
    Mutant("sync-evicts-newest", "m4sam_ros/msgs/sync.py",
           r"oldest = min\(s for s in my_queue if s != stamp\)", "oldest = max(s for s in my_queue if s != stamp)",
           ("test/test_sync.py", "-k", "real_message_filters or full_queue"),
           "a full queue drops its newest message instead of its oldest", "NODE"),
    Mutant("sync-farthest-first", "m4sam_ros/msgs/sync.py",
           r"sorted\(\(abs\(s - stamp\), s\)", "sorted((-abs(s - stamp), s)",
           ("test/test_sync.py", "-k", "real_message_filters or closest"),
           "partner candidates tried farthest first", "NODE"),
    # ---------------------------------------------------------------- fine-tuning and the output branch
    Mutant("train-init-ignored", "m4sam_ros/training/train.py",
           r"m4sam_checkpoint=None if args\.resume else args\.init\)", "m4sam_checkpoint=None)",
           ("test/test_train.py", "-k", "init_fine"), "--init weights are not loaded (training starts from scratch)",
           "TRAIN"),
    Mutant("output-auto-ignores-checkpoint", "m4sam_ros/predictor/streaming.py",
           r'kwargs\.setdefault\("recommended_output", recommended_output\(m4sam_checkpoint\)\)', "pass",
           ("test/test_model_checkpoint.py", "-k", "recommended"),
           "output auto ignores the checkpoint's recommended branch", "MODEL"),
    # ---- issue 23 (i23)
    Mutant("camera-roi-after-binning", "m4sam_ros/scene/camera.py",
           r"m\[0, 2\] = \(m\[0, 2\] - x_off\) / bx", "m[0, 2] = m[0, 2] / bx - x_off",
           ("test/test_camera_model.py", "-k", "binning and fallback"),
           "the fallback camera model bins the principal point before shifting it by the ROI", "NODE"),
    Mutant("camera-scale-other-axis", "m4sam_ros/scene/camera.py",
           r"\[0\.0, sy, 0\.5 \* sy - 0\.5\]", "[0.0, sy, 0.5 * sx - 0.5]",
           ("test/test_camera_model.py", "-k", "aspect"),
           "camera_info scaled to another aspect ratio: cy takes the x factor's offset (issue 22 item 1)", "NODE"),
    Mutant("camera-ignores-distortion", "m4sam_ros/scene/camera.py",
           r"if self\.identity_rectification:", "if True:",
           ("test/test_camera_model.py", "-k", "distortion"),
           "back-projection ignores D (and R, P): raw pixels taken as rectified", "NODE"),
    Mutant("ids-shift-after-middle-skip", "m4sam_ros/ros/detections3d.py",
           r"det_ids = \[ids\[d\.index\] for d in dets\]", "det_ids = ids[:len(dets)]",
           ("test/test_outputs_3d.py", "-k", "middle"),
           "a middle component without a 3D box shifts the next object's id (issue 22 item 4)", "NODE"),
    Mutant("depth-scale-ignored", "m4sam_ros/ros/pipeline.py",
           r"geometry\.depth_in_metres\(depth, depth_encoding, settings\.depth_scale\)",
           "geometry.depth_in_metres(depth, depth_encoding)",
           ("test/test_outputs_3d.py", "-k", "depth_scale"),
           "depth_scale has no effect on points, boxes or markers (issue 22 item 5)", "NODE"),
    Mutant("boxes-own-unscaled-camera", "m4sam_ros/ros/pipeline.py",
           r"labelled_outputs\(result, depth_m, camera, header",
           "labelled_outputs(result, depth_m, camera and compat.camera_model(camera_info), header",
           ("test/test_outputs_3d.py", "-k", "one_extent"),
           "the boxes parse camera_info on their own (not scaled to the depth image): two sizes", "NODE"),
    Mutant("diag-rate-no-band", "m4sam_ros/ros/diagnostics.py",
           r'self\.bound\["min"\] = self\.bound\["max"\] = expected', 'self.bound["min"] = 0.0',
           ("test/test_diagnostics.py", "-k", "two_namespaced"),
           "the input rate is never compared with the expected rate: a 3 Hz camera reads OK", "NODE"),
    Mutant("diag-name-without-namespace", "m4sam_ros/ros/diagnostics.py",
           r"self\.updater\.node_name = node\.get_fully_qualified_name\(\)", "pass",
           ("test/test_diagnostics.py", "-k", "two_namespaced"),
           "status names drop the namespace: two instances look identical in rqt_robot_monitor", "NODE"),
    Mutant("standin-frequency-no-tolerance", "m4sam_ros/ros/diagnostic_standins.py",
           r'elif freq < bound\["min"\] \* \(1 - tol\):', 'elif freq < bound["min"]:',
           ("test/test_diagnostics.py", "-k", "frequency_status_standin"),
           "the diagnostic_updater stand-in ignores the tolerance (not the real one's numbers)", "NODE"),
    Mutant("compressed-encoded-unsubscribed", "m4sam_ros/ros/node.py",
           r"if bool\(self\.p\(OUTPUTS\[key\]\[2\]\)\) and pub\.get_subscription_count\(\) > 0",
           "if bool(self.p(OUTPUTS[key][2]))",
           ("test/test_compressed_outputs.py", "-k", "node_encodes"),
           "every output is built and encoded with nobody subscribed", "NODE"),
    Mutant("compressed-channels-not-swapped", "m4sam_ros/ros/messages.py",
           r"fmt, data = encode_color\(arr, encoding, codec",
           'fmt, data = encode_color(arr, "bgr8" if encoding == "rgb8" else encoding, codec',
           ("test/test_compressed_outputs.py", "-k", "decode"),
           "rgb8 overlay written into the JPEG without the RGB -> BGR swap", "NODE"),
    Mutant("output-gate-stuck-after-loop", "m4sam_ros/ros/control.py",
           r'if stamp_s < self\._last\.get\(key, float\("-inf"\)\):\n\s*gate\.reset\(\)', "pass",
           ("test/test_compressed_outputs.py", "-k", "gates"),
           "a looping bag (stamps back) silences a rate-limited output", "NODE"),
    # ---- issue 19 (i19)
    Mutant("find-python-accepts-310", "tools/find_python.py",
           r"SUPPORTED = \(\(3, 12\), \(3, 11\)\)", "SUPPORTED = ((3, 12), (3, 11), (3, 10))",
           ("test/test_setup_python.py",), "make setup accepts Python 3.10 (no wheels for the pins)", "I19"),
    Mutant("find-python-not-312-first", "tools/find_python.py",
           r"min\(found, key=lambda f: f\[0\]\)", "found[-1]",
           ("test/test_setup_python.py",), "make setup takes the last interpreter found, not 3.12 first", "I19"),
    Mutant("rosbag-plays-before-active", "launch/rosbag.launch.py",
           r"LaunchDescription\(\[\*args, \*players, resume_when_active, waiter, m4sam\]\)",
           "LaunchDescription([*args, *players, resume, m4sam])",
           ("test/test_launch.py", "-k", "waits_for_the_model"),
           "the paused player is resumed at once, while the model still loads", "I19"),
    Mutant("rviz-missing-not-checked", "launch/m4sam.launch.py",
           r"    if problem:\n        warn\(problem\)\n        return \[\]\n", "",
           ("test/test_launch.py", "-k", "without_rviz2"), "rviz:=true without rviz2 kills the launch", "I19"),
    Mutant("realsense-missing-not-checked", "launch/realsense.launch.py",
           r"if problem is None:", "if True:",
           ("test/test_launch.py", "-k", "without_the_driver"),
           "realsense.launch.py without realsense2_camera fails with a traceback", "I19"),
    Mutant("launch-model-args-ignored", "launch/m4sam.launch.py",
           r"                    overrides\],", "                    {}],",
           ("test/test_launch.py", "-k", "override_the_params_file"),
           "checkpoint/sam2_checkpoint/device/output launch arguments never reach the node", "I19"),
    Mutant("node-help-starts-the-node", "m4sam_ros/ros/node.py",
           r"    build_parser\(\)\.parse_known_args\(remove_ros_args\(sys\.argv if args is None else args\)\[1:\]\)\n",
           "", ("test/test_cli_help.py", "-k", "node_help_starts"),
           "m4sam_node --help starts rclpy and loads the model", "I19"),
    Mutant("cli-help-hides-defaults", "m4sam_ros/util/cli.py",
           r'return text \+ " \(default: %\(default\)s\)"', "return text",
           ("test/test_cli_help.py", "-k", "every_flag"), "flag help does not show the default", "I19"),
    Mutant("cli-device-default-cpu", "m4sam_ros/util/cli.py",
           r'default: str = "auto"\) -> None', 'default: str = "cpu") -> None',
           ("test/test_cli_help.py", "-k", "device_defaults"), "--device defaults to cpu instead of auto", "I19"),
    # ---- issue 21 (i21)
    Mutant("node-change-state-unwalled", "m4sam_ros/ros/node.py",
           r"self\._service_change_state\.callback = self\._on_change_state", "pass",
           ("test/test_node_walls.py",), "ChangeState by an id the state lacks raises in rclpy and ends the node",
           "NODE"),
    Mutant("jpeg-header-no-stray-bytes", "m4sam_ros/msgs/compressed.py",
           r"j = i if i < n and a\[i\] == 0xFF else _find_ff\(a, i\)", "j = i if i < n and a[i] == 0xFF else -1",
           ("test/test_compressed_bombs.py", "-k", "past_what_libjpeg"),
           "the JPEG header parser gives up at a stray byte libjpeg skips", "NODE"),
    Mutant("codec-mismatch-decoded", "m4sam_ros/msgs/compressed.py",
           r"    if found != want:\n", "    if found is None:\n",
           ("test/test_compressed_bombs.py", "-k", "format_string_does_not_name"),
           "data of another codec than the format names goes to the decoder", "NODE"),
    Mutant("colour-size-checked-after-decode", "m4sam_ros/msgs/compressed.py",
           r'    _check_size\(header\.width, header\.height, max_pixels, f"colour \{fmt\.codec\}"\)\n', "",
           ("test/test_compressed_bombs.py", "-k", "rss_bound or past_what_libjpeg"),
           "a colour bomb is decoded before its size is checked (hundreds of MB)", "NODE"),
    Mutant("rvl-trailing-words-accepted", "m4sam_ros/msgs/compressed.py",
           r"    if used <= before_last:\n", "    if False:\n",
           ("test/test_compressed_bombs.py", "-k", "trailing"),
           "RVL words after the image are ignored", "NODE"),
    Mutant("message-byte-limit-off", "m4sam_ros/msgs/compressed.py",
           r"        if size > limit:\n", "        if False:\n",
           ("test/test_compressed_bombs.py", "-k", "bytes_are_limited"), "no limit on a message's bytes", "NODE"),
    Mutant("bag-deserialise-error-fatal", "m4sam_ros/apps/bag.py",
           r"except Exception as exc:  # noqa: BLE001 - rclpy raises RMWError", "except ValueError as exc:  #",
           ("test/test_bag_skips.py", "-k", "truncated"),
           "a message that fails to deserialise ends m4sam-bag", "NODE"),
    Mutant("bag-overwrite-any-folder", "m4sam_ros/apps/bag.py",
           r"    if overwrite < 2 and not is_previous_output\(output\):\n", "    if False:\n",
           ("test/test_bag_skips.py", "-k", "overwrite"),
           "--overwrite deletes a folder that is not a previous output", "NODE"),
    Mutant("focal-magnitude-unchecked", "m4sam_ros/scene/camera.py",
           r"    if not \(FOCAL_RANGE\[0\] <= fx", "    if False and not (FOCAL_RANGE[0] <= fx",
           ("test/test_hostile_inputs.py", "-k", "focal"),
           "a subnormal focal length passes (NaN poses)", "NODE"),
    Mutant("dataset-truncation-unchecked", "m4sam_ros/data/datasets.py",
           r"    cut = _truncation\(data\)\n", "    cut = None\n",
           ("test/test_hostile_inputs.py", "-k", "truncated_dataset"),
           "a truncated dataset image is not named as truncated", "DATA"),
    Mutant("checkpoint-empty-unexplained", "m4sam_ros/model/checkpoint.py",
           r"    if path\.stat\(\)\.st_size == 0:\n", "    if False:\n",
           ("test/test_hostile_inputs.py", "-k", "checkpoints_say"),
           "an empty checkpoint file reports torch's bare error", "MODEL"),
    Mutant("log-strings-unclipped", "m4sam_ros/util/text.py",
           r"    head = repr\(text\[: limit \+ 1\]\)", "    return repr(text)",
           ("test/test_hostile_inputs.py", "-k", "untrusted"),
           "untrusted strings go into log lines whole", "NODE"),
    # ---- issue 22 (i22)
    Mutant("reinit-low-run-not-ended", "m4sam_ros/predictor/reinit_policy.py",
           r"self\.low_score_run \+ 1 if object_score < self\.score_threshold else 0",
           "self.low_score_run + 1 if object_score < self.score_threshold else self.low_score_run",
           ("test/test_reinit_policy.py",), "low scores counted in total, a good frame does not end the run",
           "TESTS"),
    Mutant("reinit-disagree-run-not-ended", "m4sam_ros/predictor/reinit_policy.py",
           r"self\.disagree_run \+ 1 if iou < self\.iou_threshold else 0",
           "self.disagree_run + 1 if iou < self.iou_threshold else self.disagree_run",
           ("test/test_reinit_policy.py",), "disagreeing frames counted in total, an agreeing frame does not end the run",
           "TESTS"),
    Mutant("reinit-threshold-inclusive", "m4sam_ros/predictor/reinit_policy.py",
           r"object_score < self\.score_threshold else", "object_score <= self.score_threshold else",
           ("test/test_reinit_policy.py", "-k", "scattered"), "a score at the threshold counts as low", "TESTS"),
    Mutant("reinit-empty-maps-disagree", "m4sam_ros/predictor/reinit_policy.py",
           r"return 1\.0 if union == 0", "return 0.0 if union == 0",
           ("test/test_reinit_policy.py", "-k", "empty"), "two empty masks count as a disagreement (IoU 0)", "TESTS"),
    Mutant("reinit-logit-as-probability", "m4sam_ros/predictor/reinit_policy.py",
           r"mem = memory_logits > 0  #", "mem = memory_logits > 0.5  #",
           ("test/test_reinit_policy.py", "-k", "empty"), "memory logits thresholded at 0.5 as if probabilities",
           "TESTS"),
    Mutant("reinit-restart-keeps-disagreement", "m4sam_ros/predictor/reinit_policy.py",
           r"self\.low_score_run = self\.disagree_run = 0", "self.low_score_run = 0",
           ("test/test_reinit_policy.py", "-k", "restart"), "a conditioning frame leaves the disagreement run counting",
           "TESTS"),
    Mutant("scene-cut-mean-kept", "m4sam_ros/predictor/reinit_policy.py",
           r"thumb = \(thumb - thumb\.mean\(\)\) / \(thumb\.std\(\) \+ 1e-3\)",
           "thumb = thumb / (thumb.std() + 1e-3)",
           ("test/test_reinit_policy.py", "-k", "scene_cut"), "thumbnails compared without removing their mean",
           "TESTS"),
    Mutant("depth-resize-linear", "m4sam_ros/model/depth.py",
           r"interpolation=cv2\.INTER_NEAREST\)", "interpolation=cv2.INTER_LINEAR)",
           ("test/test_depth_resize.py",), "raw depth resized linearly: holes blend into fake near rims", "TESTS"),
    Mutant("predictor-depth-resize-linear", "m4sam_ros/predictor/result.py",
           r"depth = resize_raw_depth\(depth, h, w\)", "depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR)",
           ("test/test_depth_resize.py", "-k", "predictor"), "the predictor resizes depth of another size linearly",
           "TESTS"),
    Mutant("qos-first-publisher", "m4sam_ros/ros/qos.py",
           r"any\(p\.reliability == ReliabilityPolicy\.BEST_EFFORT for p in profiles\)",
           "profiles[0].reliability == ReliabilityPolicy.BEST_EFFORT",
           ("test/test_qos.py", "-k", "not running_node"), "auto QoS follows the first publisher only", "TESTS"),
    Mutant("qos-all-best-effort", "m4sam_ros/ros/qos.py",
           r"if any\(p\.reliability == ReliabilityPolicy\.BEST_EFFORT", "if all(p.reliability == ReliabilityPolicy.BEST_EFFORT",
           ("test/test_qos.py", "-k", "not running_node"), "auto QoS best-effort only when every publisher is", "TESTS"),
    Mutant("node-qos-not-rechecked", "m4sam_ros/ros/node.py",
           r"if found and choice\.reliability != current\.choice\.reliability:", "if False:",
           ("test/test_qos.py", "-k", "running_node"), "the running node keeps reliable when a best-effort publisher joins",
           "TESTS"),
    Mutant("node-jump-no-reset", "m4sam_ros/ros/node.py",
           r"(self\.stats\.stamp_jumps \+= 1\n\s+)self\.worker\.request_reset\(\)", r"\1pass",
           ("test/test_node.py", "-k", "stamp_jump_in_the_input_path"), "a stamp jump is counted but the tracker goes on",
           "TESTS"),
    Mutant("node-jump-not-counted", "m4sam_ros/ros/node.py",
           r"self\.stats\.stamp_jumps \+= 1", "pass",
           ("test/test_node.py", "-k", "stamp_jump_in_the_input_path"), "stamp_jumps never counted", "TESTS"),
    Mutant("bag-no-stamps", "m4sam_ros/apps/bag.py",
           r"predictor\.step\(rgb, depth, stamp=stamp_ns \* 1e-9\)", "predictor.step(rgb, depth)",
           ("test/test_bag_io.py", "-k", "looping"), "m4sam-bag does not hand the predictor its stamps: a loop is tracked on",
           "TESTS"),
    Mutant("golden-depth-not-normalised", "m4sam_ros/model/preprocess.py",
           r"return normalize_rgb\(depths\.expand\(-1, 3, -1, -1\)\)", "return depths.expand(-1, 3, -1, -1)",
           ("test/test_demo_golden.py",), "depth fed to the trunk without the RGB statistics", "TESTS"),
    Mutant("golden-no-antialias", "m4sam_ros/model/preprocess.py",
           r"antialias=down\)", "antialias=False)",
           ("test/test_demo_golden.py",), "frames shrunk to the model size without antialiasing", "TESTS"),
    Mutant("node-qos-depth-ignored", "m4sam_ros/ros/node.py",
           r'qos_depth=int\(self\.p\("qos_depth"\)\)', "qos_depth=5",
           ("test/test_node.py", "-k", "input_path_parameters"), "qos_depth declared but not passed on", "TESTS"),
    Mutant("node-slop-ignored", "m4sam_ros/ros/node.py",
           r'slop=float\(self\.p\("sync_slop"\)\)', "slop=0.02",
           ("test/test_node.py", "-k", "input_path_parameters"), "sync_slop declared but not passed on", "TESTS"),
    Mutant("node-jump-bound-ignored", "m4sam_ros/ros/node.py",
           r'jump_s=float\(self\.p\("sync_jump_reset"\)\)', "jump_s=1.0",
           ("test/test_node.py", "-k", "input_path_parameters"), "sync_jump_reset declared but not passed on", "TESTS"),
    Mutant("pipeline-max-pixels-exclusive", "m4sam_ros/ros/pipeline.py",
           r"if pixels > max_pixels:", "if pixels >= max_pixels:",
           ("test/test_node.py", "-k", "input_path_parameters"), "an image of exactly max_image_pixels refused", "TESTS"),
    Mutant("predictor-aspect-loose", "m4sam_ros/predictor/result.py",
           r"abs\(dh / dw - h / w\) > 0\.01 \* h / w", "abs(dh / dw - h / w) > 0.1 * h / w",
           ("test/test_depth_resize.py", "-k", "aspect"), "depth 4 % off colour's aspect ratio resized, not refused",
           "TESTS"),
    # ---- issue 20 (i20a)
    Mutant("sam2-rule-skipped", "m4sam_ros/model/build.py",
           r"        check_sam2_weights\(m4sam_checkpoint, ckpt, sam2_checkpoint\)", "        pass",
           (H, "-k", "every_entry_point"),
           "a checkpoint trained on SAM2 weights builds on a random encoder without them", "MODEL"),
    Mutant("sam2-mismatch-silent", "m4sam_ros/model/checkpoint.py",
           r'if given\["sha256"\] != record\["sha256"\]:', "if False:",
           (H, "-k", "another_sam2"), "a SAM2 file with another SHA-256 loads without a warning", "MODEL"),
    Mutant("export-full-trained-only", "m4sam_ros/model/checkpoint.py",
           r"full = full or record is None", "full = record is None",
           (H, "-k", "export_full"), "--export-full writes only the trained parts", "MODEL"),
    Mutant("load-lacking-weights", "m4sam_ros/model/checkpoint.py",
           r"missing = \[k for k in expected if k not in sd\]", "missing = []",
           (H, "-k", "lacking"), "an M4-SAM checkpoint lacking a trained weight loads (issue 22 item 3)",
           "MODEL"),
    Mutant("paper-clips-drop-remainder", "m4sam_ros/evaluation/evaluate.py",
           r"for i in range\(0, len\(annotated\), clip_len\)\]",
           "for i in range(0, len(annotated) - clip_len + 1, clip_len)]",
           (H, "-k", "paper_clips or paper_schedule"), "the paper protocol drops the remainder clip", "EVAL"),
    Mutant("paper-clips-sliding", "m4sam_ros/evaluation/evaluate.py",
           r"for i in range\(0, len\(annotated\), clip_len\)\]",
           "for i in range(0, max(len(annotated) - clip_len + 1, 1))]",
           (H, "-k", "paper_clips"), "the paper protocol cuts sliding windows, not non-overlapping clips", "EVAL"),
    Mutant("clip-start-binary-prompt", "m4sam_ros/predictor/streaming.py",
           r'\(condition and self\.condition_output == "coarse"\)', "(False)",
           (H, "-k", "clip_starts or forced_no_object"),
           "a clip start is scored as the binarised prompt, not the soft coarse map", "EVAL"),
    Mutant("no-object-blank", "m4sam_ros/predictor/streaming.py",
           r"or \(blanked and self\.no_object_fallback and", "or (False and",
           (H, "-k", "forced_no_object"), "a no-object frame stays all black under a confident coarse map",
           "EVAL"),
    Mutant("eval-blanked-share", "m4sam_ros/evaluation/evaluate.py",
           r'"blanked_frames": hit - fell', '"blanked_frames": hit',
           (H, "-k", "clip_starts"), "eval counts fallen-back frames as blank", "EVAL"),
    Mutant("eval-no-minmax", "m4sam_ros/evaluation/evaluate.py",
           r'minmax=args\.protocol == "paper", model_dir', "minmax=False, model_dir",
           (H, "-k", "min_max"), "the paper protocol scores maps without the authors' per-frame min-max", "EVAL"),
    Mutant("node-fallback-param-ignored", "m4sam_ros/ros/params.py",
           r'"no_object_fallback": "no_object_fallback",\n', "",
           ("test/test_node.py", "-k", "no_object_frames"), "the node's no_object_fallback parameter never reaches "
           "the predictor", "ROS"),
    Mutant("diag-blanked-share", "m4sam_ros/ros/diagnostics.py",
           r'"blanked_share": st\.blanked / st\.processed', '"blanked_share": st.no_object / st.processed',
           (H, "-k", "diagnostics"), "the node's diagnostics report gate hits as blanked frames", "ROS"),
    # ---- issue 20 (i20b)
    Mutant("clips-sliding-by-default", "m4sam_ros/data/clips.py",
           r'frames: str = "auto", sampling: str = "chunks"\)', 'frames: str = "auto", sampling: str = "sliding")',
           ("test/test_data.py", "-k", "authors_clips_per_video"),
           "training clips are every sliding window (~4x the authors' steps per epoch)", "TRAIN"),
    Mutant("clips-remainder-dropped", "m4sam_ros/data/clips.py",
           r"return list\(range\(0, n, clip_len\)\)", "return list(range(0, n - clip_len + 1, clip_len))",
           ("test/test_data.py", "-k", "authors_clips_per_video"),
           "the last, shorter chunk of a video is dropped instead of padded (their clipper keeps it)", "TRAIN"),
    Mutant("aug-reflect-border", "m4sam_ros/data/clips.py",
           r"borderMode=cv2\.BORDER_CONSTANT, borderValue=0", "borderMode=cv2.BORDER_REFLECT101",
           ("test/test_augment.py", "-k", "corners"), "rotation mirrors objects into the corners", "TRAIN"),
    Mutant("aug-rotation-p08", "m4sam_ros/data/clips.py",
           r"rng\.random\(\) > 1\.0 - ROTATION_PROB", "rng.random() > ROTATION_PROB",
           ("test/test_augment.py", "-k", "rotation_probability"), "clips rotate with probability 0.8, not 0.2",
           "TRAIN"),
    Mutant("aug-crop-corner", "m4sam_ros/data/clips.py",
           r"x0, y0 = \(w - cw\) // 2, \(h - ch\) // 2", "x0, y0 = 0, 0",
           ("test/test_augment.py", "-k", "crop_is_centred"), "the crop window sits at the corner, not centred",
           "TRAIN"),
    Mutant("aug-contrast-rgb-mean", "m4sam_ros/data/clips.py",
           r"mean = float\(\(out @ LUMA\)\.mean\(\)\)", "mean = float(out.mean())",
           ("test/test_augment.py", "-k", "pil"), "contrast about the RGB mean, not PIL's luma mean", "TRAIN"),
    Mutant("aug-no-sharpness", "m4sam_ros/data/clips.py",
           r"if self\.sharpness != 1\.0 and", "if False and",
           ("test/test_augment.py", "-k", "pil"), "the sharpness enhancement is never applied", "TRAIN"),
    Mutant("loss-plain-bce", "m4sam_ros/training/losses.py",
           r"wbce = \(weit \* bce\)\.sum\(dim=\(2, 3\)\) / weit\.sum\(dim=\(2, 3\)\)", "wbce = bce.mean(dim=(2, 3))",
           ("test/test_losses.py", "-k", "boundary_errors"),
           "issue 22.2: the structure loss's BCE ignores its boundary weights (the authors' bug)", "TRAIN"),
    Mutant("loss-side-weights-half", "m4sam_ros/training/losses.py",
           r"SIDE_WEIGHTS = \(0\.6, 0\.8\)", "SIDE_WEIGHTS = (0.5, 0.5)",
           ("test/test_losses.py", "-k", "composition"), "side outputs weighted 0.5/0.5, not the authors' 0.6/0.8",
           "TRAIN"),
    Mutant("loss-no-mae", "m4sam_ros/training/losses.py",
           r"MAE_WEIGHT = 0\.3", "MAE_WEIGHT = 0.0",
           ("test/test_losses.py", "-k", "composition"), "the MAE term of the structure loss is gone", "TRAIN"),
    Mutant("loss-memory-no-focal", "m4sam_ros/training/losses.py",
           r'"focal": 0\.8', '"focal": 0.0',
           ("test/test_losses.py", "-k", "composition"), "the memory loss drops the authors' focal term", "TRAIN"),
    Mutant("loss-sobel-zero-pad", "m4sam_ros/training/losses.py",
           r'mode="replicate"\)', 'mode="constant")',
           ("test/test_losses.py", "-k", "sobel"), "Sobel edge target draws edges along the image border", "TRAIN"),
    Mutant("loss-edge-no-ramp", "m4sam_ros/training/losses.py",
           r"EDGE_RAMP = \(0\.2, 0\.8\)", "EDGE_RAMP = (1.0, 1.0)",
           ("test/test_losses.py", "-k", "ramp"), "the edge weight starts at 1 instead of ramping from 0.2", "TRAIN"),
    Mutant("loss-object-frame0-never", "m4sam_ros/training/losses.py",
           r'if outputs\.get\("object_score_from_prompt", True\):', "if True:",
           ("test/test_losses.py", "-k", "every_frame"),
           "the object score of frame 0 is never supervised, even when the decoder predicts it", "TRAIN"),
    Mutant("loss-object-weight-old", "m4sam_ros/training/losses.py",
           r"OBJECT_WEIGHT = 1\.0", "OBJECT_WEIGHT = 0.1",
           ("test/test_recipe.py", "-k", "weight_moves"), "the object score at the old weight 0.1 barely moves",
           "TRAIN"),
    Mutant("model-edge-heads-silent", "m4sam_ros/model/gmlff.py",
           r"if self\.edge is not None and edges is not None:", "if False:",
           ("test/test_recipe.py", "-k", "edge_heads"), "the edge heads never produce their maps", "MODEL"),
    Mutant("model-gmlff-bridge-unused", "m4sam_ros/model/m4sam.py",
           r"fpn\[0\] = fpn\[0\] \+ self\.gmlff_to_decoder\[0\]\(g\)", "fpn[0] = fpn[0]",
           ("test/test_recipe.py", "-k", "gmlff_to_decoder"),
           "gmlff.to_decoder on, but the decoder never sees GMLFF at stride 4", "MODEL"),
    Mutant("train-object-group-missing", "m4sam_ros/training/build.py",
           r"    groups = _object_score_group\(model, groups, getattr\(args, \"lr_object\", None\), args\.lr_heads\)\n",
           "", ("test/test_recipe.py", "-k", "own_group"),
           "SAM2's object-score head stays in the 1e-5 memory group", "TRAIN"),
    Mutant("train-no-epoch-checkpoints", "m4sam_ros/training/train.py",
           r"if sess\.step % sess\.per_epoch == 0:", "if False:",
           ("test/test_recipe.py", "-k", "per_epoch"), "no checkpoint is kept per epoch", "TRAIN"),
    Mutant("eval-epochs-no-selection-warning", "m4sam_ros/evaluation/epochs.py",
           r'if split == "test":', 'if split == "val":',
           ("test/test_recipe.py", "-k", "per_epoch"),
           "choosing the best epoch on the test split is not called test-set selection", "TRAIN"),
    Mutant("gpu-run-always-beats", "m4sam_ros/apps/gpu_run.py",
           r'summary\["beats_bundled"\] = new\["mean_S"\]\[best\] > ref', 'summary["beats_bundled"] = True',
           ("test/test_recipe.py", "-k", "gpu_run"), "the GPU run claims the new model beats the bundled one",
           "TRAIN"),
    # ---- issue 25 (i25): ONNX export and the ONNX Runtime backend
    Mutant("onnx-rope-sign", "m4sam_ros/export/graphs.py",
           r"re \* sin \+ im \* cos", "re * sin - im * cos",
           ("test/test_onnx_runtime.py::test_rotary_encoding_equals_sam2_complex_one",),
           "the real-valued rotary encoding is not SAM2's complex rotation", "DEPLOY"),
    Mutant("onnx-slot-mask-ignored", "m4sam_ros/export/graphs.py",
           r"if bias is not None:\n", "if False:\n",
           ("test/test_onnx_runtime.py", "-k", "parity"),
           "empty memory slots are attended to (the validity mask is dropped)", "DEPLOY"),
    Mutant("slot-bank-tpos", "m4sam_ros/predictor/slot_bank.py",
           r"mem_tpos\[i\] = num_maskmem - t_pos - 1", "mem_tpos[i] = t_pos",
           ("test/test_onnx_runtime.py", "-k", "parity"),
           "memories get the wrong temporal encoding (index not reversed as SAM2 does)", "DEPLOY"),
    Mutant("slot-bank-keeps-one-more", "m4sam_ros/predictor/slot_bank.py",
           r"while len\(self\.non_cond\) > self\.keep_non_cond:", "while len(self.non_cond) > self.keep_non_cond + 1:",
           ("test/test_onnx_runtime.py", "-k", "parity"),
           "the ONNX backend keeps one tracked frame more than the PyTorch bank", "DEPLOY"),
    Mutant("preprocess-np-no-antialias", "m4sam_ros/model/preprocess_np.py",
           r"antialias=down\)", "antialias=False)",
           ("test/test_onnx_runtime.py", "-k", "parity"),
           "numpy preprocessing shrinks without PyTorch's antialiasing", "DEPLOY"),
    Mutant("ort-imports-torch", "m4sam_ros/predictor/slot_bank.py",
           r"\nimport numpy as np\n", r"\nimport numpy as np\nimport torch  # noqa: F401\n",
           ("test/test_onnx_runtime.py", "-k", "torch_cannot"),
           "the ONNX Runtime path imports torch", "DEPLOY"),
    Mutant("node-backend-ignored", "m4sam_ros/ros/model_loader.py",
           r'if str\(p\("backend"\)\) == "onnxruntime":', "if False:",
           ("test/test_demo.py", "-k", "onnxruntime"),
           "the node ignores backend:=onnxruntime and runs PyTorch", "DEPLOY"),
    Mutant("eval-model-dir-ignored", "m4sam_ros/evaluation/evaluate.py",
           r"model_dir=args\.model_dir\)", "model_dir=None)",
           ("test/test_eval.py", "-k", "onnxruntime"),
           "m4sam-eval --model-dir is not run by ONNX Runtime", "DEPLOY"),
    Mutant("bench-ratio-inverted", "m4sam_ros/benchmarks/onnx_bench.py",
           r'round\(out\[f"ort_rgbd_ms_t\{t\}"\] / out\[f"torch_rgbd_ms_t\{t\}"\], 3\)',
           'round(out[f"torch_rgbd_ms_t{t}"] / out[f"ort_rgbd_ms_t{t}"], 3)',
           ("test/test_bench.py", "-k", "onnxruntime"),
           "m4sam-bench prints PyTorch / ORT as the ORT / PyTorch ratio", "DEPLOY"),
    # ---- issue 24 (i24)
    Mutant("demo-player-relative-schedule", "m4sam_ros/apps/demo_io.py",
           r"due = start_wall \+ \(logtime - start_bag\) \* 1e-9 / rate",
           "due, start_wall, start_bag = start_wall + (logtime - start_bag) * 1e-9 / rate, max(start_wall, clock()), "
           "logtime",
           ("test/test_demo_io.py", "-k", "absolute_schedule"),
           "the player sleeps each gap from the previous message: one late message shifts all after it", "NODE"),
    Mutant("demo-harness-loss-blamed-on-node", "m4sam_ros/apps/demo.py",
           r'never_reached = max\(0, pairs_sent - node\["pairs_received"\]\)', "never_reached = 0",
           ("test/test_demo_io.py", "-k", "splits_the_loss"),
           "pairs the node never received are not counted as the harness's loss", "NODE"),
    Mutant("stage-clock-cpu-is-wall", "m4sam_ros/ros/diagnostics.py",
           r"t, c = time\.perf_counter\(\), time\.thread_time\(\)", "t, c = time.perf_counter(), time.perf_counter()",
           ("test/test_demo_io.py", "-k", "cpu_from_waiting"),
           "the node's per-stage CPU time is wall time (waiting for a core looks like work)", "NODE"),
    Mutant("node-mask-not-first", "m4sam_ros/ros/node.py",
           r'if "mask" in wanted:  # first', "if False:  # first",
           ("test/test_demo_io.py", "-k", "end_to_end"),
           "~/mask waits for the overlay and 3D outputs (no pair -> mask timing)", "NODE"),
    Mutant("demo-bench-overhead-counts-queue", "m4sam_ros/benchmarks/demo_bench.py",
           r'MASK_PATH = \("decode", "inference", "mask"\)', 'MASK_PATH = ("queue", "decode", "inference", "mask")',
           ("test/test_demo_io.py", "-k", "bench_overhead"),
           "the node's overhead over the bare step counts the wait for the worker as work", "NODE"),
    # ------------------------------------------------ issue 22: node parameters at non-default values
    Mutant("node-publish-switch-ignored", "m4sam_ros/ros/node.py",
           r"if bool\(self\.p\(OUTPUTS\[key\]\[2\]\)\) and", "if True and",
           ("test/test_node_params.py", "-k", "publish_switch"),
           "publish_* false still publishes its topic", "NODE"),
    Mutant("node-overlay-alpha-default", "m4sam_ros/ros/node.py",
           r'overlay_alpha=float\(self\.p\("overlay_alpha"\)\)', "overlay_alpha=0.45",
           ("test/test_node_params.py", "-k", "output_settings"),
           "overlay_alpha never reaches the overlay", "NODE"),
    Mutant("node-marker-lifetime-default", "m4sam_ros/ros/node.py",
           r'marker_lifetime=float\(self\.p\("marker_lifetime"\)\)', "marker_lifetime=0.5",
           ("test/test_node_params.py", "-k", "output_settings"),
           "marker_lifetime never reaches the markers", "NODE"),
    Mutant("node-png-level-default", "m4sam_ros/ros/node.py",
           r'mask_png_level=int\(self\.p\("mask_png_level"\)\)', "mask_png_level=3",
           ("test/test_node_params.py", "-k", "output_settings"),
           "mask_png_level never reaches ~/mask/compressed", "NODE"),
    Mutant("node-min-points-default", "m4sam_ros/ros/node.py",
           r'marker_min_points=int\(self\.p\("marker_min_points"\)\)', "marker_min_points=20",
           ("test/test_node_params.py", "-k", "output_settings"),
           "marker_min_points never reaches the 3D boxes", "NODE"),
    Mutant("node-sync-queue-default", "m4sam_ros/ros/node.py",
           r'queue_size=int\(self\.p\("sync_queue_size"\)\)', "queue_size=10",
           ("test/test_node_params.py", "-k", "sync_queue_size"),
           "sync_queue_size never reaches the synchroniser", "NODE"),
    Mutant("node-camera-info-always", "m4sam_ros/ros/inputs.py",
           r"        if use_camera_info:\n", "        if True:\n",
           ("test/test_node_params.py", "-k", "without_camera_info"),
           "use_camera_info false still subscribes to depth/camera_info", "NODE"),
    Mutant("diag-frame-age-min-fixed", "m4sam_ros/ros/diagnostics.py",
           r'self\.age_params\.min_acceptable = float\(self\.p\("frame_age_min"\)\)',
           "self.age_params.min_acceptable = -1.0",
           ("test/test_diagnostics.py", "-k", "two_namespaced"),
           "frame_age_min set at run time never reaches the frame age check", "NODE"),
    Mutant("export-qkv-scatter", "m4sam_ros/model/moe_lora.py",
           r"if torch\.onnx\.is_in_onnx_export\(\):", "if False:",
           ("test/test_onnx_runtime.py", "-k", "blow_up"),
           "the qkv adapters' in-place slice add exported as ScatterND (ORT folds its index tensors: 1.7 GB)",
           "EXPORT"),
    Mutant("spin-dies-of-the-destroy-race", "m4sam_ros/ros/spin.py",
           r'            on_error\("executor", exc\)', "            raise",
           ("test/test_spin.py",),
           "an exception out of rclpy's wait-set building ends the spin loop (node silenced)", "NODE"),
    Mutant("wait-active-any-state", "m4sam_ros/ros/wait_active.py",
           r'if last == "active":', "if last:",
           ("test/test_wait_active.py",),
           "the bag player is resumed on any lifecycle state (frames lost to model loading)", "NODE"),
    Mutant("node-stop-swallowed-by-model-code", "m4sam_ros/ros/node.py",
           r"if STOP_SIGNAL:  # a signal's _Stop", "if False:  # a signal's _Stop",
           ("test/test_node_process.py", "-k", "swallowed"),
           "SIGTERM during model loading, swallowed by the model code, ends as 'configure failed' + exit 1",
           "NODE"),
    # ---- issue 22, second audit (a22b): bugs written from reading the code, survivors of the suite
    # as it was; each is killed by the test named (docs/TESTING.md, 'The second audit')
    Mutant('ds-depth-first-channel-not-taken', 'm4sam_ros/data/datasets.py',
           '        if depth\\.ndim == 3:\\n            depth = depth\\[\\.\\.\\., 0\\]',
           '        if False:\n            depth = depth[..., 0]',
           ('test/test_data.py', '-k', 'saved_as_colour'),
           'a 3-channel depth image passed on as HxWx3', 'TRAIN'),
    Mutant('ds-orphans-ok', 'm4sam_ros/data/datasets.py',
           '        if orphans:',
           '        if False:',
           ('test/test_data.py', '-k', 'saved_as_colour'),
           'a depth/ground-truth file without a colour frame ignored', 'TRAIN'),
    Mutant('ds-truncated-jpeg-ok', 'm4sam_ros/data/datasets.py',
           '    if data\\[:3\\] == b"\\\\xff\\\\xd8\\\\xff" and b"\\\\xff\\\\xd9" not in data\\[-64:\\]:',
           '    if False:',
           ('test/test_data.py', '-k', 'truncated'),
           'a truncated JPEG half-decoded (grey) instead of refused', 'TRAIN'),
    Mutant('ds-gt-size-unchecked', 'm4sam_ros/data/datasets.py',
           '            if gt\\.shape\\[:2\\] != bgr\\.shape\\[:2\\]:',
           '            if False:',
           ('test/test_data.py', '-k', 'saved_as_colour'),
           'a ground truth of another size accepted', 'TRAIN'),

    Mutant('atomic-dir-old-not-restored', 'm4sam_ros/util/atomic.py',
           '            if old is not None:\\n                os\\.replace\\(old, final\\)\\n',
           '',
           ('test/test_atomic.py',),
           'a folder replacement that fails at the rename deletes the previous output', 'MODEL'),
    Mutant('pr-combined-product', 'm4sam_ros/predictor/streaming.py',
           '"combined": \\(memory \\+ coarse\\) / 2',
           '"combined": memory * coarse',
           ('test/test_predictor.py', '-k', 'each_output_branch'),
           'output combined = memory x coarse, not their mean', 'MODEL'),
    Mutant('trk-missed-not-reset', 'm4sam_ros/scene/tracking.py',
           'Track\\(tid, b, 0, t\\.age \\+ 1\\)',
           'Track(tid, b, t.missed, t.age + 1)',
           ('test/test_tracking.py', '-k', 'comes_back'),
           'a track matched again keeps its misses (a second brief occlusion ends it)', 'NODE'),
    Mutant('b3d-4-connected', 'm4sam_ros/scene/boxes3d.py',
           'connectivity=8',
           'connectivity=4',
           ('test/test_boxes3d.py', '-k', 'diagonal'),
           "3D box components labelled 4-connected (no label has the predictor's 8-connected box)", 'NODE'),
    Mutant('b3d-centre-median', 'm4sam_ros/scene/boxes3d.py',
           'centre = \\(lo \\+ hi\\) / 2',
           'centre = np.median(kept, axis=0)',
           ('test/test_boxes3d.py', '-k', 'antenna'),
           "3D box centre at the points' median, not the middle of its extent", 'NODE'),
    Mutant('b3d-minmax-not-pct', 'm4sam_ros/scene/boxes3d.py',
           'lo = np\\.percentile\\(kept, low, axis=0\\)',
           'lo = kept.min(axis=0)',
           ('test/test_boxes3d.py', '-k', 'antenna'),
           '3D box lower extent at the minimum (a thin antenna stretches it)', 'NODE'),
    Mutant('b3d-hi-max-not-pct', 'm4sam_ros/scene/boxes3d.py',
           'hi = np\\.percentile\\(kept, high, axis=0\\)',
           'hi = kept.max(axis=0)',
           ('test/test_boxes3d.py', '-k', 'antenna'),
           '3D box upper extent at the maximum', 'NODE'),
    Mutant('b3d-minpoints-le', 'm4sam_ros/scene/boxes3d.py',
           'if len\\(pts\\) < min_points:',
           'if len(pts) <= min_points:',
           ('test/test_boxes3d.py', '-k', 'min_points_is'),
           'a component with exactly min_points valid pixels gets no box', 'NODE'),
    Mutant('b3d-fallback-whole-mask', 'm4sam_ros/scene/boxes3d.py',
           'out\\.append\\(region & \\(binary > 0\\)\\)',
           'out.append(binary > 0)',
           ('test/test_boxes3d.py', '-k', 'from_elsewhere'),
           'a box from elsewhere takes the whole mask, not the mask inside it', 'NODE'),
    Mutant('sync-newest-goes-back', 'm4sam_ros/msgs/sync.py',
           'stamp_ns if prev is None else max\\(prev, stamp_ns\\)',
           'stamp_ns',
           ('test/test_sync.py', '-k', 'jump_detector'),
           "a jump measured from the last stamp, not the stream's newest", 'NODE'),
    Mutant('sync-slop-inclusive', 'm4sam_ros/msgs/sync.py',
           'max\\(stamps\\) - min\\(stamps\\) < self\\.slop_ns or',
           'max(stamps) - min(stamps) <= self.slop_ns or',
           ('test/test_sync.py', '-k', 'exclusive'),
           'pairs a spread of exactly slop (message_filters: below)', 'NODE'),
    Mutant('sync-no-drop-stale', 'm4sam_ros/msgs/sync.py',
           '            drop_stale\\(self\\.queues, stamp, self\\.jumps\\)\\n',
           '            pass\n',
           ('test/test_sync.py', '-k', 'loop_drops'),
           'a backwards jump keeps the old epoch queued (a lagging stream never pairs)', 'NODE'),
    Mutant('sync-reset-keeps-stamps', 'm4sam_ros/msgs/sync.py',
           '                self\\.jumps\\.newest = \\[None\\] \\* len\\(self\\.queues\\)',
           '                pass',
           ('test/test_sync.py', '-k', 'reset_forgets'),
           'reset() keeps the newest stamps (a fresh start reported as a jump)', 'NODE'),
    Mutant('res-boxes-unsorted', 'm4sam_ros/predictor/result.py',
           'sorted\\(boxes, key=lambda ab: -ab\\[0\\]\\)',
           'boxes',
           ('test/test_predictor.py', '-k', 'boxes_from_known'),
           'boxes in scan order, not largest first', 'MODEL'),
    Mutant('res-box-score-max', 'm4sam_ros/predictor/result.py',
           'saliency\\[labels == i\\]\\.mean\\(\\)',
           'saliency[labels == i].max()',
           ('test/test_predictor.py', '-k', 'boxes_from_known'),
           'box score = peak saliency, not the mean', 'MODEL'),
    Mutant('res-4-connected', 'm4sam_ros/predictor/result.py',
           'stats, _ = cv2\\.connectedComponentsWithStats\\(binary, connectivity=8\\)',
           'stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=4)',
           ('test/test_predictor.py', '-k', 'boxes_from_known'),
           'boxes of 4-connected regions (a diagonal tail is a region of its own)', 'MODEL'),
    Mutant('res-minarea-fraction', 'm4sam_ros/predictor/result.py',
           'int\\(min_box_area \\* h \\* w\\)',
           'int(min_box_area * h)',
           ('test/test_predictor.py', '-k', 'strict'),
           'min_box_area below 1 taken as a fraction of one side', 'MODEL'),
    Mutant('res-mask-ge', 'm4sam_ros/predictor/result.py',
           'sal > mask_threshold',
           'sal >= mask_threshold',
           ('test/test_predictor.py', '-k', 'strict'),
           'mask = saliency >= threshold (a flat 0.5 map all foreground)', 'MODEL'),
    Mutant('det-label-below', 'm4sam_ros/ros/detections3d.py',
           'd\\.center\\[1\\] - d\\.size\\[1\\] / 2 - 0\\.05',
           'd.center[1] + d.size[1] / 2 + 0.05',
           ('test/test_outputs_3d.py', '-k', 'middle_component'),
           'the id label drawn under the cube (optical +y is down)', 'NODE'),
    Mutant('det-3d-score-dropped', 'm4sam_ros/ros/detections3d.py',
           'det\\.results\\.append\\(_hypothesis\\(d\\.score, _pose\\(d\\.center\\)\\)\\)',
           'det.results.append(_hypothesis(1.0, _pose(d.center)))',
           ('test/test_outputs_3d.py', '-k', 'middle_component'),
           "Detection3D results carry score 1, not the component's", 'NODE'),
    Mutant('pl-float-depth-neg-valid', 'm4sam_ros/ros/pipeline.py',
           '\\(np\\.isfinite\\(d\\) & \\(d > 0\\)\\)',
           'np.isfinite(d)',
           ('test/test_node.py', '-k', 'each_bad_input'),
           '32FC1 negatives and zeros count as valid depth', 'NODE'),
    Mutant('tr-guess-triggers-resubscribe', 'm4sam_ros/ros/transport.py',
           'new\\[s\\]\\.found and ',
           '',
           ('test/test_node_issue12.py', '-k', 'vanished'),
           'a vanished publisher moves the subscription onto a guess', 'NODE'),
    Mutant('loss-window-small', 'm4sam_ros/training/losses.py',
           'int\\(round\\(31 \\* size / 352\\)\\)',
           'int(round(11 * size / 352))',
           ('test/test_losses.py', '-k', 'boundary_window'),
           "structure-loss window 11 px at 352 (the authors': 31)", 'TRAIN'),
    Mutant('loss-window-unscaled', 'm4sam_ros/training/losses.py',
           'k = max\\(3, int\\(round\\(31 \\* size / 352\\)\\) \\| 1\\)',
           'k = 31',
           ('test/test_losses.py', '-k', 'boundary_window'),
           'structure-loss window 31 px at every size', 'TRAIN'),
    Mutant('loss-edge-window-fixed', 'm4sam_ros/training/losses.py',
           'k = max\\(3, int\\(round\\(3 \\* size / 352\\)\\) \\| 1\\)',
           'k = 3',
           ('test/test_losses.py', '-k', 'edge_band'),
           'edge-loss window 3 px at every size', 'TRAIN'),
    Mutant('dn-8bit-scale-65535', 'm4sam_ros/model/depth.py',
           'scale = float\\(np\\.iinfo\\(depth\\.dtype\\)\\.max\\) if np\\.issubdtype',
           'scale = 65535.0 if np.issubdtype',
           ('test/test_depth_norm.py', '-k', 'relative_maps'),
           '8-bit benchmark depth divided by 65535', 'TRAIN'),
    Mutant('dn-flat-frame-zero', 'm4sam_ros/model/depth.py',
           '        out\\[valid\\] = 0\\.5\\n',
           '        out[valid] = 0.0\n',
           ('test/test_depth_norm.py', '-k', 'relative_maps'),
           "a flat 16-bit frame all 'far'", 'TRAIN'),
    Mutant('dn-relative-inverted', 'm4sam_ros/model/depth.py',
           '\\(depth\\[valid\\]\\.astype\\(np\\.float32\\) - low\\) / \\(high - low\\)',
           '(high - depth[valid].astype(np.float32)) / (high - low)',
           ('test/test_depth_norm.py', '-k', 'relative_maps'),
           '16-bit benchmark depth inverted like metric depth', 'TRAIN'),
    Mutant('dn-float-rel-not-clipped', 'm4sam_ros/model/depth.py',
           '        return np\\.clip\\(out, 0\\.0, 1\\.0\\)\\.astype\\(np\\.float32\\)',
           '        return out.astype(np.float32)',
           ('test/test_depth_norm.py', '-k', 'relative_maps'),
           'float benchmark depth outside [0, 1] kept', 'TRAIN'),
    Mutant('cp-png-8bit-depth-ok', 'm4sam_ros/msgs/compressed.py',
           'if header\\.bits != 16 or header\\.channels != 1:',
           'if header.channels != 1:',
           ('test/test_compressed.py', '-k', '16_bit_mono'),
           'an 8-bit compressedDepth PNG decoded before it is refused', 'NODE'),
    Mutant('par-image-size-any', 'm4sam_ros/ros/params.py',
           'if name == \\"image_size\\" and value and value % 32:',
           'if name == "image_size" and value and value % 2:',
           ('test/test_node.py', '-k', 'integers_coerced'),
           'image_size accepted at any even value', 'NODE'),
    Mutant('par-int-not-coerced', 'm4sam_ros/ros/params.py',
           'if spec is not None and isinstance\\(spec\\.default, float\\) and prm\\.type_ == Parameter\\.Type\\.INTEGER:',  # noqa: E501
           'if False:',
           ('test/test_node.py', '-k', 'integers_coerced'),
           '-p max_depth:=5 (an integer) kills the node at start', 'NODE'),
    Mutant('ck-fingerprint-cache-by-path', 'm4sam_ros/model/checkpoint.py',
           'key = \\(str\\(p\\.resolve\\(\\)\\), st\\.st_size, st\\.st_mtime_ns\\)',
           'key = str(p.resolve())',
           ('test/test_model_checkpoint.py', '-k', 'replaced'),
           'a SAM2 file replaced in place keeps its old hash', 'MODEL'),
    Mutant('ck-compare-names', 'm4sam_ros/model/checkpoint.py',
           'if given\\["sha256"\\] != record\\["sha256"\\]:',
           'if given["name"] != record["name"]:',
           ('test/test_model_checkpoint.py', '-k', 'replaced'),
           'SAM2 weights compared by file name, not content', 'MODEL'),
    Mutant('ck-recommended-unchecked', 'm4sam_ros/model/checkpoint.py',
           'return value if value in OUTPUT_BRANCHES else "memory"',
           'return value',
           ('test/test_model_checkpoint.py', '-k', 'unknown_recommended'),
           'an unknown recommended branch passed on', 'MODEL'),
    Mutant('ck-unexpected-ignored', 'm4sam_ros/model/checkpoint.py',
           '    unexpected = \\[k for k in sd if k not in expected\\]',
           '    unexpected = []',
           ('test/test_honest_eval.py', '-k', 'carrying_frozen'),
           "a trained-parts checkpoint's frozen weights loaded over SAM2's", 'MODEL'),
    Mutant('bag-output-at-last-logtime', 'm4sam_ros/apps/bag.py',
           'writer\\.write\\(out_conn\\(name, OUTPUT_TYPES\\[name\\]\\), color_time,',
           'writer.write(out_conn(name, OUTPUT_TYPES[name]), logtime,',
           ('test/test_bag.py', '-k', 'one_mask_per_pair'),
           "outputs written at the depth frame's bag time", 'NODE'),
    Mutant('bag-info-never-updated', 'm4sam_ros/apps/bag.py',
           'info_msg = read\\(conn, logtime, raw\\) or info_msg',
           'info_msg = info_msg or read(conn, logtime, raw)',
           ('test/test_bag_io.py', '-k', 'changes_mid_bag'),
           'the bag tool keeps the first camera_info', 'NODE'),
    Mutant('ck-version-unchecked', 'm4sam_ros/model/checkpoint.py',
           '    if ckpt\\.get\\("format_version"\\) != FORMAT_VERSION:',
           '    if False:',
           ('test/test_model_checkpoint.py', '-k', 'newer_format'),
           'a checkpoint of a newer format version loads', 'MODEL'),
    Mutant('ck-sam2-shape-unchecked', 'm4sam_ros/model/checkpoint.py',
           '    if bad:\\n        raise CheckpointError\\(f\\"\\{path\\}: shape mismatch',
           '    if False:\n        raise CheckpointError(f"{path}: shape mismatch',
           ('test/test_model_checkpoint.py', '-k', 'another_shape'),
           "a SAM2 weight of another shape fails as torch's RuntimeError", 'MODEL'),
    Mutant('in-no-drop-stale', 'm4sam_ros/ros/inputs.py',
           '            if jump is not None:\\n                self\\._drop_stale\\(stamp\\)',
           '            pass',
           ('test/test_node.py', '-k', 'stamp_jump_in_the_input'),
           "the node's jump leaves the old epoch queued (nothing pairs again)", 'NODE'),
    Mutant('in-reset-keeps-stamps', 'm4sam_ros/ros/inputs.py',
           '            self\\.jumps\\.newest = \\[None, None\\]\\n',
           '',
           ('test/test_node.py', '-k', 'reset_service'),
           '~/reset keeps the input stamps (another bag counted as a jump)', 'NODE'),
    Mutant('st-step-mismatch-ok', 'm4sam_ros/training/state.py',
           '    if int\\(extra\\.get\\("step", -1\\)\\) != int\\(state\\["step"\\]\\):',
           '    if False:',
           ('test/test_train_resume.py', '-k', 'incomplete_unit'),
           'a torn old-layout run resumes with mismatched steps', 'TRAIN'),
    Mutant('st-unit-needs-only-ckpt', 'm4sam_ros/training/state.py',
           'and \\(d / CHECKPOINT\\)\\.is_file\\(\\) and \\(d / STATE\\)\\.is_file\\(\\)',
           'and (d / CHECKPOINT).is_file()',
           ('test/test_train_resume.py', '-k', 'incomplete_unit'),
           'a folder with only a checkpoint counts as a unit', 'TRAIN'),

)


# ------------------------------------------------------------------------------------ machinery

def repo_files(root: Path) -> list[str]:
    """Tracked and untracked, non-ignored files (what a fresh checkout plus work in progress has)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         check=True, capture_output=True).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (root / f).is_file()})


def copy_repo(root: Path, dest: Path) -> None:
    for rel in repo_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def apply(m: Mutant, source: str) -> str:
    """The mutated text; ValueError (stale) unless the pattern matches exactly once."""
    n = len(re.findall(m.pattern, source))
    if n != 1:
        raise ValueError(f"pattern matches {n} times in {m.path} (must be exactly once): {m.pattern!r}")
    mutated = re.sub(m.pattern, m.replacement, source, count=1)
    if mutated == source:
        raise ValueError("the replacement changes nothing")
    compile(mutated, m.path, "exec")  # a mutant must still be Python
    return mutated


def check_patterns(root: Path, mutants: list[Mutant]) -> dict[str, str | None]:
    """name -> None when the mutant applies to the code under ``root``, else why it does not."""
    problems: dict[str, str | None] = {}
    for m in mutants:
        path = root / m.path
        try:
            if not path.is_file():
                raise ValueError(f"{m.path} does not exist")
            apply(m, path.read_text())
            problems[m.name] = None
        except (ValueError, SyntaxError) as exc:
            problems[m.name] = str(exc)
    return problems


def test_env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file must never run from a mutant's bytecode
    env.setdefault("OMP_NUM_THREADS", "1")
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # the copy lives elsewhere: point test/conftest.py at this checkout's ../shared/ros
    env.setdefault("M4SAM_SHARED_ROS", str(ROOT.parent / "shared" / "ros"))
    return env


def run_pytest(copy: Path, args: list[str], timeout: float, stop_first: bool = True) -> tuple[int, float, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
           "-W", "ignore::UserWarning", *(["-x"] if stop_first else []), *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=test_env(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return -1, time.perf_counter() - t0, out
    return proc.returncode, time.perf_counter() - t0, proc.stdout + proc.stderr


def selections(mutants: list[Mutant]) -> list[list[str]]:
    """The baseline runs: per test file, the union of the mutants' selections in that file (the
    whole file, the named tests, or the -k expressions joined with "or")."""
    whole: set[str] = set()
    ids: dict[str, set[str]] = {}
    exprs: dict[str, set[str]] = {}
    for m in mutants:
        if len(m.tests) == 3 and m.tests[1] == "-k":
            exprs.setdefault(m.tests[0], set()).add(m.tests[2])
        elif len(m.tests) == 1 and "::" in m.tests[0]:
            ids.setdefault(m.tests[0].split("::")[0], set()).add(m.tests[0])
        elif len(m.tests) == 1:
            whole.add(m.tests[0])
        else:
            raise ValueError(f"{m.name}: tests must be (file,), (file::test,) or (file, '-k', expr)")
    runs = [[f] for f in sorted(whole)]
    for f in sorted(set(ids) | set(exprs)):
        if f in whole:
            continue
        if f in exprs:
            names = [i.split("::", 1)[1] for i in ids.get(f, ())]
            expr = " or ".join(f"({e})" for e in sorted(exprs[f]) + sorted(names))
            runs.append([f, "-k", expr])
        else:
            runs.append(sorted(ids[f]))
    return runs


def summary_line(output: str) -> str:
    """pytest's last line, plus the first failed test and its first error line (what caught it)."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    failed = next((ln for ln in lines if ln.startswith(("FAILED ", "ERROR "))), "")
    error = next((ln.strip() for ln in lines if ln.startswith("E ")), "")
    parts = [lines[-1][:100], failed[:160], error[:160]]
    return " | ".join(p for p in parts if p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list the mutants and whether each still applies")
    ap.add_argument("--only", action="append", default=[], help="run only this mutant (repeatable)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmodified run (you just did it)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run (a hang counts killed)")
    ap.add_argument("--json", help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = ap.parse_args(argv)

    names = {m.name for m in MUTANTS}
    unknown = [n for n in args.only if n not in names]
    if unknown:
        print(f"unknown mutant(s): {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 1
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    stale = check_patterns(ROOT, mutants)
    if args.list:
        for m in mutants:
            state = "ok" if stale[m.name] is None else f"STALE: {stale[m.name]}"
            print(f"{m.name:32s} {m.owner:6s} {m.path:28s} {state}\n{'':32s} {m.why}\n{'':32s} tests: "
                  f"{' '.join(m.tests)}")
        return 0 if all(v is None for v in stale.values()) else 1

    tmp = Path(tempfile.mkdtemp(prefix="m4sam-mutants-"))
    copy = tmp / "repo"
    results: list[dict] = []
    try:
        copy_repo(ROOT, copy)
        probe = subprocess.run([sys.executable, "-c", "import m4sam_ros; print(m4sam_ros.__file__)"], cwd=copy,
                               env=test_env(copy), capture_output=True, text=True)
        if not probe.stdout.strip().startswith(str(copy)):
            print(f"the copy does not import its own m4sam_ros ({probe.stdout.strip()} {probe.stderr.strip()})",
                  file=sys.stderr)
            return 2
        runnable = [m for m in mutants if stale[m.name] is None]
        if runnable and not args.no_baseline:
            for base_args in selections(runnable):
                print(f"baseline (unmodified copy): pytest {' '.join(base_args)}", flush=True)
                rc, secs, out = run_pytest(copy, base_args, timeout=args.timeout * 3, stop_first=False)
                print(f"  rc {rc}, {secs:.0f} s: {summary_line(out)}", flush=True)
                if rc != 0:
                    print(out[-6000:], file=sys.stderr)
                    print("the unmodified code fails these tests: fix that first", file=sys.stderr)
                    return 2
        for m in mutants:
            row = {"name": m.name, "owner": m.owner, "path": m.path, "why": m.why, "tests": " ".join(m.tests)}
            if stale[m.name] is not None:
                row |= {"result": "STALE", "seconds": 0.0, "detail": stale[m.name]}
                results.append(row)
                print(f"{m.name:32s} STALE     {stale[m.name]}", flush=True)
                continue
            target = copy / m.path
            original = target.read_text()
            try:
                target.write_text(apply(m, original))
                rc, secs, out = run_pytest(copy, list(m.tests), timeout=args.timeout)
            finally:
                target.write_text(original)
            if rc == -1:
                result = "killed"
                detail = f"timeout after {secs:.0f} s"
            elif rc in (1, 2, 3):  # failures, or an import/collection error the mutant caused
                result, detail = "killed", summary_line(out)
            elif rc == 0:
                result, detail = "SURVIVED", summary_line(out)
            else:  # 4 usage error, 5 nothing collected: the selection itself is wrong
                result, detail = "ERROR", f"pytest rc {rc}: {summary_line(out)}"
            row |= {"result": result, "seconds": round(secs, 1), "detail": detail}
            results.append(row)
            print(f"{m.name:32s} {result:9s} {secs:6.1f} s  {detail}", flush=True)
    finally:
        if args.keep:
            print(f"copy kept at {copy}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print("\n| mutant | file (owner) | result | s | tests |\n|---|---|---|---:|---|")
    for r in results:
        print(f"| {r['name']} | {r['path']} ({r['owner']}) | {r['result']} | {r['seconds']} | {r['tests']} |")
    bad = [r for r in results if r["result"] != "killed"]
    killed = len(results) - len(bad)
    print(f"\n{killed} of {len(results)} mutants killed" + (f"; not killed: {', '.join(r['name'] for r in bad)}"
                                                           if bad else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
