"""`PersonSet`: the one container of labeled persons every reader fills and every trainer and scorer reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PersonSet:
    """N persons.

    keypoints (N, 17, 3): image px + COCO visibility v (0 unlabeled, 1 labeled occluded, 2 visible);
    boxes (N, 4): xywh image px; image_ids (N,); areas (N,) segment area in px^2 (for OKS);
    paths: the image file of each person, or [] for poses without images (the tokenizer's training poses);
    ann_ids (N,): COCO annotation ids, -1 when unknown.
    """

    keypoints: np.ndarray
    boxes: np.ndarray
    image_ids: np.ndarray
    areas: np.ndarray
    paths: list[str] = field(default_factory=list)
    ann_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.ann_ids is None:
            self.ann_ids = np.full(len(self.keypoints), -1, np.int64)

    def __len__(self) -> int:
        return len(self.keypoints)

    def subset(self, idx: np.ndarray) -> PersonSet:
        return PersonSet(self.keypoints[idx], self.boxes[idx], self.image_ids[idx], self.areas[idx],
                         [self.paths[i] for i in idx] if self.paths else [], self.ann_ids[idx])

    @staticmethod
    def concat(sets: list[PersonSet]) -> PersonSet:
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(s, name) for s in sets])

        return PersonSet(cat("keypoints"), cat("boxes"), cat("image_ids"), cat("areas"),
                         [p for s in sets for p in s.paths], cat("ann_ids"))
