"""Person detectors of the streaming pipeline: NMS and the YOLOX decode/letterbox on hand-built arrays, the YOLOX
detector on a tiny constant ONNX and (where the shared data is) on the official YOLOX-Nano, the MediaPipe detector,
the centre-ROI `track` detector, and `create_detector`'s name/model resolution and errors."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, require_data
from edge_pct.core.errors import ConfigError, InputFileError, MissingDependencyError
from edge_pct.core.package import DEFAULT_DETECTOR
from edge_pct.stream.detectors.base import Detector, nms
from edge_pct.stream.detectors.factory import DETECTOR_MODEL_ENV, CentreRoiDetector, create_detector
from edge_pct.stream.detectors.mediapipe import landmarks_to_box
from edge_pct.stream.detectors.yolox import YoloxDetector, decode_yolox, letterbox, make_grids, to_input

YOLOX_NANO = SHARED_DATA / "models" / "yolox_nano.onnx"
POSE_TASK = SHARED_DATA / "models" / "pose_landmarker_full.task"
VTEST = SHARED_DATA / "videos" / "vtest.avi"
STREET = SHARED_DATA / "videos" / "street.avi"
CELL = 64 + 1 * 4 + 2  # 64x64 input: 8x8 cells at stride 8, then (gx=2, gy=1) of the 4x4 stride-16 cells


def _first_frame(video: Path) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(require_data(video)))
    ok, frame = cap.read()
    cap.release()
    assert ok, f"cannot read a frame of {video}"
    return frame


def _raw_one_cell() -> np.ndarray:
    """(84, 85) YOLOX output of a 64x64 input: one person at CELL (score 0.9 * 0.8), one car, one weak person."""
    raw = np.zeros((84, 85), np.float32)
    raw[CELL, :6] = [0.5, 0.25, np.log(2), np.log(4), 0.9, 0.8]  # centre (2.5, 1.25) * 16, size (2, 4) * 16
    raw[3, 4], raw[3, 5], raw[3, 6] = 0.9, 0.1, 0.9  # a car: person score 0.09
    raw[80, 4], raw[80, 5] = 0.5, 0.5  # person score 0.25, below 0.3
    return raw


@pytest.fixture(autouse=True)
def _no_detector_env(monkeypatch):
    monkeypatch.delenv(DETECTOR_MODEL_ENV, raising=False)


# -- NMS and the YOLOX math, pure numpy ------------------------------------------------------------------------
def test_nms_hand_checked():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    # IoU(3, 0) = 50 / 100 = 0.5; IoU(3, 1) = 36 / 114 = 0.32; IoU(0, 1) = 81 / 119 = 0.68; box 2 overlaps nothing.
    assert nms(boxes, scores, 0.45).tolist() == [3, 1, 2]
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]  # IoU equal to the threshold is kept (torchvision)
    assert nms(boxes, scores, 0.7).tolist() == [3, 0, 1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_grids_follow_yolox_row_major_order():
    grids, strides = make_grids((64, 64))
    assert grids.shape == (84, 2) and strides.shape == (84,)
    assert grids[CELL].tolist() == [2, 1] and strides[CELL] == 16
    assert grids[9].tolist() == [1, 1] and strides[:64].max() == 8 and strides[-1] == 32
    assert len(make_grids((416, 416))[0]) == 3549
    with pytest.raises(ValueError, match="divisible"):
        make_grids((100, 64))


def test_decode_one_cell_by_hand():
    grids, strides = make_grids((64, 64))
    out = decode_yolox(_raw_one_cell(), grids, strides, ratio=0.5, score_thr=0.3, nms_iou=0.45, max_det=5)
    # canvas box (40 -+ 16, 20 -+ 32) = (24, -12, 56, 52); frame px = canvas px / 0.5
    np.testing.assert_allclose(out, [[48, -24, 112, 104, 0.72]], rtol=1e-6)
    assert out.dtype == np.float32
    clipped = decode_yolox(_raw_one_cell()[None], grids, strides, 0.5, 0.3, 0.45, 5, image_wh=(100, 90))
    np.testing.assert_allclose(clipped, [[48, 0, 100, 90, 0.72]], rtol=1e-6)
    low = decode_yolox(_raw_one_cell(), grids, strides, 0.5, 0.2, 0.45, 5)
    assert len(low) == 2 and low[0, 4] > low[1, 4]  # the weak person now passes, best first
    assert decode_yolox(_raw_one_cell(), grids, strides, 0.5, 0.2, 0.45, 1).shape == (1, 5)
    assert decode_yolox(_raw_one_cell(), grids, strides, 0.5, 0.8, 0.45, 5).shape == (0, 5)
    with pytest.raises(ValueError, match="84 cells"):
        decode_yolox(np.zeros((83, 85), np.float32), grids, strides, 0.5, 0.3, 0.45, 5)


def test_letterbox_pastes_top_left_on_114():
    frame = np.empty((100, 200, 3), np.uint8)
    frame[:] = (10, 20, 30)
    canvas, ratio = letterbox(frame, (64, 64))
    assert ratio == pytest.approx(0.32) and canvas.shape == (64, 64, 3) and canvas.dtype == np.uint8
    assert (canvas[:32] == (10, 20, 30)).all() and (canvas[32:] == 114).all()
    x = to_input(canvas)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x[0, :, 0, 0].tolist() == [10, 20, 30] and x[0, :, 63, 0].tolist() == [114] * 3  # BGR, raw 0-255
    canvas, ratio = letterbox(np.zeros((32, 16, 3), np.uint8), (64, 64))  # small frames are scaled up
    assert ratio == 2.0 and (canvas[:, :32] == 0).all() and (canvas[:, 32:] == 114).all()


# -- YoloxDetector on tiny ONNX graphs -------------------------------------------------------------------------
def _constant_yolox(path: Path, raw: np.ndarray, input_shape: tuple[int, ...] = (1, 3, 64, 64)) -> Path:
    """An ONNX that ignores its image and outputs `raw` (1, A, 85): the YOLOX format without the network."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    const = helper.make_node("Constant", [], ["output"], value=numpy_helper.from_array(raw[None], "raw"))
    graph = helper.make_graph(
        [const],
        "yolox_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, *raw.shape])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_yolox_detector_runs_a_yolox_format_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    path = _constant_yolox(tmp_path / "yolox_tiny.onnx", _raw_one_cell())
    with YoloxDetector(path, threads=1) as det:
        assert isinstance(det, Detector) and det.input_hw == (64, 64) and det.backend == "onnxruntime"
        boxes = det(np.zeros((128, 128, 3), np.uint8))  # ratio 0.5
        np.testing.assert_allclose(boxes, [[48, 0, 112, 104, 0.72]], rtol=1e-6)  # y1 = -24 clipped to 0
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
            det(np.zeros((128, 128), np.uint8))


def test_yolox_detector_rejects_other_models(tmp_path):
    pytest.importorskip("onnxruntime")
    wrong = _constant_yolox(tmp_path / "pose.onnx", np.zeros((17, 2), np.float32))
    with pytest.raises(InputFileError, match=r"pose.onnx' is not a YOLOX-format detector .*shipped YOLOX-Nano"):
        YoloxDetector(wrong)
    odd = _constant_yolox(tmp_path / "odd.onnx", np.zeros((80, 85), np.float32))  # not the 84 cells of 64x64
    with pytest.raises(InputFileError, match="not a YOLOX-format detector"):
        YoloxDetector(odd)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a protobuf")
    with pytest.raises(InputFileError, match="corrupt.onnx' is corrupt") as e:
        YoloxDetector(corrupt)
    assert "\n" not in str(e.value) and "--detector-model" in str(e.value)


def test_yolox_detector_runs_an_engine_through_trt_runner(tmp_path, monkeypatch):
    from edge_pct.engines import trt_runtime
    from edge_pct.engines.trt_compat import TensorSpec

    class FakeRunner:  # TrtRunner's surface: input_spec, output_spec, infer, close
        def __init__(self, path: Path) -> None:
            self.path, self.closed = path, False

        def input_spec(self):
            return [TensorSpec("images", True, (1, 3, 64, 64), np.dtype(np.float32))]

        def output_spec(self):
            return [TensorSpec("output", False, (1, 84, 85), np.dtype(np.float16))]

        def infer(self, x):
            assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
            return {"output": _raw_one_cell()[None].astype(np.float16)}

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(trt_runtime, "TrtRunner", FakeRunner)
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    engine = tmp_path / "yolox.fp16.engine"
    engine.write_bytes(b"engine")
    det = create_detector(model=engine)
    assert det.name == "onnx" and det.backend == "tensorrt"
    boxes = det(np.zeros((128, 128, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[48, 0, 112, 104, 0.72]], rtol=2e-3)  # FP16 output
    det.close()
    with pytest.raises(ConfigError, match="edge-pct build --onnx"):
        create_detector("onnx", tmp_path / "yolox.onnx", backend="tensorrt")
    with pytest.raises(ConfigError, match="Valid"):
        create_detector("onnx", engine, backend="torch")


def test_engine_without_tensorrt_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` -> ImportError, installed or not
    engine = tmp_path / "yolox.engine"
    engine.write_bytes(b"engine")
    with pytest.raises(MissingDependencyError, match="edge-pct\\[tensorrt\\]"):
        create_detector("onnx", engine)


# -- real models on real frames ----------------------------------------------------------------------------------
def test_yolox_nano_finds_the_four_vtest_pedestrians():
    pytest.importorskip("onnxruntime", reason="the onnx detector needs onnxruntime (pip install 'edge-pct[cpu]')")
    frame = _first_frame(VTEST)
    h, w = frame.shape[:2]
    with YoloxDetector(require_data(YOLOX_NANO), score_threshold=0.3, threads=1) as det:
        assert det.input_hw == (416, 416)
        boxes = det(frame)
    assert boxes.shape == (4, 5) and boxes.dtype == np.float32
    assert (np.diff(boxes[:, 4]) <= 0).all() and (boxes[:, 4] >= 0.3).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2:4] > boxes[:, :2]).all()


def test_mediapipe_detector_finds_a_person_on_street():
    pytest.importorskip(
        "mediapipe", reason="the mediapipe detector needs mediapipe (pip install 'edge-pct[mediapipe]')"
    )
    frame = _first_frame(STREET)
    h, w = frame.shape[:2]
    with create_detector("mediapipe", require_data(POSE_TASK), max_persons=3) as det:
        assert det.name == "mediapipe"
        boxes = det(frame)
    assert 1 <= len(boxes) <= 3 and boxes.dtype == np.float32
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2:4] > boxes[:, :2]).all() and (boxes[:, 4] > 0).all() and (boxes[:, 4] <= 1).all()


def test_landmark_box_uses_visible_landmarks_padded_and_clipped():
    xy = np.array([[10, 20], [30, 60], [500, 500]], np.float32)
    scores = np.array([0.9, 0.8, 0.1], np.float32)
    box = landmarks_to_box(xy, scores, width=100, height=100)
    np.testing.assert_allclose(box, [8, 16, 32, 64, 0.6], rtol=1e-6)  # the invisible (500, 500) is left out
    np.testing.assert_allclose(landmarks_to_box(xy, np.full(3, 0.2, np.float32), 100, 100)[:4], [0, 0, 100, 100])
    assert landmarks_to_box(xy + 200, scores, 100, 100) is None  # entirely outside the frame


# -- the track detector and create_detector ----------------------------------------------------------------------
def test_track_detector_returns_the_whole_frame():
    det = create_detector("track")
    assert isinstance(det, CentreRoiDetector) and isinstance(det, Detector) and det.name == "track"
    np.testing.assert_array_equal(det(np.zeros((360, 480, 3), np.uint8)), [[0, 0, 480, 360, 1]])
    half = CentreRoiDetector(roi_fraction=0.5)(np.zeros((100, 200, 3), np.uint8))
    np.testing.assert_array_equal(half, [[50, 25, 150, 75, 1]])
    assert half.dtype == np.float32
    with pytest.raises(ConfigError, match="roi_fraction"):
        CentreRoiDetector(roi_fraction=0.0)


def test_env_variable_picks_the_detector_by_suffix(monkeypatch, tmp_path):
    missing = tmp_path / "missing_yolox.onnx"
    monkeypatch.setenv(DETECTOR_MODEL_ENV, str(missing))
    with pytest.raises(InputFileError, match="missing_yolox.onnx' not found"):  # the onnx detector was chosen
        create_detector()
    monkeypatch.setenv(DETECTOR_MODEL_ENV, str(tmp_path / "missing.task"))
    with pytest.raises(InputFileError, match="MediaPipe pose model not found"):
        create_detector()
    monkeypatch.setenv(DETECTOR_MODEL_ENV, str(tmp_path / "model.pt"))
    with pytest.raises(ConfigError, match=r"suffix '\.pt'.*\.engine"):
        create_detector()
    assert create_detector("track").name == "track"  # an explicit name wins over the variable


def test_the_shipped_yolox_nano_is_the_default_detector(monkeypatch):
    pytest.importorskip("onnxruntime", reason="the onnx detector needs onnxruntime (pip install 'edge-pct[cpu]')")
    monkeypatch.delenv(DETECTOR_MODEL_ENV, raising=False)
    det = create_detector(max_persons=8, threads=1)
    assert isinstance(det, YoloxDetector) and Path(det.path) == DEFAULT_DETECTOR
    assert len(det(_first_frame(require_data(VTEST)))) >= 2  # vtest.avi's pedestrians, not one centre box
    det.close()
    assert create_detector("onnx", threads=1).path == create_detector(threads=1).path  # "onnx" alone: the same file


def test_without_onnxruntime_the_default_detector_is_track(monkeypatch):
    import importlib.util

    monkeypatch.delenv(DETECTOR_MODEL_ENV, raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a))
    assert create_detector().name == "track"


def test_env_variable_runs_the_real_yolox(monkeypatch):
    pytest.importorskip("onnxruntime", reason="the onnx detector needs onnxruntime (pip install 'edge-pct[cpu]')")
    monkeypatch.setenv(DETECTOR_MODEL_ENV, str(require_data(YOLOX_NANO)))
    det = create_detector(max_persons=2, threads=1)
    assert isinstance(det, YoloxDetector) and det.max_persons == 2
    assert det(_first_frame(VTEST)).shape == (2, 5)
    det.close()
    det = create_detector(max_persons=2, max_boxes=3, threads=1)  # the pipeline's candidate boxes
    assert det(_first_frame(VTEST)).shape == (3, 5)
    det.close()


def test_create_detector_errors_name_the_fix(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"Unknown detector 'onxx'. Valid: \['mediapipe', 'onnx', 'track'\]. "
        r"Did you mean 'onnx'\?",
    ):
        create_detector("onxx")
    with pytest.raises(ConfigError, match=f"--detector-model PATH .*{DETECTOR_MODEL_ENV}"):
        create_detector("mediapipe")  # ("onnx" without a model is the shipped YOLOX-Nano)
    with pytest.raises(InputFileError, match="nothere.onnx' not found"):
        create_detector("onnx", tmp_path / "nothere.onnx")
    with pytest.raises(ConfigError, match="max_persons"):
        create_detector(max_persons=0)
    with pytest.raises(ConfigError, match="score_threshold"):
        create_detector("onnx", tmp_path / "x.onnx", score_threshold=1.5)


def test_detector_modules_import_without_heavy_runtimes():
    code = (
        "import sys, edge_pct.stream.detectors.factory, edge_pct.stream.detectors.yolox\n"
        "import edge_pct.stream.detectors.mediapipe\n"
        "print([m for m in ('onnxruntime', 'mediapipe', 'tensorrt', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_stream_config_picks_the_detector_runtime():
    pytest.importorskip("openvino", reason="needs the openvino extra")
    pytest.importorskip("onnxruntime", reason="needs the cpu extra")
    from edge_pct.config import StreamConfig
    from edge_pct.stream.detectors.factory import stream_detector

    with stream_detector(StreamConfig(detector_backend="openvino-fp32")) as det:
        assert det.backend == "openvino-fp32" and det.score_threshold == StreamConfig.detector_score
        assert len(det(np.zeros((240, 320, 3), np.uint8))) == 0  # an empty frame: no person
    with pytest.raises(ConfigError, match="detector backend"):
        stream_detector(StreamConfig(detector_backend="nope"))
