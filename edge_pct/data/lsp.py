"""LSP-extended (Johnson & Everingham 2011) as COCO-17 persons.

`joints.npz`: joints (N, 14, 3) x, y, visible(1/0) in LSP order, files (N,). The 12 limb joints map to COCO
(keypoints.LSP14_TO_COCO17); the COCO face joints are unlabeled unless the MediaPipe pseudo-labels of
`face_pseudo.npz` are added (accepted rows only; they are a peer model's output, never scored against).
Rows whose image file is absent are skipped. Held out: im09001-im10000 (never trained on).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.keypoints import LSP14_TO_COCO17
from edge_pct.data.persons import PersonSet

HELDOUT_FIRST = 9001  # im09001-im10000: the PCK evaluation slice


def _file_number(name: str) -> int:
    return int(Path(name).stem[2:])


def load_lsp(root: str | Path, split: str = "train", face_pseudo: bool = False,
             face_min_score: float = 0.5, last: int = HELDOUT_FIRST - 1) -> PersonSet:
    """Persons of LSP-extended `split` ("train": images im00001 .. im<last>, never past im09000; "heldout":
    im09001-im10000).

    Boxes span all 14 labeled LSP joints (head top and neck included). Visible LSP joints get v=2, the rest v=0.
    """
    root = Path(root)
    try:
        with np.load(root / "joints.npz") as d:
            joints, files = d["joints"].astype(np.float32), [str(f) for f in d["files"]]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise InputFileError(f"'{root / 'joints.npz'}' is missing or not LSP-extended joints ({e})") from e
    numbers = np.array([_file_number(f) for f in files])
    if not 1 <= last < HELDOUT_FIRST:
        raise ConfigError(f"train.lsp_last={last} is out of range: use 1-{HELDOUT_FIRST - 1} (im{HELDOUT_FIRST:05d} "
                          "on are the held-out slice)")
    in_split = numbers >= HELDOUT_FIRST if split == "heldout" else numbers <= last
    present = np.array([(root / "images" / f).is_file() for f in files])
    keep = np.nonzero(in_split & present & ((joints[:, :, 2] > 0).sum(1) >= 2))[0]
    joints = joints[keep]
    kpts = np.zeros((len(keep), 17, 3), np.float32)
    for lsp, coco in LSP14_TO_COCO17.items():
        kpts[:, coco, :2] = joints[:, lsp, :2]
        kpts[:, coco, 2] = np.where(joints[:, lsp, 2] > 0, 2.0, 0.0)
    if face_pseudo and split == "train":
        _add_face_pseudo(root, [files[i] for i in keep], kpts, face_min_score)
    lab = joints[:, :, 2] > 0
    lo = np.where(lab[..., None], joints[:, :, :2], np.inf).min(1)
    hi = np.where(lab[..., None], joints[:, :, :2], -np.inf).max(1)
    boxes = np.concatenate([lo, hi - lo], axis=1).astype(np.float32)
    paths = [str(root / "images" / files[i]) for i in keep]
    return PersonSet(kpts, boxes, numbers[keep], boxes[:, 2] * boxes[:, 3] * 0.535, paths)


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
