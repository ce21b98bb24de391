"""Pose backends: the registry and its errors, torch vs ONNX Runtime on the same tiny checkpoint, clear errors for
missing or corrupt ONNX files, provider choice, and `edge-pct eval --model tiny.onnx` on a synthetic COCO set."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_one_person_coco
from edge_pct.core.errors import ConfigError, InputFileError, MissingDependencyError
from edge_pct.engines.runtime import BACKENDS, PoseBackend, create_backend, select_providers

needs_ort = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime", "onnxscript")),
                               reason="needs the cpu extra: pip install 'edge-pct[cpu]'")


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    from test_export import shared_tiny_export  # one export per session, shared with test_export.py

    return shared_tiny_export(tmp_path_factory)


def test_import_loads_no_runtime():
    code = ("import sys, edge_pct.engines.runtime\n"
            "print([m for m in ('onnxruntime', 'onnx', 'tensorrt', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_backend_names_the_valid_ones_and_the_closest():
    with pytest.raises(ConfigError) as e:
        create_backend("onnxrt", "model.onnx")
    assert str(e.value) == f"Unknown backend 'onnxrt'. Valid: {sorted(BACKENDS)}. Did you mean 'onnxruntime'?"
    with pytest.raises(ConfigError, match="Did you mean 'torch'"):
        create_backend("troch", "model.pt")


def test_tensorrt_backend_is_a_hook_that_needs_tensorrt():
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed: the hook goes on to edge_pct.engines.trt_runtime")
    with pytest.raises(MissingDependencyError, match=r"'tensorrt' is not installed: pip install 'edge-pct\[tensorrt\]"):
        create_backend("tensorrt", "model.engine")


def test_provider_choice():
    assert select_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert select_providers(list(reversed(gpu))) == gpu
    assert select_providers(gpu, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(MissingDependencyError, match="Did you mean 'CPUExecutionProvider'"):
        select_providers(["CPUExecutionProvider"], ["CPUExecutionProvidr"])


@needs_ort
def test_onnxruntime_and_torch_backends_agree(tiny_export):
    from edge_pct.engines.runtime import OnnxRuntimeBackend, TorchBackend

    ort_b = create_backend("onnxruntime", tiny_export["onnx"], threads=1)
    torch_b = create_backend("torch", tiny_export["checkpoint"])
    assert isinstance(ort_b, OnnxRuntimeBackend) and isinstance(torch_b, TorchBackend)
    for b in (ort_b, torch_b):
        assert isinstance(b, PoseBackend) and b.input_size == (48, 64) and b.max_batch is None
        assert b.precision == "fp32"
    assert (ort_b.name, torch_b.name) == ("onnxruntime", "torch") and ort_b.providers == ["CPUExecutionProvider"]
    x = np.random.default_rng(0).uniform(0, 255, (4, 3, 64, 48)).astype(np.float32)
    a, b = ort_b(x), torch_b(x)
    shapes = {k: v.shape for k, v in a.items()}
    assert shapes == {"joints": (4, 17, 2), "confidence": (4, 17), "token_probs": (4, 8, 64)}
    assert all(v.dtype == np.float32 for v in a.values())
    diff = float(np.abs(a["joints"] - b["joints"]).max())
    print(f"onnxruntime vs torch backend: joints max abs diff {diff:.3g} px")
    assert diff < 1e-3
    np.testing.assert_allclose(a["confidence"], b["confidence"], atol=1e-5)
    np.testing.assert_allclose(a["token_probs"], b["token_probs"], atol=1e-5)
    np.testing.assert_allclose(ort_b.decode(a["token_probs"]), torch_b.decode(a["token_probs"]), atol=1e-3)
    import torch

    with torch.inference_mode():  # the decoder decodes tokens alone; the image joints are heatmap-refined
        tokens_only = torch_b.model.decode(torch.from_numpy(b["token_probs"])).numpy()
    np.testing.assert_allclose(torch_b.decode(b["token_probs"]), tokens_only, atol=1e-4)
    for backend in (ort_b, torch_b):  # empty batches and wrong shapes
        empty = backend(np.zeros((0, 3, 64, 48), np.float32))
        assert empty["joints"].shape == (0, 17, 2) and empty["token_probs"].shape == (0, 8, 64)
        with pytest.raises(ValueError, match=r"\(N, 3, 64, 48\)"):
            backend(np.zeros((1, 3, 48, 64), np.float32))


@needs_ort
def test_missing_or_corrupt_onnx_files_name_the_export_command(tiny_export, tmp_path):
    from edge_pct.engines.runtime import OnnxRuntimeBackend

    with pytest.raises(InputFileError, match="not found: run `edge-pct export"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")
    shutil.copy(tiny_export["onnx"], tmp_path / "tiny.onnx")
    with pytest.raises(InputFileError, match=r"Sidecar .*tiny\.json.* not found.*edge-pct export"):
        OnnxRuntimeBackend(tmp_path / "tiny.onnx")
    shutil.copy(tiny_export["sidecar"], tmp_path / "tiny.json")
    with pytest.raises(InputFileError, match=r"tiny\.decoder\.onnx' not found.*edge-pct export"):
        OnnxRuntimeBackend(tmp_path / "tiny.onnx")
    shutil.copy(tiny_export["decoder_onnx"], tmp_path / "tiny.decoder.onnx")
    assert OnnxRuntimeBackend(tmp_path / "tiny.onnx").input_size == (48, 64)
    side = json.loads((tmp_path / "tiny.json").read_text())
    (tmp_path / "tiny.json").write_text(json.dumps({**side, "input_size": [64, 48]}))
    with pytest.raises(InputFileError, match="disagree.*edge-pct export"):
        OnnxRuntimeBackend(tmp_path / "tiny.onnx")
    (tmp_path / "tiny.onnx").write_bytes(b"\x08\x07garbage, not a protobuf")
    with pytest.raises(InputFileError, match="corrupt.*edge-pct export"):
        OnnxRuntimeBackend(tmp_path / "tiny.onnx")
    (tmp_path / "tiny.json").write_text("{not json")
    with pytest.raises(InputFileError, match="corrupt"):
        OnnxRuntimeBackend(tmp_path / "tiny.onnx")


@needs_ort
def test_eval_command_with_an_onnx_model(tiny_export, tmp_path, capsys):
    """`edge-pct eval --model tiny.onnx` scores the same as the checkpoint it was exported from."""
    from edge_pct.cli import main

    write_one_person_coco(tmp_path, np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8))
    results = {}
    for model in (tiny_export["onnx"], tiny_export["checkpoint"]):
        assert main(["eval", "--model", str(model), "--coco-ann", str(tmp_path / "ann.json"),
                     "--images", str(tmp_path), "--flip", "--json", str(tmp_path / "r.json")]) == 0
        results[model.suffix] = json.loads((tmp_path / "r.json").read_text())
    res = results[".onnx"]
    assert res["backend"] == "onnxruntime" and res["precision"] == "fp32" and res["persons"] == 1 and res["flip"]
    assert 0 <= res["ap"] <= 1 and res["ap"] == pytest.approx(results[".pt"]["ap"], abs=1e-6)
    assert main(["eval", "--model", str(tmp_path / "missing.onnx"), "--coco-ann", str(tmp_path / "ann.json"),
                 "--images", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "edge-pct export" in err
