"""The Python API (`edge_pct.PoseEstimator`): frames in, persons out, the same poses as the pipeline it wraps, and
the README's quick start running as written."""

from __future__ import annotations

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from test_export import tiny_checkpoint
from test_pipeline import _frame, _write_video

import edge_pct
from conftest import REPO, SHARED_DATA, require_data
from edge_pct.config import StreamConfig
from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.engines.runtime import TorchBackend
from edge_pct.stream.detectors.factory import CentreRoiDetector
from edge_pct.stream.pipeline import PosePipeline


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("api") / "tiny.pt")


def test_the_api_is_lazy_and_offers_the_estimator():
    code = "import sys, edge_pct; print(sorted(m for m in ('torch', 'onnxruntime', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert edge_pct.PoseEstimator.__name__ == "PoseEstimator" and edge_pct.Person.__name__ == "PersonPose"
    with pytest.raises(AttributeError, match="no attribute 'Pose'"):
        edge_pct.Pose  # noqa: B018


def test_a_frame_gives_persons_in_frame_pixels_with_the_pipelines_poses(tiny_pt):
    cfg = StreamConfig(lost_score=0.0)
    est = edge_pct.PoseEstimator(tiny_pt, backend="torch", detector="track", config=cfg)
    assert est.description == {"backend": "torch", "precision": "fp32", "input_size": [48, 64], "detector": "track"}
    ref = PosePipeline(TorchBackend(tiny_pt), CentreRoiDetector(), cfg)
    for step, cx in enumerate((60, 64, 68)):
        frame = _frame(cx)
        persons = est(frame, t_s=step / 10)
        expected = ref.process(frame, step / 10).persons
        assert len(persons) == len(expected) == 1
        p = persons[0]
        assert p.joints.shape == (17, 2) and p.joints.dtype == np.float32 and p.confidence.shape == (17,)
        assert p.box.shape == (4,) and 0.0 <= p.score <= 1.0 and p.track_id == expected[0].track_id
        np.testing.assert_allclose(p.joints, expected[0].joints, atol=1e-4)
        # frame px: the first frame's box is the whole frame (the track detector), joints around it
        assert (p.joints[:, 0] > -80).all() and (p.joints[:, 0] < 240).all()
    assert est.last is not None and set(est.last.stage_ms) == {"detect", "crop", "infer", "post"}
    est.close()


def test_stream_yields_every_frame_and_restarts_tracks(tiny_pt, tmp_path):
    video = tmp_path / "walk.avi"
    _write_video(video, frames=6)
    with edge_pct.PoseEstimator(tiny_pt, backend="torch", detector="track",
                                config=StreamConfig(lost_score=0.0)) as est:
        first = [(frame.shape, [p.track_id for p in persons]) for frame, persons in est.stream(video)]
        again = [[p.track_id for p in persons] for _, persons in est.stream(video, max_frames=3)]
    assert len(first) == 6 and all(shape == (120, 160, 3) for shape, _ in first)
    assert {tuple(ids) for _, ids in first} == {(1,)} and again == [[1], [1], [1]]  # a new stream: ids anew


def test_options_reach_the_pipeline_and_bad_ones_fail_cleanly(tiny_pt, tmp_path):
    est = edge_pct.PoseEstimator(tiny_pt, backend="torch", detector="track", max_persons=3, smoothing=False)
    assert est.config.max_persons == 3 and est.config.smoothing is False
    assert est.pipeline.tracker.max_tracks == 3 and est.pipeline.tracker.filter_args is None
    with pytest.raises(InputFileError, match="not found"):
        edge_pct.PoseEstimator(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="Did you mean 'onnx'"):
        edge_pct.PoseEstimator(tiny_pt, backend="torch", detector="onxx")


def _readme_quick_start() -> str:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python quick start"
    return blocks[0]


def test_the_readme_quick_start_runs_as_written(tmp_path):
    pytest.importorskip("onnxruntime", reason="the default backend and detector need onnxruntime")
    require_data(SHARED_DATA / "videos" / "vtest.avi")
    env = {"EDGE_PCT_CACHE": str(tmp_path / "cache"), "PATH": "", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", _readme_quick_start()], cwd=REPO, capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert lines, "the quick start printed nothing"
    counts = [int(m.group(1)) for m in map(re.compile(r"(\d+) persons").search, lines) if m]
    assert counts and max(counts) >= 2  # vtest.avi's pedestrians: the shipped detector finds several


def test_an_image_of_nobody_gives_no_person(tiny_pt):
    pytest.importorskip("onnxruntime", reason="the shipped detector needs onnxruntime")
    est = edge_pct.PoseEstimator(tiny_pt, backend="torch")  # the default detector: shipped YOLOX-Nano
    assert est.detector.name == "onnx"
    assert est(cv2.GaussianBlur(np.full((240, 320, 3), 90, np.uint8), (5, 5), 1)) == []
