"""LSP-extended (Johnson & Everingham 2011) as COCO-17 persons.

`joints.npz`: joints (N, 14, 3) x, y, visible(1/0) in LSP order, files (N,). The 12 limb joints map to COCO
(keypoints.LSP14_TO_COCO17); the COCO face joints are unlabeled unless the MediaPipe pseudo-labels of
`face_pseudo.npz` are added (accepted rows only; they are a peer model's output, never scored against).
The crowd-sourced limb labels are noisy; `body_pseudo` averages them with MediaPipe's joints where the two agree
(`blend_body_pseudo`; training split only). Rows whose image file is absent are skipped. Held out:
im09001-im10000 (never trained on).
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from edge_pct.data.topdown import PersonSet
from edge_pct.errors import InputFileError
from edge_pct.keypoints import FLIP_INDEX, LSP14_TO_COCO17

HELDOUT_FIRST = 9001  # im09001-im10000: the PCK evaluation slice


def _file_number(name: str) -> int:
    return int(Path(name).stem[2:])


def load_lsp(root: str | Path, split: str = "train", face_pseudo: bool = False,
             face_min_score: float = 0.5, body_pseudo: str | Path = "", body_radius: float = 0.15) -> PersonSet:
    """Persons of LSP-extended `split` ("train": images before im09001; "heldout": im09001-im10000).

    Boxes span all 14 labeled LSP joints (head top and neck included). Visible LSP joints get v=2, the rest v=0.
    `body_pseudo`: an npz of `tools/lsp_body_pseudo.py` to denoise the training labels with (`blend_body_pseudo`).
    """
    root = Path(root)
    try:
        with np.load(root / "joints.npz") as d:
            joints, files = d["joints"].astype(np.float32), [str(f) for f in d["files"]]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise InputFileError(f"'{root / 'joints.npz'}' is missing or not LSP-extended joints ({e})") from e
    numbers = np.array([_file_number(f) for f in files])
    in_split = numbers >= HELDOUT_FIRST if split == "heldout" else numbers < HELDOUT_FIRST
    present = np.array([(root / "images" / f).is_file() for f in files])
    keep = np.nonzero(in_split & present & ((joints[:, :, 2] > 0).sum(1) >= 2))[0]
    joints = joints[keep]
    kpts = np.zeros((len(keep), 17, 3), np.float32)
    for lsp, coco in LSP14_TO_COCO17.items():
        kpts[:, coco, :2] = joints[:, lsp, :2]
        kpts[:, coco, 2] = np.where(joints[:, lsp, 2] > 0, 2.0, 0.0)
    if face_pseudo and split == "train":
        _add_face_pseudo(root, [files[i] for i in keep], kpts, face_min_score)
    if body_pseudo and split == "train":
        peer, peer_scores = _read_body_pseudo(Path(body_pseudo), [files[i] for i in keep])
        blend_body_pseudo(kpts, peer, peer_scores, body_radius)
    lab = joints[:, :, 2] > 0
    lo = np.where(lab[..., None], joints[:, :, :2], np.inf).min(1)
    hi = np.where(lab[..., None], joints[:, :, :2], -np.inf).max(1)
    boxes = np.concatenate([lo, hi - lo], axis=1).astype(np.float32)
    paths = [str(root / "images" / files[i]) for i in keep]
    return PersonSet(paths, boxes, kpts, numbers[keep], boxes[:, 2] * boxes[:, 3] * 0.535)


def _add_face_pseudo(root: Path, files: list[str], kpts: np.ndarray, min_score: float) -> None:
    """Fill COCO joints 0-4 in place from accepted MediaPipe face pseudo-labels with score >= min_score."""
    path = root / "face_pseudo.npz"
    if not path.is_file():
        raise InputFileError(f"'{path}' not found: set train.face_pseudo=false or add the pseudo-label file")
    with np.load(path) as d:
        row = {str(f): i for i, f in enumerate(d["files"])}
        face, accepted = d["face"], d["accepted"]
    for n, f in enumerate(files):
        i = row.get(f)
        if i is None or not accepted[i]:
            continue
        good = face[i, :, 2] >= min_score
        kpts[n, :5, :2] = np.where(good[:, None], face[i, :, :2], 0.0)
        kpts[n, :5, 2] = np.where(good, 2.0, 0.0)


def _read_body_pseudo(path: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe joints (N, 17, 2) and scores (N, 17) for `files` (score 0 where the npz has no row)."""
    try:
        with np.load(path) as d:
            row = {str(f): i for i, f in enumerate(d["files"])}
            joints, scores = d["joints"], d["scores"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise InputFileError(f"'{path}' is missing or not a tools/lsp_body_pseudo.py npz ({e}): run that tool or "
                             "set train.body_pseudo=''") from e
    idx = np.array([row.get(f, -1) for f in files])
    found = (idx >= 0)[:, None]
    return joints[idx] * found[..., None], np.where(found, scores[idx], 0.0)


def blend_body_pseudo(kpts: np.ndarray, peer: np.ndarray, peer_scores: np.ndarray, radius: float = 0.15,
                      min_score: float = 0.5) -> dict[str, int]:
    """Denoise crowd-sourced LSP limb labels with a peer model's joints, in place; returns what changed.

    kpts (N, 17, 3) image px + v; peer (N, 17, 2) image px, peer_scores (N, 17). Distances are in torso lengths
    (left shoulder - right hip; persons without both are left alone). Two steps, on the 12 limb joints:
    - left/right: where the peer fits the mirrored labels (median distance < `radius`) and the labels as they are
      at least `radius` worse, the labels' sides are swapped (an annotator who named sides from their own view);
    - position: each labeled joint that the peer places within `radius`, with score >= `min_score`, moves to the
      mean of the two: two independent estimates, half the noise; where they disagree the label stays.
    """
    body = np.arange(5, 17)
    mirror = np.array(FLIP_INDEX)[body]
    torso = np.linalg.norm(kpts[:, 5, :2] - kpts[:, 12, :2], axis=-1)
    ok = (kpts[:, 5, 2] > 0) & (kpts[:, 12, 2] > 0) & (torso > 1)
    scale = np.where(ok, torso, np.inf)[:, None]
    lab = kpts[:, body, 2] > 0

    def median_dist(labels: np.ndarray, labeled: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(peer[:, body] - labels[..., :2], axis=-1) / scale
        return np.nanmedian(np.where(labeled, d, np.nan), axis=1)

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: persons without labeled limbs
        as_is = median_dist(kpts[:, body], lab)
        mirrored = median_dist(kpts[:, mirror], lab[:, mirror - 5])
    swap = ok & (mirrored < radius) & (as_is >= mirrored + radius)
    kpts[np.ix_(swap, body)] = kpts[np.ix_(swap, mirror)]
    lab = kpts[:, body, 2] > 0
    dist = np.linalg.norm(peer[:, body] - kpts[:, body, :2], axis=-1) / scale
    agree = ok[:, None] & lab & (dist < radius) & (peer_scores[:, body] >= min_score)
    sub = kpts[:, body, :2]
    sub[agree] = (sub[agree] + peer[:, body][agree]) / 2
    kpts[:, body, :2] = sub
    return {"persons_swapped": int(swap.sum()), "joints_averaged": int(agree.sum()), "joints_labeled": int(lab.sum())}
