"""Everything that imports rclpy: the lifecycle node and its parts (inputs, pipeline, messages,
diagnostics, parameters, worker), and ``compat``, the one module that imports cv_bridge,
message_filters, sensor_msgs_py and vision_msgs (real package when importable, a stand-in
otherwise). A thin shell: may import ``predictor``, ``model``, ``msgs``, ``scene``, ``viz`` and
``util``; nothing below it imports it.
"""
