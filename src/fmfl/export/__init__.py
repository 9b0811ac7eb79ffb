"""Workstation export: torch model -> ONNX prefix + train-step graphs (checked against torch) -> signed bundle."""
