"""Workstation export: torch model -> ONNX -> ONNX Runtime training artifacts -> signed bundle."""
