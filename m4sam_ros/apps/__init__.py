"""Thin command-line tools over the library: ``bag`` (``m4sam-bag``: rosbag2 in, masks out) and
``demo`` (``make demo``: the real node on a replayed synthetic bag).

Top of the house with ``benchmarks``: may import any package; nothing imports an app.
"""
