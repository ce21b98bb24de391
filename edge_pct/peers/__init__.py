"""Peer models scored exactly like ours, on the same crops: MediaPipe PoseLandmarker (`mediapipe`)."""
