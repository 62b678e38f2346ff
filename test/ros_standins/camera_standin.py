"""Stand-in for realsense2_camera_node and `ros2 bag play` (test environments only).

Publishes RealSense-style topics under the node's private namespace, as realsense2_camera 4.5x
does with align_depth.enable:=true: ~/color/image_raw (rgb8), ~/aligned_depth_to_color/image_raw
(16UC1, mm) and ~/aligned_depth_to_color/camera_info, 10 Hz, colour and depth with equal stamps.
The scene: a near bright disk (the salient object) moving over a far textured background.

As realsense2_camera_node: `--ros-args ...` (launch_ros passes namespace, name and parameters);
publishes the aligned depth only when the parameter align_depth.enable is true, like the real one.
As `ros2 bag play BAG --clock --rate R [--start-paused] [--loop]`: publishes /camera/camera/... and
/clock, with stamps on that clock (the first pair at 1000.1 s); BAG must exist. Like rosbag2's
player it creates its publishers first; --start-paused then waits for a call of
/rosbag2_player/resume (std_srvs/Trigger here: rosbag2_interfaces is not installed);
$STANDIN_BAG_FRAMES=N plays N frames and exits (a short bag), otherwise it plays until stopped.
As `ros2 service call /rosbag2_player/resume TYPE`: calls that service (recorded in
$STANDIN_RECORD.ros2-service).
"""

import os
import sys
import time

import numpy as np
import rclpy
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

W, H = 160, 120


def frame(i: int) -> tuple[np.ndarray, np.ndarray]:
    """A colour and a depth image of frame i."""
    yy, xx = np.mgrid[0:H, 0:W]
    cx, cy = 60 + 3 * (i % 12), 60
    disk = (xx - cx) ** 2 + (yy - cy) ** 2 < 25 ** 2
    rgb = np.stack([(xx * 37 + yy * 11) % 90, (xx * 13 + yy * 29) % 90, (xx * 7 + yy * 3) % 90], 2).astype(np.uint8)
    rgb[disk] = (230, 40, 40)
    depth = np.full((H, W), 3000, np.uint16)
    depth[disk] = 800
    return rgb, depth


def call_service(argv: list[str]) -> None:
    """`ros2 service call NAME TYPE`: waits for the service, calls it once."""
    from std_srvs.srv import Trigger

    with open(os.environ["STANDIN_RECORD"] + ".ros2-service", "w") as f:
        f.write(" ".join(argv))
    rclpy.init()
    node = Node("ros2service_standin")
    client = node.create_client(Trigger, argv[2])
    try:
        while not client.wait_for_service(timeout_sec=1.0):
            pass
        future = client.call_async(Trigger.Request())
        rclpy.spin_until_future_complete(node, future)
        print(f"response: {future.result()}")
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def main() -> None:
    argv = sys.argv[1:]
    if argv[:2] == ["service", "call"]:
        call_service(argv)
        return
    bag_mode = argv[:2] == ["bag", "play"]
    if bag_mode:
        bag = argv[2]
        if not os.path.exists(bag):
            print(f"ros2 bag play: no bag at {bag}", file=sys.stderr)
            sys.exit(1)
        with open(os.environ["STANDIN_RECORD"] + ".ros2", "w") as f:
            f.write(" ".join(argv))
    rclpy.init(args=None if bag_mode else sys.argv)
    if bag_mode:
        node = Node("rosbag2_player_standin", namespace="/camera/camera")
        clock_pub = node.create_publisher(Clock, "/clock", 10)
        prefix, align = "", True
    else:
        node = Node("camera", automatically_declare_parameters_from_overrides=True)
        prefix = "~/"
        align = node.has_parameter("align_depth.enable") and bool(node.get_parameter("align_depth.enable").value)
    color_pub = node.create_publisher(Image, prefix + "color/image_raw", 10)
    depth_topic = "aligned_depth_to_color" if align else "depth"
    depth_pub = node.create_publisher(Image, f"{prefix}{depth_topic}/image_raw", 10)
    info_pub = node.create_publisher(CameraInfo, f"{prefix}{depth_topic}/camera_info", 10)
    frame_id = f"{node.get_name()}_color_optical_frame"
    sim_t = 1_000 * 10**9
    i = 0
    frames = int(os.environ.get("STANDIN_BAG_FRAMES", "0")) if bag_mode else 0
    def publish_once(i: int) -> None:
        nonlocal sim_t
        rgb, depth = frame(i)
        if bag_mode:
            sim_t += 100_000_000
            clock = Clock()
            clock.clock.sec, clock.clock.nanosec = divmod(sim_t, 10**9)
            clock_pub.publish(clock)
            stamp = clock.clock
        else:
            stamp = node.get_clock().now().to_msg()
        for pub, arr, enc in ((color_pub, rgb, "rgb8"), (depth_pub, depth, "16UC1")):
            msg = Image(height=H, width=W, encoding=enc, step=W * arr.itemsize * (3 if arr.ndim == 3 else 1))
            msg.header.stamp, msg.header.frame_id = stamp, frame_id
            msg.data = arr.tobytes()
            pub.publish(msg)
        info = CameraInfo(height=H, width=W, distortion_model="plumb_bob")
        info.header.stamp, info.header.frame_id = stamp, frame_id
        info.k = [120.0, 0.0, W / 2, 0.0, 120.0, H / 2, 0.0, 0.0, 1.0]
        info.p = [120.0, 0.0, W / 2, 0.0, 0.0, 120.0, H / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
        info_pub.publish(info)
        rclpy.spin_once(node, timeout_sec=0.0)

    paused = bag_mode and "--start-paused" in argv
    if paused:
        from std_srvs.srv import Trigger

        def resume(_req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
            nonlocal paused
            paused, resp.success = False, True
            return resp

        resume_srv = node.create_service(Trigger, "/rosbag2_player/resume", resume)  # noqa: F841
    try:
        while paused and rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)
        while rclpy.ok():
            try:
                publish_once(i)
            except Exception:  # noqa: BLE001 - SIGINT shut the context down between two publishes
                if rclpy.ok():
                    raise
                break
            i += 1
            if frames and i >= frames:
                time.sleep(0.5)  # the last messages leave before the process does
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
