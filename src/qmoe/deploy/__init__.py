"""Deployment: each trained model as a real low-bit ONNX artefact, checked against its
checkpoint."""
