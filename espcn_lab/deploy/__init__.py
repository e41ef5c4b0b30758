"""Deployment: runtimes (PyTorch, ONNX Runtime, CUDA graphs), the upscaler, the whole-frame graph,
image and video upscaling, benchmarks and export.

Rule: may import ``imaging`` and the core (``model``, ``checkpoint``, ``config``, ``errors``); never
``train``, ``evaluate``, ``sweep`` or Lightning, so a deployment needs none of the training stack.
"""
