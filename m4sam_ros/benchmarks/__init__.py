"""Commands that print figures: speed, memory, delivery and soak measurements, the GPU suite.

``bench`` (``m4sam-bench``), ``timing`` (RGB-D vs RGB-only step), ``gpu_suite`` (the one GPU run),
``delivery_bench`` and ``soak_bench`` (the real node over DDS), ``demo_bench`` (``make demo`` N
times; the node and ``m4sam-bag`` against the bare predictor). Top of the house: may import any
package, including ``ros`` and ``apps``; nothing imports a benchmark.
"""
