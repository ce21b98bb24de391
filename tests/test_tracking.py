"""Temporal smoothing and tracking: One-Euro against its formula, jitter reduction, token smoothing, IoU, track ids."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_pct.core.geometry import box_iou
from edge_pct.stream.filters import OneEuroFilter, TokenSmoother, mean_acceleration, smoothing_factor
from edge_pct.stream.tracking import Tracker, box_from_pose


def test_one_euro_matches_the_formula_step_by_step():
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.5, d_cutoff_hz=1.0)
    dt, height = 0.1, 100.0
    assert f(np.array([10.0]), 0.0, height)[0] == 10.0  # first sample passes through
    # Second sample by hand: dx = (20 - 10) / dt = 100; a_d = 1 / (1 + 1 / (2 pi 1 0.1)); dx_hat = a_d * 100.
    a_d = 1 / (1 + 1 / (2 * math.pi * 1.0 * dt))
    dx_hat = a_d * 100.0
    cutoff = 1.0 + 0.5 * dx_hat / height  # speed in person heights per second
    a = 1 / (1 + 1 / (2 * math.pi * cutoff * dt))
    expected = a * 20.0 + (1 - a) * 10.0
    assert f(np.array([20.0]), dt, height)[0] == pytest.approx(expected, rel=1e-6)
    assert smoothing_factor(1.0, dt) == pytest.approx(a_d)


def test_one_euro_is_scale_free_in_person_heights():
    """Scaling the coordinates and the person height together scales the output exactly."""
    rng = np.random.default_rng(0)
    xs = np.cumsum(rng.normal(size=(30, 17, 2)), axis=0)
    small, large = OneEuroFilter(beta=3.0), OneEuroFilter(beta=3.0)
    for i, x in enumerate(xs):
        a, b = small(x, i / 30, 50.0), large(4 * x, i / 30, 200.0)
    np.testing.assert_allclose(b, 4 * a, rtol=1e-4)


def test_smoothing_reduces_jitter_on_a_noisy_track_and_follows_it():
    rng = np.random.default_rng(0)
    t = np.arange(120) / 30.0
    truth = np.stack([100 + 40 * np.sin(t), 200 + 20 * np.cos(t)], -1)[:, None, :].repeat(17, 1)  # slow motion
    noisy = truth + rng.normal(scale=3.0, size=truth.shape)
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=2.0)
    smooth = np.stack([f(x, ti, 200.0) for x, ti in zip(noisy, t, strict=True)])
    assert mean_acceleration(smooth) < 0.3 * mean_acceleration(noisy)
    assert np.abs(smooth[30:] - truth[30:]).mean() < np.abs(noisy[30:] - truth[30:]).mean()


def test_a_joint_the_model_barely_sees_moves_less_not_more():
    rng = np.random.default_rng(0)
    noisy = 100 + rng.normal(scale=4.0, size=(60, 17, 2))
    conf = np.where(np.arange(17) < 8, 0.9, 0.05)  # joints 8.. hidden
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=2.0, confidence_ref=0.3)
    out = np.stack([f(x, i / 30, 200.0, conf) for i, x in enumerate(noisy)])
    seen, hidden = mean_acceleration(out[:, :8]), mean_acceleration(out[:, 8:])
    assert hidden < 0.5 * seen
    plain = OneEuroFilter(min_cutoff_hz=1.0, beta=2.0)
    ref = np.stack([plain(x, i / 30, 200.0) for i, x in enumerate(noisy)])
    np.testing.assert_allclose(out[:, :8], ref[:, :8], rtol=1e-6)  # seen joints: the plain filter


def test_mean_acceleration_of_uniform_motion_is_zero_and_relative_scale_divides():
    line = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 17, 2), np.float32)
    assert mean_acceleration(line) == pytest.approx(0.0)
    bumpy = line.copy()
    bumpy[5] += 1.0  # acceleration sqrt(2), -2 sqrt(2), sqrt(2) at frames 4, 5, 6
    assert mean_acceleration(bumpy) == pytest.approx(4 * math.sqrt(2) / 8)
    assert mean_acceleration(bumpy, np.full(10, 2.0)) == pytest.approx(2 * math.sqrt(2) / 8)


def test_token_smoother_averages_distributions():
    s = TokenSmoother(weight=0.5)
    a = np.zeros((2, 4), np.float32)
    a[:, 0] = 1
    b = np.zeros((2, 4), np.float32)
    b[:, 1] = 1
    np.testing.assert_array_equal(s(a), a)
    out = s(b)
    np.testing.assert_allclose(out[:, :2], 0.5)
    np.testing.assert_allclose(out.sum(-1), 1.0)
    with pytest.raises(ValueError):
        TokenSmoother(0.0)


def test_box_iou_and_box_from_pose():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0]])
    joints = np.array([[0, 0], [10, 20]] + [[5, 10]] * 15, np.float32)
    conf = np.ones(17, np.float32)
    box = box_from_pose(joints, conf)
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, [5, 10])
    np.testing.assert_allclose(box[2:] - box[:2], [12, 24])  # 1.2x the joint bounds


def _pose_in(box: np.ndarray) -> np.ndarray:
    """17 joints spread over a box (a stand-in pose whose bounds are the box shrunk by 1.2)."""
    rng = np.random.default_rng(1)
    c, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 / 1.2
    pts = c + rng.uniform(-1, 1, size=(17, 2)) * half
    pts[0], pts[1] = c - half, c + half
    return pts.astype(np.float32)


def test_tracker_keeps_ids_when_detections_come_in_any_order():
    tracker = Tracker(filter_args=None)
    boxes = np.array([[0, 0, 50, 100], [200, 0, 250, 100]], np.float32)
    ids = []
    for step in range(20):
        moved = boxes + np.array([3 * step, 0, 3 * step, 0], np.float32)
        if step % 5 == 0:  # detector frames, detections listed in reverse order every other time
            tracker.assign(moved[::-1] if step % 10 == 0 else moved)
        tracks = list(tracker.tracks)
        order = [int(np.argmin([abs(t.box[0] - b[0]) for b in moved])) for t in tracks]
        poses = np.stack([_pose_in(moved[i]) for i in order])
        tracker.update(tracks, poses, np.full((len(tracks), 17), 0.9, np.float32), step / 30)
        ids.append({t.track_id: round(float(t.box[0])) for t in tracker.tracks})
    assert all(len(frame) == 2 for frame in ids)
    left_id = min(ids[0], key=ids[0].get)
    assert all(min(frame, key=frame.get) == left_id for frame in ids)  # the left person keeps its id


def test_tracker_drops_lost_and_duplicate_tracks_and_caps_new_ones():
    tracker = Tracker(filter_args=None, max_tracks=2, lost_score=0.2, lost_frames=1)
    tracker.assign(np.array([[0, 0, 50, 100], [2, 0, 52, 100], [300, 0, 350, 100]], np.float32))
    assert len(tracker.tracks) == 2  # capped at max_tracks; equal sizes: the first detections kept
    tracks = list(tracker.tracks)
    same = _pose_in(np.array([0, 0, 50, 100], np.float32))
    tracker.update(tracks, np.stack([same, same]), np.array([np.full(17, 0.9), np.full(17, 0.8)]), 0.0)
    assert len(tracker.tracks) == 2  # the detector saw two people there: one may stand behind the other
    tracker.assign(np.array([[0, 0, 50, 100]], np.float32))  # now it sees one: the other track is a duplicate
    tracker.update(list(tracker.tracks), np.stack([same, same]), np.array([np.full(17, 0.9), np.full(17, 0.8)]), 0.05)
    assert [t.score for t in tracker.tracks] == [pytest.approx(0.9)]  # the duplicate with the lower score is gone
    tracker.update(list(tracker.tracks), same[None], np.full((1, 17), 0.1), 0.1)
    assert tracker.tracks == []  # below lost_score (lost_frames 1)


def test_two_people_detected_apart_stay_two_tracks_when_their_poses_overlap():
    """A pose pulled onto the neighbour for a frame (the heatmap refinement can do that) costs no id: tracks whose
    detector boxes did not overlap are not duplicates, and the next detection puts each back on its person."""
    tracker = Tracker(filter_args=None)
    left, right = np.array([0, 0, 50, 100], np.float32), np.array([45, 0, 95, 100], np.float32)
    tracker.assign(np.stack([left, right]))
    ids = [t.track_id for t in tracker.tracks]
    both_left = np.stack([_pose_in(left), _pose_in(left)])
    tracker.update(list(tracker.tracks), both_left, np.array([np.full(17, 0.9), np.full(17, 0.8)]), 0.0)
    assert [t.track_id for t in tracker.tracks] == ids
    tracker.assign(np.stack([left, right]))
    assert [t.track_id for t in tracker.tracks] == ids
    np.testing.assert_allclose(tracker.tracks[1].box, right)


def test_tracker_hides_a_low_track_and_ends_it_after_lost_frames():
    tracker = Tracker(filter_args=None, lost_score=0.2, lost_frames=2)
    tracker.assign(np.array([[0, 0, 50, 100]], np.float32))
    pose = _pose_in(np.array([0, 0, 50, 100], np.float32))[None]
    track = tracker.tracks[0]
    for score, alive, visible in ((0.9, True, True), (0.1, True, False), (0.9, True, True), (0.1, True, False),
                                  (0.1, False, False)):
        tracker.update(list(tracker.tracks), pose, np.full((1, 17), score), 0.0)
        assert (track in tracker.tracks, track.visible) == (alive, visible), score


def test_a_track_the_detector_misses_ends_after_missed_detections_and_frees_its_slot():
    tracker = Tracker(filter_args=None, max_tracks=2, missed_detections=2)
    tracker.assign(np.array([[0, 0, 50, 100], [300, 0, 350, 100]], np.float32))
    first_ids = [t.track_id for t in tracker.tracks]
    tracker.assign(np.array([[2, 0, 52, 100], [600, 0, 650, 100]], np.float32))  # person 2 unseen, person 3 came
    assert [t.track_id for t in tracker.tracks] == first_ids  # one blink costs no id; no room for person 3 yet
    assert tracker.unadmitted == 1  # ... and that is counted, not silent
    tracker.assign(np.array([[4, 0, 54, 100], [600, 0, 650, 100]], np.float32))  # person 2 missed twice: ended
    assert tracker.unadmitted == 0 and len(tracker.tracks) == 2  # person 3 has a tentative track ...
    tracker.assign(np.array([[6, 0, 56, 100], [602, 0, 652, 100]], np.float32))
    assert [t.track_id for t in tracker.tracks] == [first_ids[0], max(first_ids) + 1]  # ... confirmed when seen again


def test_a_box_the_detector_gives_once_is_posed_but_costs_no_id():
    tracker = Tracker(filter_args=None, missed_detections=3)
    tracker.assign(np.array([[0, 0, 50, 100]], np.float32))  # the stream's first run: confirmed at once
    assert [(t.track_id, t.visible) for t in tracker.tracks] == [(1, True)]
    tracker.assign(np.array([[1, 0, 51, 100], [400, 0, 450, 100]], np.float32))  # a flicker at x=400
    ghost = tracker.tracks[1]
    assert not ghost.visible and ghost.track_id == 0  # posed (it is in tracks), not shown, no id spent
    tracker.assign(np.array([[2, 0, 52, 100]], np.float32))  # gone at the next run: dropped at once
    assert ghost not in tracker.tracks
    tracker.assign(np.array([[3, 0, 53, 100], [200, 0, 250, 100]], np.float32))
    tracker.assign(np.array([[4, 0, 54, 100], [202, 0, 252, 100]], np.float32))  # a real person: seen twice
    assert [t.track_id for t in tracker.tracks] == [1, 2] and all(t.visible for t in tracker.tracks)


def test_weak_detections_keep_tracks_alive_but_start_none():
    tracker = Tracker(filter_args=None, missed_detections=1, new_track_score=0.3)
    tracker.assign(np.array([[0, 0, 50, 100, 0.9]], np.float32))
    track_id = tracker.tracks[0].track_id
    tracker.assign(np.array([[3, 0, 53, 100, 0.15], [300, 0, 350, 100, 0.2]], np.float32))  # half hidden + a weak new
    assert [t.track_id for t in tracker.tracks] == [track_id]
    np.testing.assert_allclose(tracker.tracks[0].box, [3, 0, 53, 100])


def test_an_ended_track_takes_its_id_back_where_it_moved_to():
    """A person who walks behind a pillar: the track ends, and a detection where the box would be by now at the
    track's last speed gets the old id; one far away gets a new id."""
    tracker = Tracker(filter_args=None, missed_detections=1, lost_memory_s=1.0)
    for step in range(5):  # walking right at 10 px per frame, 10 frames per second
        box = np.array([10 * step, 0, 10 * step + 50, 100], np.float32)
        tracker.assign(box[None], step / 10)
        tracker.update(list(tracker.tracks), _pose_in(box)[None], np.full((1, 17), 0.9, np.float32), step / 10)
    walker = tracker.tracks[0].track_id
    tracker.assign(np.zeros((0, 5), np.float32), 0.5)  # hidden: the track ends
    assert tracker.tracks == []
    tracker.assign(np.array([[600, 0, 650, 100], [100, 0, 150, 100]], np.float32), 1.0)  # 5 frames on: x = 90 + 10
    tracker.assign(np.array([[605, 0, 655, 100], [105, 0, 155, 100]], np.float32), 1.05)  # the newcomer: seen twice
    ids = {600 if t.box[0] > 300 else 100: t.track_id for t in tracker.tracks}
    assert ids[100] == walker and ids[600] not in (0, walker)
    tracker.assign(np.zeros((0, 5), np.float32), 1.1)
    tracker.assign(np.array([[100, 0, 150, 100]], np.float32), 3.5)  # gone longer than lost_memory_s
    tracker.assign(np.array([[100, 0, 150, 100]], np.float32), 3.6)
    assert tracker.tracks[0].track_id not in (walker, ids[600])


def test_a_collapsed_pose_shrinks_the_next_box_only_gradually():
    tracker = Tracker(filter_args=None)
    tracker.assign(np.array([[0, 0, 100, 200]], np.float32))
    collapsed = np.full((1, 17, 2), 50.0, np.float32)  # every joint on one point
    tracker.update(list(tracker.tracks), collapsed, np.full((1, 17), 0.9, np.float32), 0.0)
    box = tracker.tracks[0].box
    np.testing.assert_allclose(box[2:] - box[:2], [80, 160])  # 0.8 of the previous size, not zero
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, [50, 50])


def test_a_track_whose_pose_box_drifted_still_matches_its_last_detection():
    """A weak pose can pull the pose-driven box off the person between detector runs; the next detection of the
    same person still matches through the track's last detector box and keeps the id."""
    tracker = Tracker(filter_args=None)
    tracker.assign(np.array([[0, 0, 50, 100]], np.float32))
    track_id = tracker.tracks[0].track_id
    drifted = _pose_in(np.array([120, 0, 170, 100], np.float32))  # no overlap with the person any more
    tracker.update(list(tracker.tracks), drifted[None], np.full((1, 17), 0.9, np.float32), 0.0)
    assert box_iou(tracker.tracks[0].box, np.array([4, 0, 54, 100], np.float32)).max() < tracker.iou_match
    tracker.assign(np.array([[4, 0, 54, 100]], np.float32))
    assert [t.track_id for t in tracker.tracks] == [track_id]


def test_matched_tracks_keep_their_slots_when_the_detector_returns_more_boxes():
    """With more detector boxes than max_tracks, tracked persons stay tracked even when new, higher-scored boxes
    come first; new persons only fill free slots."""
    tracker = Tracker(filter_args=None, max_tracks=2)
    tracker.assign(np.array([[0, 0, 50, 100], [300, 0, 350, 100]], np.float32))
    ids = sorted(t.track_id for t in tracker.tracks)
    tracker.assign(np.array([[600, 0, 650, 100], [800, 0, 850, 100], [2, 0, 52, 100], [302, 0, 352, 100]],
                            np.float32))
    assert sorted(t.track_id for t in tracker.tracks) == ids


def test_counts_below_one_are_config_errors():
    from edge_pct.core.errors import ConfigError

    for kwargs in ({"lost_frames": 0}, {"missed_detections": 0}, {"max_tracks": 0}):
        with pytest.raises(ConfigError, match="must be >= 1"):
            Tracker(**kwargs)


def test_frames_without_detections_end_the_unmatched_tracks():
    tracker = Tracker(filter_args=None, missed_detections=2)
    tracker.assign(np.array([[0, 0, 50, 100, 0.9]], np.float32))
    assert len(tracker.tracks) == 1
    tracker.assign(np.zeros((0, 5), np.float32))  # what a box detector returns on an empty frame
    assert len(tracker.tracks) == 1
    tracker.assign(np.zeros((0, 5), np.float32))
    assert tracker.tracks == []
    tracker.assign(np.zeros((0, 5), np.float32))  # and with no track either
    assert tracker.tracks == []


def test_new_persons_are_admitted_largest_first_up_to_max_tracks():
    tracker = Tracker(filter_args=None, max_tracks=2)
    tracker.assign(np.array([[0, 0, 20, 40], [100, 0, 180, 160], [300, 0, 340, 80]], np.float32))
    assert sorted(round(float(t.box[0])) for t in tracker.tracks) == [100, 300]
    assert tracker.unadmitted == 1


def test_joint_threshold_decides_which_joints_draw_the_next_box():
    pose = np.stack([np.linspace(0, 160, 17), np.linspace(0, 200, 17)], 1).astype(np.float32)
    conf = np.where(np.arange(17) < 9, 0.9, 0.4).astype(np.float32)  # the lower 8 joints half-seen
    boxes = {}
    for thr in (0.3, 0.5):
        tracker = Tracker(filter_args=None, joint_threshold=thr)
        tracker.assign(np.array([[0, 0, 160, 200]], np.float32))
        tracker.update(list(tracker.tracks), pose[None], conf[None], 0.0)
        boxes[thr] = tracker.tracks[0].box
    assert boxes[0.5][3] < boxes[0.3][3]  # at 0.5 the half-seen lower joints no longer stretch the box down


def test_tracker_defaults_are_the_stream_configs():
    from edge_pct.config import StreamConfig

    t, c = Tracker(), StreamConfig()
    assert (t.lost_score, t.lost_frames, t.max_tracks, t.joint_threshold) == (c.lost_score, c.lost_frames,
                                                                              c.max_persons, c.joint_threshold)


def test_the_tracker_keeps_the_hand_checked_ids_of_vtest_through_detector_blinks():
    """The labelled clip (tests/data/ids/vtest_ids.txt: 12 people, 300 frames, crossings, people standing behind a
    sign) as detections with a quarter of them dropped at random and 1 px of noise: the tracker keeps most ids
    (IDF1 0.72, 19 ids when written), far better than one that ends a track at the first missed detection (0.10)."""
    pytest.importorskip("motmetrics", reason="the identity scorer needs motmetrics (the test extra)")
    from pathlib import Path

    from edge_pct.eval.identity import mot_rows, read_mot, score_identity

    gt = read_mot(Path(__file__).parent / "data" / "ids" / "vtest_ids.txt")
    rng = np.random.default_rng(0)

    def run(**kwargs) -> dict:
        tracker = Tracker(filter_args=None, **kwargs)
        rows = []
        for f in range(1, int(gt[:, 0].max()) + 1):
            g = gt[(gt[:, 0] == f) & (rng.random(len(gt)) > 0.25)]
            boxes = np.c_[g[:, 2:4], g[:, 2:4] + g[:, 4:6]] + rng.normal(scale=1.0, size=(len(g), 4))
            tracker.assign(np.c_[boxes, np.full(len(g), 0.9)].astype(np.float32), f / 10)
            tracks = list(tracker.tracks)
            if tracks:
                poses = np.stack([_pose_in(t.box) for t in tracks])
                tracker.update(tracks, poses, np.full((len(tracks), 17), 0.9, np.float32), f / 10)
            rows += [(f - 1, t.track_id, *t.detected_box) for t in tracker.tracks if t.missed == 0]
        r = np.array(rows)
        return score_identity(gt, mot_rows(r[:, 0], r[:, 1], r[:, 2:]))

    ours, blink_ends = run(), run(missed_detections=1, lost_memory_s=0.0)
    assert ours["idf1"] >= 0.65 and ours["hyp_ids"] <= 25
    assert blink_ends["hyp_ids"] > 10 * ours["hyp_ids"] and ours["idf1"] > 3 * blink_ends["idf1"]


def test_the_box_motion_learns_a_walkers_speed_and_predicts_where_the_next_box_is():
    from edge_pct.stream.motion import BoxMotion

    def box(t):  # 100 px wide-ish person walking right at 120 px / s, growing 10 px / s (coming closer)
        return np.array([120 * t, 0, 120 * t + 50, 100 + 10 * t], np.float32)

    motion = BoxMotion(box(0.0), 0.0)
    np.testing.assert_allclose(motion.predict(0.5), box(0.0), atol=1e-4)  # nothing known of its speed yet
    for step in range(1, 13):
        motion.update(box(step / 25), step / 25)
    np.testing.assert_allclose(motion.velocity, [120, 5], atol=6)  # centre: x 120 px / s, y half the growth
    guess, stale = motion.predict(1.0), box(12 / 25)
    assert np.abs(guess - box(1.0)).max() < 8 < np.abs(stale - box(1.0)).max()  # 0.5 s ahead, within a few px
    np.testing.assert_allclose(BoxMotion(box(0.0), None).predict(3.0), box(0.0))  # no times: stays put
