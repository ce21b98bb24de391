"""Identity scoring (`edge_pct.eval.identity`) on synthetic tracks, MOT file round trips, and the hand-checked
ground truth of vtest.avi frames 1-300 (`tests/data/ids/vtest_ids.txt`, no video needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_pct.core.errors import InputFileError
from edge_pct.eval.identity import iou_distance, mot_rows, read_mot, score_identity, write_mot

pytest.importorskip("motmetrics")

GT_FILE = Path(__file__).parent / "data" / "ids" / "vtest_ids.txt"


def _two_walkers(frames: int = 20) -> np.ndarray:
    """Two people 60 px apart walking right 2 px/frame: (2 * frames, 6) MOT rows, ids 1 and 2."""
    rows = [(f, i, 10 + 2 * f + 60 * (i - 1), 50, 20, 50) for f in range(1, frames + 1) for i in (1, 2)]
    return np.array(rows, np.float64)


def test_identical_hypothesis_scores_perfect():
    gt = _two_walkers()
    r = score_identity(gt, gt.copy())
    assert r["idf1"] == pytest.approx(1.0) and r["mota"] == pytest.approx(1.0)
    assert r["id_switches"] == 0 and r["frames"] == 20 and r["gt_ids"] == r["hyp_ids"] == 2


def test_swapped_ids_midway_count_switches_and_lower_idf1():
    gt = _two_walkers()
    hyp = gt.copy()
    late = hyp[:, 0] > 10
    hyp[late, 1] = 3 - hyp[late, 1]  # from frame 11 on, 1 <-> 2
    r = score_identity(gt, hyp)
    assert r["id_switches"] == 2  # one per person
    assert r["idf1"] == pytest.approx(0.5)  # each id is right on half of its frames
    assert r["recall"] == pytest.approx(1.0)


def test_missing_track_lowers_recall_not_precision():
    gt = _two_walkers()
    r = score_identity(gt, gt[gt[:, 1] == 1])
    assert r["recall"] == pytest.approx(0.5) and r["precision"] == pytest.approx(1.0)
    assert r["misses"] == 20 and r["hyp_ids"] == 1


def test_shifted_boxes_below_iou_do_not_match():
    gt = _two_walkers()
    hyp = gt.copy()
    hyp[:, 2] += 15  # IoU of a 20 px wide box shifted by 15 px: 5 / 35
    assert score_identity(gt, hyp)["recall"] == 0.0
    assert score_identity(gt, hyp, iou=0.1)["recall"] == pytest.approx(1.0)


def test_hypothesis_outside_gt_frames_is_clipped():
    gt = _two_walkers()
    extra = gt.copy()
    extra[:, 0] += 100
    r = score_identity(gt, np.vstack([gt, extra]))
    assert r["false_positives"] == 0 and r["frames"] == 20
    assert score_identity(gt, np.vstack([gt, extra]), clip_to_gt=False)["false_positives"] == 40


def test_iou_distance_matches_hand_values():
    d = iou_distance(np.array([[0, 0, 10, 10], [5, 5, 10, 10]]), np.array([[0, 0, 10, 10], [20, 20, 5, 5]]), 0.9)
    assert d[0, 0] == 0.0 and np.isnan(d[0, 1]) and np.isnan(d[1, 1])
    assert d[1, 0] == pytest.approx(1 - 25 / 175)


def test_mot_rows_from_tracker_output():
    rows = mot_rows([0, 0, 1], [7, 3, 7], np.array([[10, 20, 30, 60], [0, 0, 5, 5], [12, 20, 32, 60]]))
    np.testing.assert_allclose(rows, [[1, 3, 0, 0, 5, 5], [1, 7, 10, 20, 20, 40], [2, 7, 12, 20, 20, 40]])
    with pytest.raises(ValueError, match="disagree"):
        mot_rows([0], [1, 2], np.zeros((1, 4)))


def test_write_read_round_trip(tmp_path):
    rows = _two_walkers(5)
    rows[:, 2] += 0.25
    path = write_mot(tmp_path / "sub" / "gt.txt", rows[::-1])
    assert path.read_text().splitlines()[0] == "1,1,12.25,50.00,20.00,50.00,1,-1,-1,-1"
    np.testing.assert_allclose(read_mot(path), rows)
    assert not [p for p in path.parent.iterdir() if p.name != "gt.txt"]  # no temporary file left


@pytest.mark.parametrize(
    ("text", "match"),
    [("1,1,0,0,10\n", "malformed"), ("1,1,a,0,10,10\n", "malformed"), ("0,1,0,0,10,10\n", "invalid"),
     ("1,1,0,0,-3,10\n", "invalid"), ("1,1,0,0,10,10\n1,1,5,5,10,10\n", "twice")],
)
def test_bad_file_is_input_file_error(tmp_path, text, match):
    bad = tmp_path / "bad.txt"
    bad.write_text(text)
    with pytest.raises(InputFileError, match=match):
        read_mot(bad)
    with pytest.raises(InputFileError, match="cannot be read"):
        read_mot(tmp_path / "missing.txt")


def test_ground_truth_file_is_sane():
    gt = read_mot(GT_FILE)
    frames, ids = gt[:, 0].astype(int), gt[:, 1].astype(int)
    assert set(frames) == set(range(1, 301))  # every frame 1..300 has at least one person
    assert len({(f, i) for f, i in zip(frames, ids, strict=True)}) == len(gt)
    x, y, w, h = gt[:, 2], gt[:, 3], gt[:, 4], gt[:, 5]
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= 480).all() and (y + h <= 360).all()  # vtest is 480x360
    assert (h >= 22).all() and (w > 5).all()
    lengths = np.bincount(ids)[np.unique(ids)]
    assert 10 <= len(lengths) <= 20 and lengths.mean() > 100  # ids persist: people kept through crossings
    assert score_identity(gt, gt)["idf1"] == pytest.approx(1.0)
