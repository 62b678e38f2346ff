"""The 3D scene around a mask: metric extent from depth + camera intrinsics, and stable ids.

Owns the one camera model (``camera``: CameraInfo's K, D, R, P, binning and ROI as image_geometry
reads them), depth in metres and back-projection of salient pixels (``geometry``), one 3D box per
salient component (``boxes3d``) and ids that follow objects from frame to frame (``tracking``). ROS-free: numpy and
OpenCV only; the node turns its results into messages in ``ros``.
"""
