"""The streaming pipeline on synthetic video: crops map back to image coordinates, a moving person keeps its
track id, a vanished one is dropped, detection runs on schedule, every backend output path (token smoothing
through the decoder) works with a real tiny model, and `edge-pct bench` writes its JSON (bad video: exit 2)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge_pct.config import StreamConfig
from edge_pct.stream.detectors.factory import CentreRoiDetector
from edge_pct.stream.pipeline import STAGES, PosePipeline

W, H = 160, 120


class BlobBackend:
    """A stand-in pose model: finds the white blob in each crop and puts 17 joints on the diagonal of its bounds
    (crop px); confidence 0.9 when a blob is there, 0.05 when the crop is empty."""

    name, precision, input_size, max_batch = "blob", "fp32", (48, 64), None

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        joints, conf = [], []
        for img in images:
            ys, xs = np.nonzero(img[0] > 128)
            found = len(xs) > 0
            lo, hi = (np.array([xs.min(), ys.min()]), np.array([xs.max(), ys.max()])) if found else ([20, 20], [28, 44])
            joints.append(np.linspace(lo, hi, 17))
            conf.append(np.full(17, 0.9 if found else 0.05))
        n = len(images)
        return {"joints": np.asarray(joints, np.float32), "confidence": np.asarray(conf, np.float32),
                "token_probs": np.full((n, 2, 3), 1 / 3, np.float32)}

    def decode(self, token_probs: np.ndarray) -> np.ndarray:
        raise AssertionError("token smoothing is off in these tests")


class CountingDetector:
    """Returns fixed boxes and counts its calls."""

    name = "fixed"

    def __init__(self, boxes: np.ndarray) -> None:
        self.boxes, self.calls = boxes, 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.boxes

    def close(self) -> None:
        pass


def _frame(cx: float | None) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    if cx is not None:
        cv2.rectangle(img, (int(cx) - 6, 40), (int(cx) + 6, 80), (255, 255, 255), -1)
    return img


def test_a_moving_person_is_followed_in_image_coordinates_with_one_id():
    pipe = PosePipeline(BlobBackend(), CentreRoiDetector(), StreamConfig(smoothing=False))
    ids, centres = set(), []
    for i in range(30):
        cx = 40 + 2 * i
        res = pipe.process(_frame(cx), i / 30)
        assert len(res.persons) == 1 and res.detected == (i == 0)  # the model-free detector only starts the track
        person = res.persons[0]
        ids.add(person.track_id)
        centres.append(person.joints.mean(0))
        # within half a crop pixel (the first, whole-frame crop has about 4 image px per crop px)
        assert abs(person.joints.mean(0)[0] - cx) < 2.5 and abs(person.joints.mean(0)[1] - 60) < 2.5
    assert ids == {1}
    assert set(res.stage_ms) == set(STAGES)


def test_a_person_missing_for_a_frame_keeps_the_id_and_one_gone_for_lost_frames_is_dropped():
    cfg = StreamConfig(smoothing=False)
    pipe = PosePipeline(BlobBackend(), CentreRoiDetector(), cfg)
    assert cfg.lost_frames == 3 and pipe.process(_frame(60), 0.0).persons[0].track_id == 1
    assert pipe.process(_frame(None), 0.1).persons == []  # confidence 0.05 < lost_score: hidden, not shown
    assert [p.track_id for p in pipe.process(_frame(60), 0.2).persons] == [1]  # back: the same id
    for i in range(cfg.lost_frames):  # gone for lost_frames frames in a row: the track ends
        assert pipe.process(_frame(None), 0.3 + i / 10).persons == []
    res = pipe.process(_frame(100), 0.3 + cfg.lost_frames / 10 + cfg.lost_memory_s)  # past the ended tracks' memory
    assert res.detected and [p.track_id for p in res.persons] == [2]


def test_a_model_detector_runs_on_schedule_and_when_confidence_drops():
    det = CountingDetector(np.array([[30, 30, 90, 90, 0.9]], np.float32))
    pipe = PosePipeline(BlobBackend(), det, StreamConfig(smoothing=False, detect_every=4))
    for i in range(9):
        pipe.process(_frame(60), i / 30)
    assert det.calls == 3  # frames 0, 4, 8
    pipe.cfg = StreamConfig(smoothing=False, detect_every=100, redetect_score=0.95)  # 0.9 < 0.95: re-detect
    pipe.process(_frame(60), 1.0)
    pipe.process(_frame(60), 1.1)
    assert det.calls == 5


def test_a_newcomer_is_shown_after_the_next_frame_detects_it_again():
    det = CountingDetector(np.array([[30, 30, 90, 90, 0.9]], np.float32))
    pipe = PosePipeline(BlobBackend(), det, StreamConfig(smoothing=False, detect_every=100))
    assert [p.track_id for p in pipe.process(_frame(60), 0.0).persons] == [1]  # the first frame's people: at once
    two = np.maximum(_frame(60), _frame(125))
    det.boxes = np.array([[30, 30, 90, 90, 0.9], [100, 30, 150, 90, 0.9]], np.float32)
    pipe.process(two, 0.1)  # no detection due: nothing new
    pipe.cfg = StreamConfig(smoothing=False, detect_every=1)
    assert [p.track_id for p in pipe.process(two, 0.2).persons] == [1]  # a newcomer: tentative
    pipe.cfg = StreamConfig(smoothing=False, detect_every=100)
    calls = det.calls
    res = pipe.process(two, 0.3)  # detect_every 100, but a tentative track asks for the detector now
    assert det.calls == calls + 1 and sorted(p.track_id for p in res.persons) == [1, 2]


def test_every_detected_person_is_posed_or_counted_and_a_pose_budget_poses_the_largest_first():
    boxes = np.array([[0, 30, 30, 90, 0.9], [50, 20, 100, 100, 0.9], [120, 40, 140, 80, 0.9]], np.float32)
    frame = _frame(None)
    for x1, y1, x2, y2, _ in boxes.astype(int):
        cv2.rectangle(frame, (x1 + 8, y1 + 8), (x2 - 8, y2 - 8), (255, 255, 255), -1)
    capped = PosePipeline(BlobBackend(), CountingDetector(boxes), StreamConfig(smoothing=False, max_persons=2))
    res = capped.process(frame, 0.0)
    assert (len(res.persons), res.unposed) == (2, 1)  # the cap is visible, not silent
    everyone = PosePipeline(BlobBackend(), CountingDetector(boxes), StreamConfig(smoothing=False))
    assert (len(everyone.process(frame, 0.0).persons), everyone.process(frame, 0.1).unposed) == (3, 0)
    tight = PosePipeline(BlobBackend(), CountingDetector(boxes), StreamConfig(smoothing=False, pose_budget_ms=1e-6))
    assert len(tight.process(frame, 0.0).persons) == 3  # the first frame measures the per-person time
    res = tight.process(frame, 0.1)
    assert (len(res.persons), res.unposed) == (1, 2)
    assert res.persons[0].box[2] - res.persons[0].box[0] > 40  # the largest (nearest) person is the one posed


@pytest.mark.parametrize("key, value", [("max_persons", 0), ("pose_budget_ms", -1), ("missed_detections", 0),
                                        ("detector_score", 0.7)])
def test_stream_values_the_pipeline_cannot_run_with_exit_2_with_one_line(key, value, capsys):
    from edge_pct.cli import main

    code = main(["bench", "--video", "missing.avi", "--set", f"stream.{key}={value}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"stream.{key}" in err


def test_smoothing_keeps_a_still_pose_steady():
    rng = np.random.default_rng(0)
    raw = PosePipeline(BlobBackend(), CentreRoiDetector(), StreamConfig(smoothing=False))
    smooth = PosePipeline(BlobBackend(), CentreRoiDetector(), StreamConfig(smoothing=True, min_cutoff_hz=0.5))
    xs = {"raw": [], "smooth": []}
    for i in range(40):
        frame = _frame(80 + rng.integers(-2, 3))  # a still person seen with 2 px detection noise
        xs["raw"].append(raw.process(frame, i / 30).persons[0].joints[0, 0])
        xs["smooth"].append(smooth.process(frame, i / 30).persons[0].joints[0, 0])
    assert np.std(np.diff(xs["smooth"][10:])) < 0.5 * np.std(np.diff(xs["raw"][10:]))


def test_token_smoothing_runs_the_decoder_of_a_real_tiny_model(tmp_path):
    from test_export import tiny_checkpoint

    from edge_pct.engines.runtime import TorchBackend

    backend = TorchBackend(tiny_checkpoint(tmp_path / "tiny.pt"))
    cfg = StreamConfig(token_weight=0.5)
    pipe = PosePipeline(backend, CentreRoiDetector(), cfg)
    pipe.cfg = StreamConfig(token_weight=0.5, lost_score=0.0)  # a random model's confidence may be low
    pipe.reset()
    frames = [np.random.default_rng(i).integers(0, 255, (H, W, 3), dtype=np.uint8) for i in range(3)]
    results = [pipe.process(f, i / 30) for i, f in enumerate(frames)]
    assert all(len(r.persons) == 1 for r in results)
    person = results[-1].persons[0]
    assert person.joints.shape == (17, 2) and np.isfinite(person.joints).all()
    assert person.confidence.shape == (17,) and ((person.confidence >= 0) & (person.confidence <= 1)).all()
    assert results[-1].stage_ms["infer"] > 0


def _write_video(path, frames: int = 8) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for i in range(frames):
        writer.write(_frame(40 + 5 * i))
    writer.release()


def test_bench_command_writes_the_documented_json(tmp_path, capsys):
    from test_export import tiny_checkpoint

    from edge_pct.cli import main

    video = tmp_path / "walk.avi"
    _write_video(video)
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    out, saved = tmp_path / "bench.json", tmp_path / "overlay.avi"
    code = main(["bench", "--video", str(video), "--model", str(ckpt), "--backend", "torch", "--save", str(saved),
                 "--detector", "track", "--set", "stream.lost_score=0.0", "--json", str(out)])
    assert code == 0
    res = json.loads(out.read_text())
    assert res["frames"] == 8 and res["fps"] > 0 and res["poses_per_s"] > 0 and res["persons_per_frame"] == 1.0
    assert set(res["stage_ms"]) == {"decode", "detect", "crop", "infer", "post", "draw"}
    assert res["backend"] == "torch" and res["detector"] == "track"
    assert res["overlap_frames"] == 0  # one person
    cap = cv2.VideoCapture(str(saved))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    cap.release()
    assert not list(tmp_path.glob(".*tmp*"))


def test_overlap_counts_two_skeletons_on_one_person_not_two_people_side_by_side():
    from edge_pct.stream.bench import _shows_overlap
    from edge_pct.stream.pipeline import PersonPose

    def person(track_id, dx):
        joints = np.stack([np.linspace(10, 30, 17) + dx, np.linspace(10, 90, 17)], axis=1).astype(np.float32)
        return PersonPose(track_id, np.zeros(4, np.float32), joints, np.full(17, 0.9, np.float32), 0.9)

    assert not _shows_overlap([person(1, 0)], 0.6, 0.3)
    assert _shows_overlap([person(1, 0), person(2, 2)], 0.6, 0.3)  # 2 px apart: one person drawn twice
    assert not _shows_overlap([person(1, 0), person(2, 40)], 0.6, 0.3)  # side by side


@pytest.mark.parametrize("make", ["missing", "corrupt"])
def test_bench_on_a_bad_video_exits_2_with_one_line(tmp_path, capsys, make):
    from edge_pct.cli import main

    video = tmp_path / "bad.avi"
    if make == "corrupt":
        video.write_bytes(b"not a video" * 100)
    code = main(["bench", "--video", str(video), "--model", str(tmp_path / "none.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "error" in err
