"""Backends: torch, ONNX, TVM (installed as graphspec.backends)."""
