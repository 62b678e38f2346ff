"""Messages to arrays and back, without ROS: the edge between a topic and numpy.

Owns the raw image codec (``image_codec``: sensor_msgs/Image fields <-> numpy), compressed and
compressedDepth decoding as image_transport writes them (``compressed``), and colour/depth pairing
by stamp (``sync``), shared by the node and the bag tool. Works on any object with the message's
fields (rclpy or rosbags), so it imports neither: only numpy, OpenCV and ``util``.
"""
