"""The synthetic RGB-D world (``m4sam-synth``): scenes, shapes, textures, layouts, depth noise.

``world`` is the API and command line (videos, dataset layout, rosbag2 writer); ``scene`` samples
and renders a scene from the factor pools of ``shapes``, ``textures``, ``layouts`` and ``depth``.
"""

from m4sam_ros.data.synth.world import (
    COLOR_FRAME_ID,
    COLOR_INFO_TOPIC,
    COLOR_TOPIC,
    DEPTH_INFO_TOPIC,
    DEPTH_STAMP_OFFSET_NS,
    DEPTH_TOPIC,
    SyntheticVideo,
    frame_stamps_ns,
    generate_video,
    main,
    video_seed,
    write_bag,
    write_vidsod_layout,
)

__all__ = ["COLOR_FRAME_ID", "COLOR_INFO_TOPIC", "COLOR_TOPIC", "DEPTH_INFO_TOPIC", "DEPTH_STAMP_OFFSET_NS",
           "DEPTH_TOPIC", "SyntheticVideo", "frame_stamps_ns", "generate_video", "main", "video_seed",
           "write_bag", "write_vidsod_layout"]
