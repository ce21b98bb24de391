"""Export: torch -> ONNX (the image graph, the decoder graph and their sidecar) with parity checks (`onnx`)."""
