"""The OpenVINO backend on the tiny exported model: FP32 vs torch parity, BF16 and INT8 (the calibrated CPU graph)
within a stated joint-shift bound, one-line errors for a missing graph and the TensorRT Q/DQ graph, the calibrate
folder as a model, the auto-selection rule, `edge-pct eval --backend openvino`, and YOLOX-Nano on OpenVINO."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from conftest import YOLOX_NANO, require_data, write_one_person_coco
from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.engines.runtime import PoseBackend, create_backend

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("openvino", "onnx", "onnxruntime", "onnxscript")),
    reason="needs the openvino and cpu extras: pip install 'edge-pct[cpu,openvino]'")

# Joint-shift bounds vs OpenVINO FP32, in px of the tiny model's 48x64 crop (random weights, sharpened heatmaps), for
# BF16 and for the INT8 CPU graph: mean < 0.5 px and every joint < 2 px (a quarter of a heatmap cell). Measured on
# this test's crops: BF16 mean 0.07 / max 0.12 px, INT8 mean 0.07 / max 0.13 px (printed with -s). The shipped model's
# figures on real crops are in docs/openvino.md.
MEAN_PX, MAX_PX = 0.5, 2.0


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    from test_export import shared_tiny_export  # one export per session, shared with test_export/test_runtime

    return shared_tiny_export(tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_calib(tiny_export, tmp_path_factory):
    """A minmax calibration of the tiny export on 6 smooth random frames: the calibrate folder."""
    import cv2

    from edge_pct.calibration.calibrate import calibrate

    root = tmp_path_factory.mktemp("ov_calib")
    (root / "img").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(root / "img" / f"{i}.jpg"),
                    cv2.GaussianBlur(rng.integers(0, 255, (120, 100, 3), dtype=np.uint8), (0, 0), 3))
    calibrate(tiny_export["onnx"], root / "img", root / "cal", method="minmax", num=4, heldout=2, threads=1,
              latency_repeats=1)
    return root / "cal"


@pytest.fixture(scope="module")
def images():
    """(16, 3, 64, 48) float32 0-255: smooth random crops (the tiny model's input)."""
    import cv2

    rng = np.random.default_rng(1)
    crops = [cv2.GaussianBlur(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8), (0, 0), 2) for _ in range(16)]
    return np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32)


def _shift(a: dict, b: dict) -> np.ndarray:
    return np.linalg.norm(a["joints"] - b["joints"], axis=-1)


def test_fp32_matches_torch_and_the_backend_contract(tiny_export, images):
    from edge_pct.engines.openvino_backend import OpenVinoBackend

    ov_b = create_backend("openvino-fp32", tiny_export["onnx"], threads=1)
    torch_b = create_backend("torch", tiny_export["checkpoint"])
    assert isinstance(ov_b, OpenVinoBackend) and isinstance(ov_b, PoseBackend)
    assert (ov_b.name, ov_b.precision, ov_b.input_size, ov_b.max_batch) == ("openvino", "fp32", (48, 64), None)
    a, b = ov_b(images), torch_b(images)
    assert {k: v.shape for k, v in a.items()} == {"joints": (16, 17, 2), "confidence": (16, 17),
                                                   "token_probs": (16, 8, 64)}
    assert all(v.dtype == np.float32 for v in a.values())
    print(f"openvino fp32 vs torch: joints max abs diff {float(np.abs(a['joints'] - b['joints']).max()):.3g} px")
    np.testing.assert_allclose(a["joints"], b["joints"], atol=1e-3)
    np.testing.assert_allclose(a["confidence"], b["confidence"], atol=1e-5)
    np.testing.assert_allclose(a["token_probs"], b["token_probs"], atol=1e-5)
    np.testing.assert_allclose(ov_b.decode(a["token_probs"]), torch_b.decode(a["token_probs"]), atol=1e-3)
    one = ov_b(images[:1])  # any batch through the one dynamic-batch model
    np.testing.assert_allclose(one["joints"], a["joints"][:1], atol=1e-3)
    empty = ov_b(np.zeros((0, 3, 64, 48), np.float32))
    assert empty["joints"].shape == (0, 17, 2) and ov_b.decode(np.zeros((0, 8, 64), np.float32)).shape == (0, 17, 2)
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 48\)"):
        ov_b(np.zeros((1, 3, 48, 64), np.float32))


def test_bf16_and_int8_stay_within_the_joint_shift_bound(tiny_export, tiny_calib, images):
    from edge_pct.engines.model_files import open_backend

    fp32 = create_backend("openvino-fp32", tiny_export["onnx"], threads=1)(images)
    bf16_b = create_backend("openvino-bf16", tiny_export["onnx"], threads=1)
    int8_b = open_backend(tiny_calib, "openvino", threads=1)  # the calibrate folder -> its CPU graph
    assert bf16_b.precision == "bf16" and int8_b.precision == "int8"
    assert int8_b.path.name == "model.int8.cpu.onnx"
    bf16, int8 = _shift(bf16_b(images), fp32), _shift(int8_b(images), fp32)
    print(f"joint shift vs fp32 (px of 48x64): bf16 mean {bf16.mean():.3f} max {bf16.max():.2f}; "
          f"int8 mean {int8.mean():.3f} max {int8.max():.2f}")
    for shift in (bf16, int8):
        assert shift.mean() < MEAN_PX and shift.max() < MAX_PX
    ort_int8 = create_backend("onnxruntime", tiny_calib / "model.int8.cpu.onnx", threads=1)(images)
    assert _shift(int8_b(images), ort_int8).max() < MAX_PX  # the same INT8 graph on both runtimes


def test_bad_inputs_give_one_line_errors(tiny_export, tiny_calib, tmp_path):
    from edge_pct.engines.model_files import open_backend
    from edge_pct.engines.openvino_backend import OpenVinoBackend

    with pytest.raises(InputFileError, match="not found: run `edge-pct export"):
        OpenVinoBackend(tmp_path / "missing.onnx")
    with pytest.raises(InputFileError) as e:
        OpenVinoBackend(tiny_calib / "model.int8.tensorrt.onnx")
    assert "TensorRT Q/DQ graph" in str(e.value) and "model.int8.cpu.onnx" in str(e.value)
    assert len(str(e.value).splitlines()) == 1
    for name in ("tiny.onnx", "tiny.json", "tiny.decoder.onnx"):
        shutil.copy(tiny_export["dir"] / name, tmp_path / name)
    (tmp_path / "tiny.onnx").write_bytes(b"\x08\x07garbage, not a protobuf")
    with pytest.raises(InputFileError, match="does not load in OpenVINO.*edge-pct export") as e:
        OpenVinoBackend(tmp_path / "tiny.onnx")
    assert len(str(e.value).splitlines()) == 1
    shutil.copy(tiny_export["onnx"], tmp_path / "tiny.onnx")
    side = json.loads((tmp_path / "tiny.json").read_text())
    (tmp_path / "tiny.json").write_text(json.dumps({**side, "input_size": [64, 48]}))
    with pytest.raises(InputFileError, match="disagree.*edge-pct export"):
        OpenVinoBackend(tmp_path / "tiny.onnx")
    with pytest.raises(ConfigError, match="Unknown OpenVINO precision 'fp16'"):
        OpenVinoBackend(tiny_export["onnx"], precision="fp16")
    with pytest.raises(ConfigError, match="runs exported ONNX graphs"):
        open_backend(tmp_path / "tiny.json", "openvino")


def test_auto_selection_rule(tiny_export, monkeypatch, tmp_path):
    from edge_pct.engines import model_files, openvino_backend

    flags = tmp_path / "cpuinfo"
    flags.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n")
    assert openvino_backend.native_bf16.__wrapped__(str(flags))
    flags.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert not openvino_backend.native_bf16.__wrapped__(str(flags))
    assert not openvino_backend.native_bf16.__wrapped__(str(tmp_path / "absent"))
    monkeypatch.setattr(openvino_backend, "native_bf16", lambda: True)
    assert model_files.cpu_runtime() == "openvino"
    b = model_files.open_backend(tiny_export["onnx"], threads=1)
    assert (b.name, b.precision) == ("openvino", "bf16")
    monkeypatch.setattr(openvino_backend, "native_bf16", lambda: False)
    assert model_files.cpu_runtime() == "onnxruntime"
    assert model_files.open_backend(tiny_export["onnx"]).name == "onnxruntime"


def test_eval_command_on_openvino(tiny_export, tmp_path, capsys):
    from edge_pct.cli import main

    write_one_person_coco(tmp_path, np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8))
    res = {}
    for backend in ("onnxruntime", "openvino-fp32"):
        assert main(["eval", "--model", str(tiny_export["onnx"]), "--backend", backend, "--threads", "1",
                     "--coco-ann", str(tmp_path / "ann.json"), "--images", str(tmp_path), "--json",
                     str(tmp_path / "r.json")]) == 0
        res[backend] = json.loads((tmp_path / "r.json").read_text())
    assert (res["openvino-fp32"]["backend"], res["openvino-fp32"]["precision"]) == ("openvino", "fp32")
    assert res["openvino-fp32"]["ap"] == pytest.approx(res["onnxruntime"]["ap"], abs=1e-6)
    assert main(["eval", "--model", str(tmp_path / "missing.onnx"), "--backend", "openvino",
                 "--coco-ann", str(tmp_path / "ann.json"), "--images", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not found" in err


def test_yolox_on_openvino_matches_onnxruntime(monkeypatch):
    import cv2

    from edge_pct.stream.detectors.yolox import YoloxDetector

    path = require_data(YOLOX_NANO)
    ok, frame = cv2.VideoCapture(str(require_data(YOLOX_NANO.parents[1] / "videos" / "street.avi"))).read()
    assert ok
    with YoloxDetector(path, backend="onnxruntime", threads=1) as ort_d, \
            YoloxDetector(path, backend="openvino-fp32", threads=1) as ov_d:
        assert ov_d.input_hw == ort_d.input_hw and ov_d.backend == "openvino-fp32"
        a, b = ort_d(frame), ov_d(frame)
    assert len(a) >= 2 and a.shape == b.shape  # street.avi's first frame: several persons
    np.testing.assert_allclose(a, b, atol=1e-2)
    monkeypatch.setenv("EDGE_PCT_DETECTOR_BACKEND", "openvino")
    with YoloxDetector(path, threads=1) as d:
        assert d.backend == "openvino" and d(frame).shape[1] == 5
    monkeypatch.setenv("EDGE_PCT_DETECTOR_BACKEND", "openvnio")
    with pytest.raises(ConfigError, match="Unknown detector backend 'openvnio'"):
        YoloxDetector(path)
