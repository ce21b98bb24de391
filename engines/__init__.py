"""edge_pct.engines: pose backends (torch, ONNX Runtime, TensorRT) behind one protocol, and the TensorRT builder.

Importing this package loads no runtime: onnxruntime and tensorrt are imported by the backend that needs them;
`trt_compat.py` is the only module that branches on the TensorRT version.
"""
