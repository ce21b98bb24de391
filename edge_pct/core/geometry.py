"""Numpy geometry shared by training, evaluation and streaming: box -> crop affine, point transforms.

One crop convention everywhere (mmpose "centre/scale" without UDP): a box is enlarged to the model's
aspect ratio, padded, and mapped onto the (width, height) crop so the box centre lands on the crop centre.
No torch here, so the torch, onnxruntime and TensorRT backends share it.
"""

from __future__ import annotations

import numpy as np


def box_to_center_size(boxes_xywh: np.ndarray, aspect: float, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes -> crop regions of a fixed aspect ratio.

    Args:
        boxes_xywh: (N, 4) float, image pixels (x, y, w, h).
        aspect: crop width / height (192/256 = 0.75 for the default input).
        padding: enlargement factor of the region (1.25 = 25% context).

    Returns:
        center (N, 2) and size (N, 2) = region (width, height) in image pixels, width / height == aspect.
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    center = boxes[:, :2] + boxes[:, 2:] / 2
    w, h = boxes[:, 2].copy(), boxes[:, 3].copy()
    wide = w > aspect * h
    h[wide] = w[wide] / aspect
    w[~wide] = h[~wide] * aspect
    size = np.stack([w, h], axis=1) * padding
    return center.astype(np.float32), np.maximum(size, 1e-3).astype(np.float32)


def crop_affine(center: np.ndarray, size: np.ndarray, rotation_deg: np.ndarray | float,
                output_size: tuple[int, int]) -> np.ndarray:
    """Affine matrices mapping image pixels to crop pixels.

    Args:
        center: (N, 2) region centre, image pixels.
        size: (N, 2) region (width, height), image pixels.
        rotation_deg: (N,) or scalar; positive rotates the person counter-clockwise in the crop.
        output_size: crop (width, height) in pixels.

    Returns:
        (N, 2, 3) float32, crop = M @ [x, y, 1].
    """
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    size = np.asarray(size, dtype=np.float64).reshape(-1, 2)
    n = len(center)
    theta = np.deg2rad(np.broadcast_to(np.asarray(rotation_deg, dtype=np.float64), (n,)))
    out_w, out_h = output_size
    sx, sy = out_w / size[:, 0], out_h / size[:, 1]
    cos, sin = np.cos(theta), np.sin(theta)
    # crop = S @ R @ (p - c) + crop_centre, R rotates by -theta in image y-down coordinates.
    a = np.stack([sx * cos, sx * sin, -sy * sin, sy * cos], axis=1).reshape(n, 2, 2)
    t = np.array([out_w / 2, out_h / 2]) - np.einsum("nij,nj->ni", a, center)
    return np.concatenate([a, t[:, :, None]], axis=2).astype(np.float32)


def invert_affine(mats: np.ndarray) -> np.ndarray:
    """(N, 2, 3) affine -> its inverse (N, 2, 3)."""
    mats = np.asarray(mats, dtype=np.float64)
    a_inv = np.linalg.inv(mats[:, :, :2])
    t_inv = -np.einsum("nij,nj->ni", a_inv, mats[:, :, 2])
    return np.concatenate([a_inv, t_inv[:, :, None]], axis=2).astype(np.float32)


def apply_affine(points: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Transform points (N, K, 2) by per-instance affines (N, 2, 3); returns (N, K, 2) float32."""
    points = np.asarray(points, dtype=np.float64)
    mats = np.asarray(mats, dtype=np.float64)
    return (np.einsum("nij,nkj->nki", mats[:, :, :2], points) + mats[:, None, :, 2]).astype(np.float32)


def warp_crops(image: np.ndarray, mats: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Cut person crops out of one image with the image->crop affines (bilinear, black border).

    Args:
        image: (H, W, 3) uint8 BGR frame.
        mats: (N, 2, 3) affines from `crop_affine`.
        input_size: crop (width, height).

    Returns:
        (N, height, width, 3) uint8 BGR crops. Training, evaluation and streaming all crop through here.
    """
    import cv2

    w, h = input_size
    out = np.empty((len(mats), h, w, 3), dtype=np.uint8)
    for i, m in enumerate(mats):
        out[i] = cv2.warpAffine(image, m.astype(np.float64), (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return out


def to_model_input(crops: np.ndarray) -> np.ndarray:
    """BGR uint8 crops (N, H, W, 3) -> model input (N, 3, H, W) float32 RGB in [0, 255] (the model normalises)."""
    return np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N, 4) and b (K, 4), x1 y1 x2 y2 px -> (N, K) float32 (0 where both are empty)."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def check_frame(frame_bgr: np.ndarray) -> np.ndarray:
    """The frame as an (H, W, 3) uint8 array, or a ValueError naming what was given."""
    frame = np.asarray(frame_bgr)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8 or not frame.size:
        raise ValueError(f"frame_bgr must be (H, W, 3) uint8 BGR, got {frame.shape} {frame.dtype}")
    return frame
