"""Person detectors: the protocol and NMS (`base`), YOLOX (`yolox`), MediaPipe (`mediapipe`), and the factory
`create_detector` that picks one by name or model file (`factory`)."""
