"""Thin command-line tools over the library: ``bag`` (``m4sam-bag``: rosbag2 in, masks out) and
``demo`` (``make demo``: the real node on a replayed synthetic bag) with ``demo_io`` (its player and
recorder, each a process of its own).

Top of the house with ``benchmarks``: may import any package; only a benchmark (``demo_bench``)
imports an app.
"""
