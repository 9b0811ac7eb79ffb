"""The edge device: torch-free on-device fine-tuning with ONNX Runtime over MQTT."""
