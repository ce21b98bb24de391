"""edge_pct.engines: pose backends (torch, ONNX Runtime; TensorRT later) behind one protocol.

Importing this package loads no runtime: onnxruntime and tensorrt are imported by the backend that needs them.
"""
