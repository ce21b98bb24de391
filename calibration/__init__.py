"""edge_pct.calibration: post-training INT8 from image crops, in the two formats TensorRT generations read.

`reader` cuts calibration crops exactly as inference does and feeds them to ONNX Runtime's calibrators; `qdq`
measures per-tensor ranges and writes the symmetric Q/DQ ONNX (TensorRT 10/11 explicit INT8, ONNX Runtime);
`trt_cache` writes TensorRT's native implicit-calibration cache (TensorRT <= 10, JetPack 5/6); `calibrate`
runs the whole `edge-pct calibrate` command. Importing this package loads neither onnx nor onnxruntime.
"""
