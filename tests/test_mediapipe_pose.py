"""MediaPipe peer: the BlazePose -> COCO-17 table, accuracy on real LSP-extended crops, no-pose and error paths."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA, require_data
from edge_pct.core.errors import InputFileError
from edge_pct.core.keypoints import COCO17_NAMES, FLIP_PAIRS, LSP14_TO_COCO17
from edge_pct.peers.mediapipe import BLAZEPOSE_TO_COCO17, MediaPipePose

TASK = SHARED_DATA / "models" / "pose_landmarker_full.task"
LSPET = SHARED_DATA / "lspet"
CROP_W, CROP_H = 192, 256

# BlazePose's 33 landmark names in index order (Google's model card), so the table is checked without mediapipe.
BLAZEPOSE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip


def test_mapping_names_and_left_right_pairs():
    assert len(BLAZEPOSE_TO_COCO17) == len(COCO17_NAMES) == 17
    assert len(set(BLAZEPOSE_TO_COCO17)) == 17
    assert [BLAZEPOSE_NAMES[i] for i in BLAZEPOSE_TO_COCO17] == list(COCO17_NAMES)
    for left, right in FLIP_PAIRS:  # a COCO left/right pair maps to a BlazePose left/right pair
        assert BLAZEPOSE_NAMES[BLAZEPOSE_TO_COCO17[left]].startswith("left_")
        assert BLAZEPOSE_NAMES[BLAZEPOSE_TO_COCO17[right]] == BLAZEPOSE_NAMES[BLAZEPOSE_TO_COCO17[left]].replace(
            "left_", "right_")


def test_missing_task_file_raises_input_file_error(tmp_path):
    missing = tmp_path / "pose_landmarker_full.task"
    with pytest.raises(InputFileError, match="pose_landmarker_full.task") as info:
        MediaPipePose(missing)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def mediapipe_module():
    return pytest.importorskip("mediapipe", reason="mediapipe not installed: pip install 'edge-pct[mediapipe]'")


@pytest.fixture(scope="module")
def pose(mediapipe_module):
    require_data(TASK)
    with MediaPipePose(TASK) as model:
        yield model


def test_mapping_matches_mediapipe_enum(mediapipe_module):
    from mediapipe.tasks.python.vision import PoseLandmark

    assert [PoseLandmark[name.upper()].value for name in COCO17_NAMES] == list(BLAZEPOSE_TO_COCO17)
    assert [m.name.lower() for m in sorted(PoseLandmark, key=int)] == list(BLAZEPOSE_NAMES)


def test_corrupt_task_file_raises_input_file_error(mediapipe_module, tmp_path):
    bad = tmp_path / "bad.task"
    bad.write_bytes(b"not a zip archive" * 10)
    with pytest.raises(InputFileError, match="cannot load") as info:
        MediaPipePose(bad)
    assert "\n" not in str(info.value)


def _lsp_crops(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First n LSP-extended images -> crops (n, 256, 192, 3) uint8, GT (n, 17, 2) crop px, labeled (n, 17) bool."""
    import cv2

    from edge_pct.core.geometry import apply_affine, box_to_center_size, crop_affine

    data = np.load(require_data(LSPET / "joints.npz"))
    crops, gts, labeled = [], [], []
    for joints, name in zip(data["joints"][:n], data["files"][:n], strict=True):
        image = cv2.imread(str(require_data(LSPET / "images" / str(name))))
        vis = joints[:, 2] > 0
        lo, hi = joints[vis, :2].min(axis=0), joints[vis, :2].max(axis=0)
        center, size = box_to_center_size(np.concatenate([lo, hi - lo])[None], CROP_W / CROP_H, 1.25)
        mat = crop_affine(center, size, 0.0, (CROP_W, CROP_H))
        crops.append(cv2.warpAffine(image, mat[0], (CROP_W, CROP_H), flags=cv2.INTER_LINEAR))
        gt, lab = np.zeros((17, 2), np.float32), np.zeros(17, bool)
        for lsp, coco in LSP14_TO_COCO17.items():
            gt[coco], lab[coco] = joints[lsp, :2], vis[lsp]
        gts.append(apply_affine(gt[None], mat)[0])
        labeled.append(lab)
    return np.stack(crops), np.stack(gts), np.stack(labeled)


def test_estimate_crops_is_accurate_on_real_lsp_images(pose):
    crops, gt, labeled = _lsp_crops(3)
    out = pose.estimate_crops(crops)
    assert out["joints"].shape == (3, 17, 2) and out["joints"].dtype == np.float32
    assert out["confidence"].shape == (3, 17) and out["confidence"].dtype == np.float32
    assert out["found"].shape == (3,) and out["found"].dtype == bool
    assert np.all((out["confidence"] >= 0) & (out["confidence"] <= 1))
    errors = np.linalg.norm(out["joints"] - gt, axis=-1)
    median = np.array([np.median(e[lab]) for e, lab in zip(errors, labeled, strict=True)])
    good = out["found"] & (median < 0.15 * CROP_H)
    assert good.sum() >= 2, f"median joint error per image {median.round(1)} px (limit {0.15 * CROP_H:.1f})"


def test_blank_crop_finds_no_pose(pose):
    out = pose.estimate_crops(np.full((1, CROP_H, CROP_W, 3), 128, np.uint8))
    assert not out["found"][0]
    assert np.all(out["confidence"] == 0)
    np.testing.assert_allclose(out["joints"][0], np.tile([CROP_W / 2, CROP_H / 2], (17, 1)))


def test_eval_command_with_the_peer_exits_without_a_traceback(mediapipe_module, tmp_path):
    """`edge-pct eval --model mediapipe:TASK` closes the landmarker itself: left to interpreter teardown, mediapipe
    prints a traceback from its __del__ after the result."""
    import subprocess
    import sys

    from conftest import write_one_person_coco

    require_data(TASK)
    ann = write_one_person_coco(tmp_path, np.full((100, 100, 3), 127, np.uint8))
    code = "from edge_pct.cli import main; raise SystemExit(main())"
    run = subprocess.run([sys.executable, "-c", code, "eval", "--model", f"mediapipe:{TASK}", "--coco-ann", str(ann),
                          "--images", str(tmp_path), "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and (tmp_path / "r.json").exists()
