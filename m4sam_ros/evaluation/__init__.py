"""Scoring saliency maps the way the field does: metrics, benchmark evaluation, held-out sets.

Owns the metrics over pysodmetrics (``metrics``), ``m4sam-eval`` (``evaluate``) and the synthetic
world's factor-wise held-out table ``m4sam-heldout`` (``heldout``). May import ``predictor``,
``model``, ``data``, ``viz`` and ``util``; never ``ros``, ``training`` or rclpy.
"""
