"""COCO-17 keypoint definitions and the LSP-14 -> COCO-17 mapping (data only, no logic).

Reference: COCO keypoint task (https://cocodataset.org/#keypoints-eval) for names, skeleton and the
per-joint OKS sigmas; LSP order from the LSP-extended `joints.npz` `names` array.
"""

from __future__ import annotations

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
NUM_JOINTS = len(COCO17_NAMES)

# Bones as 0-based joint index pairs (the COCO json skeleton is 1-based).
SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

# Left/right pairs swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# FLIP_INDEX[j] is the joint that j becomes after a horizontal flip.
FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# Per-joint OKS sigmas of the COCO evaluation (pycocotools COCOeval.kpt_oks_sigmas).
OKS_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
    0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip

# Joints of the upper / lower body, used by the half-body augmentation.
UPPER_BODY: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
LOWER_BODY: tuple[int, ...] = (11, 12, 13, 14, 15, 16)

LSP14_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "head_top",
)  # fmt: skip

# LSP index -> COCO-17 index; neck and head_top have no COCO twin. COCO face joints (0-4) stay unlabeled.
LSP14_TO_COCO17: dict[int, int] = {0: 16, 1: 14, 2: 12, 3: 11, 4: 13, 5: 15, 6: 10, 7: 8, 8: 6, 9: 5, 10: 7, 11: 9}
