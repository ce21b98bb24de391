"""The small core every room uses: errors, atomic file writes, COCO-17 keypoint facts, crop geometry,
optional imports."""
