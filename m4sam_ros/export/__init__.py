"""ONNX export of the streaming step (``m4sam-export``): graphs that share M4-SAM's weights, the
exporter and its manifest, and a per-graph check against PyTorch. Imports torch and sam2; the
runtime that reads the folder (``predictor.onnx_runtime``) does not. May import ``model``, ``util``."""
