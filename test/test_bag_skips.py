"""Issue 21: m4sam-bag keeps going through bad messages in real rosbag2 files (a truncated message,
a topic whose metadata type is not what was recorded), says so in one line each and in the
summary, exits 0 when something was usable; --overwrite replaces only its own outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from test_bag_io import PERIOD, T0, _predictor, _stamps, write_bag

from m4sam_ros.apps.bag import SHOWN_SKIPS, BagError, main, process_bag
from m4sam_ros.data.synth import world as synth
from m4sam_ros.msgs.image_codec import numpy_to_image

GOOD = 7


@pytest.fixture(scope="module")
def video() -> synth.SyntheticVideo:
    return synth.generate_video(8, GOOD, 96, 72)


def bag_with_bad_colour(path: Path, video: synth.SyntheticVideo, bad: dict[int, str],
                        color_type: str = "sensor_msgs/msg/Image") -> Path:
    """GOOD + len(bad) colour/depth pairs; colour message i in ``bad`` is written "truncated" (its
    first 40 bytes) or "garbage" (random bytes). ``color_type`` is what the metadata says."""
    ts = get_typestore(Stores.ROS2_KILTED)
    Image, Header, Time = (ts.types[t] for t in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                  "builtin_interfaces/msg/Time"))
    rng = np.random.default_rng(0)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        cc = writer.add_connection(synth.COLOR_TOPIC, color_type, typestore=ts)
        dc = writer.add_connection(synth.DEPTH_TOPIC, "sensor_msgs/msg/Image", typestore=ts)
        good = 0
        for i in range(GOOD + len(bad)):
            ns = T0 + i * PERIOD
            header = Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=synth.COLOR_FRAME_ID)
            f = good % GOOD
            raw = ts.serialize_cdr(numpy_to_image(video.rgb[f], "rgb8", Image, header=header), "sensor_msgs/msg/Image")
            if bad.get(i) == "truncated":
                raw = raw[:40]
            elif bad.get(i) == "garbage":
                raw = rng.integers(0, 255, 300, dtype=np.uint8)
            else:
                good += 1
            writer.write(cc, ns, raw)
            writer.write(dc, ns + 1, ts.serialize_cdr(numpy_to_image(video.depth[f], "16UC1", Image, header=header),
                                                      "sensor_msgs/msg/Image"))
    return path


def test_truncated_message_is_skipped_and_the_good_pairs_are_processed(tmp_path: Path, video, capsys) -> None:
    bag = bag_with_bad_colour(tmp_path / "in", video, {3: "truncated"})
    rc = main(["--input", str(bag), "--output", str(tmp_path / "out"), "--color-topic", synth.COLOR_TOPIC,
               "--depth-topic", synth.DEPTH_TOPIC, "--info-topic", "", "--quiet"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert out.out.count("skipped message on") == 1 and "(deserialize_error)" in out.out
    assert f"skipped messages: '{synth.COLOR_TOPIC}' deserialize_error: 1" in out.out
    assert f"{GOOD} processed" in out.out and "Traceback" not in out.out + out.err
    summary = process_bag(bag, tmp_path / "out2", _predictor(), color_topic=synth.COLOR_TOPIC,
                          depth_topic=synth.DEPTH_TOPIC, info_topic=None, progress=False)
    assert summary.processed == GOOD and summary.skipped_messages == {synth.COLOR_TOPIC: {"deserialize_error": 1}}
    assert summary.unpaired_depth == 1  # the depth of the skipped colour frame found no partner


def test_only_the_first_skips_get_a_line(tmp_path: Path, video, capsys) -> None:
    bad = {i: ("truncated" if i % 2 else "garbage") for i in range(GOOD, GOOD + SHOWN_SKIPS + 4)}
    bag = bag_with_bad_colour(tmp_path / "in", video, bad)
    summary = process_bag(bag, tmp_path / "out", _predictor(), color_topic=synth.COLOR_TOPIC,
                          depth_topic=synth.DEPTH_TOPIC, info_topic=None, progress=True)
    err = capsys.readouterr()
    text = err.out + err.err
    assert text.count("skipped message on") == SHOWN_SKIPS and text.count("only counted") == 1
    assert summary.processed == GOOD
    assert sum(summary.skipped_messages[synth.COLOR_TOPIC].values()) == len(bad)


def test_metadata_typing_the_colour_topic_differently_is_named(tmp_path: Path, video, capsys) -> None:
    bag = bag_with_bad_colour(tmp_path / "in", video, {}, color_type="sensor_msgs/msg/CompressedImage")
    with pytest.raises(BagError) as info:
        process_bag(bag, tmp_path / "out", _predictor(), color_topic=synth.COLOR_TOPIC, depth_topic=synth.DEPTH_TOPIC,
                    info_topic=None, progress=False)
    text = str(info.value)
    assert "nothing written" in text and synth.COLOR_TOPIC in text
    assert "sensor_msgs/msg/CompressedImage" in text and "metadata" in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    # a type that is no image at all is refused before anything runs, naming the types
    ts = get_typestore(Stores.ROS2_KILTED)
    with Writer(tmp_path / "odd", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection(synth.COLOR_TOPIC, "std_msgs/msg/String", typestore=ts)
        writer.add_connection(synth.DEPTH_TOPIC, "sensor_msgs/msg/Image", typestore=ts)
    with pytest.raises(BagError, match=r"carries std_msgs/msg/String in the bag's metadata, expected"):
        process_bag(tmp_path / "odd", tmp_path / "out", _predictor(), color_topic=synth.COLOR_TOPIC,
                    depth_topic=synth.DEPTH_TOPIC, info_topic=None, progress=False)


def test_overwrite_replaces_only_a_previous_output(tmp_path: Path, video, capsys) -> None:
    bag = write_bag(tmp_path / "in", video, _stamps(2))
    keep = tmp_path / "out"
    keep.mkdir()
    (keep / "thesis.tex").write_text("precious")
    # the command refuses before a model is built
    assert main(["--input", str(bag), "--output", str(keep), "--quiet", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "is not an output of m4sam-bag" in err and "--overwrite twice" in err
    for level in (0, 1):
        with pytest.raises(BagError, match="--overwrite"):
            process_bag(bag, keep, _predictor(), progress=False, overwrite=level)
    assert (keep / "thesis.tex").read_text() == "precious"
    process_bag(bag, keep, _predictor(), progress=False, overwrite=2)  # forced (--overwrite --overwrite)
    assert not (keep / "thesis.tex").exists() and (keep / "metadata.yaml").is_file()
    assert process_bag(bag, keep, _predictor(), progress=False, overwrite=True).processed == 2  # ours now
    (keep / "metadata.yaml").write_text("not: [a rosbag2")
    with pytest.raises(BagError, match="not an output of m4sam-bag"):
        process_bag(bag, keep, _predictor(), progress=False, overwrite=1)
    assert main(["--input", str(bag), "--output", str(keep), "--quiet", "--force-overwrite"]) == 0
    assert (keep / "metadata.yaml").read_text() != "not: [a rosbag2"
