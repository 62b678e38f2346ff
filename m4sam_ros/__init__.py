"""m4sam_ros: prompt-free RGB-D video salient object detection (M4-SAM on SAM2) for ROS 2.

The core (``model``, ``predictor``, ``data``, ``metrics``) imports no ROS package; everything that
imports rclpy lives in ``m4sam_ros.ros``.
"""

__version__ = "0.1.0"
