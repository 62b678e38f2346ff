"""``m4sam_wait_active``: exit 0 once a lifecycle node reports ``active`` (rosbag.launch.py resumes
the bag player on that exit).

Why not launch_ros's ``OnStateTransition``: it hears the node's ``transition_event`` topic, a
volatile publisher; a node that autostarts before the launch's subscriber has been discovered
(a loaded machine, a Jetson, a model that loads in a second) sends ``active`` to nobody, and the
paused player then waits forever (seen under a CPU hog: no mask in 120 s). Asking the node's
``get_state`` service cannot be missed: the call waits for the service, and is repeated until the
answer is ``active``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from m4sam_ros.util.cli import DefaultsHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="m4sam_wait_active", formatter_class=DefaultsHelpFormatter,
                                description="Exit 0 once a lifecycle node is active (asks its get_state service).")
    p.add_argument("node", nargs="?", default="/m4sam", help="the lifecycle node's full name (//x is read as /x)")
    p.add_argument("--period", type=float, default=0.25, help="seconds between two get_state calls")
    p.add_argument("--timeout", type=float, default=0.0, help="give up (exit 1) after this many seconds; 0 = never")
    return p


def node_name(text: str) -> str:
    """'/ns//m4sam/' or 'm4sam' -> '/ns/m4sam', '/m4sam' (a namespace substitution may be empty)."""
    return "/" + re.sub("/+", "/", text).strip("/")


def main(args: list[str] | None = None) -> int:
    import rclpy
    from lifecycle_msgs.srv import GetState
    from rclpy.utilities import remove_ros_args

    argv = sys.argv if args is None else args
    opts = build_parser().parse_args(remove_ros_args(argv)[1:])
    target = node_name(opts.node)
    rclpy.init(args=argv)
    node = rclpy.create_node("m4sam_wait_active")
    client = node.create_client(GetState, f"{target}/get_state")
    start = time.monotonic()
    code, last = 1, "no answer"
    try:
        while rclpy.ok():
            if opts.timeout and time.monotonic() - start > opts.timeout:
                print(f"m4sam_wait_active: {target} not active after {opts.timeout:.0f} s (last: {last})",
                      file=sys.stderr)
                break
            if not client.wait_for_service(timeout_sec=1.0):
                continue
            future = client.call_async(GetState.Request())
            rclpy.spin_until_future_complete(node, future, timeout_sec=5.0)
            if future.done() and future.result() is not None:
                last = future.result().current_state.label
                if last == "active":
                    print(f"m4sam_wait_active: {target} is active")
                    code = 0
                    break
            time.sleep(opts.period)
    except KeyboardInterrupt:  # the launch shutting down before the node came up
        code = 130
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
