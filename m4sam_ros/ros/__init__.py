"""Everything that imports rclpy: the lifecycle node, the compatibility layer, message conversions."""
