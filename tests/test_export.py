"""ONNX export of a tiny image model: checked graphs, names and shapes, torch parity, dynamic and fixed batch,
the sidecar, atomic writes, and the `edge-pct export` command's errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from edge_pct.core.errors import ConfigError, InputFileError, MissingDependencyError  # noqa: E402

_EXPORTS: dict[str, dict] = {}  # one export per test session, shared with test_runtime.py (exports take seconds)
PARITY_PX = 1e-3


def tiny_checkpoint(path, assignment: str = "soft", refine: str = "heatmap"):
    """A random tiny classifier (TINY of test_classifier, 48x64 input, M=8, V=64) saved as a checkpoint; by default
    heatmap-refined like the shipped model, so the shared export carries the heatmap head and the refinement."""
    from test_classifier import TINY

    from conftest import tiny_tokenizer_config
    from edge_pct.models.classifier import PoseClassifier
    from edge_pct.models.tokenizer import PoseTokenizer
    from edge_pct.train.checkpoint import save_checkpoint
    from edge_pct.train.classifier import _ckpt_config

    torch.manual_seed(0)
    tcfg = dataclasses.replace(tiny_tokenizer_config(), input_size=(96, 128))
    cfg = dataclasses.replace(TINY, assignment=assignment, refine=refine)
    model = PoseClassifier(cfg, PoseTokenizer(tcfg).eval()).eval()
    if model.aux_heatmap is not None:  # untrained heatmaps are flat: sharpen them, or the refinement changes nothing
        with torch.no_grad():
            model.aux_heatmap[-1].weight.mul_(30)
    return save_checkpoint(path, "classifier", _ckpt_config(model), model)


def shared_tiny_export(tmp_path_factory) -> dict:
    """{checkpoint, dir, onnx, decoder_onnx, sidecar, result} of a dynamic-batch export of the tiny model, made
    once per session (test_runtime.py uses it too)."""
    if "dynamic" not in _EXPORTS:
        from edge_pct.export.onnx import export_onnx

        d = tmp_path_factory.mktemp("export")
        ckpt = tiny_checkpoint(d / "tiny.pt")
        res = export_onnx(ckpt, d / "tiny.onnx")
        _EXPORTS["dynamic"] = {"checkpoint": ckpt, "dir": d, "result": res, "onnx": d / "tiny.onnx",
                               "decoder_onnx": d / "tiny.decoder.onnx", "sidecar": d / "tiny.json"}
    return _EXPORTS["dynamic"]


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    return shared_tiny_export(tmp_path_factory)


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _session(path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_export_writes_two_checked_graphs_with_the_specified_io(tiny_export):
    res = tiny_export["result"]
    assert res["onnx"] == str(tiny_export["onnx"]) and res["decoder_onnx"] == str(tiny_export["decoder_onnx"])
    assert res["sidecar"] == str(tiny_export["sidecar"])
    assert not list(tiny_export["dir"].glob("*.tmp"))
    graph, decoder = onnx.load(tiny_export["onnx"]), onnx.load(tiny_export["decoder_onnx"])
    for proto in (graph, decoder):
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        assert [(o.domain, o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")][0][1] == 17
    assert [(i.name, _dims(i)) for i in graph.graph.input] == [("images", ["batch", 3, 64, 48])]
    assert [(o.name, _dims(o)) for o in graph.graph.output] == [
        ("joints", ["batch", 17, 2]), ("confidence", ["batch", 17]), ("token_probs", ["batch", 8, 64])]
    assert [(i.name, _dims(i)) for i in decoder.graph.input] == [("token_probs", ["batch", 8, 64])]
    assert [(o.name, _dims(o)) for o in decoder.graph.output] == [("joints", ["batch", 17, 2])]
    # the heatmap head and the refinement (ArgMax of the posterior) are in the graph of a refine model
    assert [t.name for t in graph.graph.initializer if "aux_heatmap" in t.name]
    assert "ArgMax" in {n.op_type for n in graph.graph.node}
    for proto in (graph, decoder):  # constant subexpressions are folded (none left for ORT or the quantizer)
        constants = {t.name for t in proto.graph.initializer}
        assert not [n.name for n in proto.graph.node if n.input and all(i in constants for i in n.input if i)]
    print(f"parity: joints {res['max_abs_diff_vs_torch']:.3g} px, decoder {res['decoder_max_abs_diff']:.3g} px")
    assert res["max_abs_diff_vs_torch"] < PARITY_PX and res["decoder_max_abs_diff"] < PARITY_PX


def test_dynamic_batch_matches_torch_at_batch_1_and_3(tiny_export):
    from edge_pct.export.onnx import DecoderGraph
    from edge_pct.models.factory import load_classifier

    model = load_classifier(tiny_export["checkpoint"])
    sess, dec = _session(tiny_export["onnx"]), _session(tiny_export["decoder_onnx"])
    for n in (1, 3):
        x = np.random.default_rng(n).uniform(0, 255, (n, 3, 64, 48)).astype(np.float32)
        joints, conf, probs = sess.run(None, {"images": x})
        with torch.inference_mode():
            ref = model(torch.from_numpy(x))
        assert joints.shape == (n, 17, 2) and conf.shape == (n, 17) and probs.shape == (n, 8, 64)
        np.testing.assert_allclose(joints, ref["joints"].numpy(), atol=PARITY_PX)
        np.testing.assert_allclose(conf, ref["confidence"].numpy(), atol=1e-5)
        np.testing.assert_allclose(probs, ref["logits"].softmax(-1).numpy(), atol=1e-5)
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        with torch.inference_mode():  # the decoder graph decodes tokens alone (no heatmap refinement)
            tokens_only = DecoderGraph(model)(torch.from_numpy(probs)).numpy()
        np.testing.assert_allclose(dec.run(None, {"token_probs": probs})[0], tokens_only, atol=PARITY_PX)
        assert np.abs(tokens_only - joints).max() > 0.1  # the image graph's joints are refined


def test_a_tokens_model_exports_without_the_heatmap_head(tmp_path):
    """model.refine = "tokens" (the paper's decoding): no heatmap head in the graph, and the decoder graph on the
    image graph's token_probs gives exactly its joints."""
    from edge_pct.export.onnx import export_onnx

    ckpt = tiny_checkpoint(tmp_path / "tokens.pt", refine="tokens")
    res = export_onnx(ckpt, tmp_path / "tokens.onnx", batch=2)
    assert res["max_abs_diff_vs_torch"] < PARITY_PX and res["decoder_max_abs_diff"] < PARITY_PX
    graph = onnx.load(tmp_path / "tokens.onnx")
    assert not [t.name for t in graph.graph.initializer if "aux_heatmap" in t.name]
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 48)).astype(np.float32)
    joints, _, probs = _session(tmp_path / "tokens.onnx").run(None, {"images": x})
    decoded = _session(tmp_path / "tokens.decoder.onnx").run(None, {"token_probs": probs})[0]
    np.testing.assert_allclose(decoded, joints, atol=PARITY_PX)


def test_sidecar_describes_the_graphs(tiny_export):
    from edge_pct.core.files import file_sha256
    from edge_pct.core.keypoints import COCO17_NAMES
    from edge_pct.core.package import __version__

    side = json.loads(tiny_export["sidecar"].read_text())
    assert side["onnx"] == "tiny.onnx" and side["decoder_onnx"] == "tiny.decoder.onnx"
    assert side["input_size"] == [48, 64] and side["batch"] is None and side["opset"] == 17
    assert side["precision"] == "fp32" and side["input"]["name"] == "images"
    assert side["input"]["layout"] == "NCHW RGB float32 0-255, normalised inside the graph"
    assert side["mean"] == [0.485, 0.456, 0.406] and side["std"] == [0.229, 0.224, 0.225]
    assert side["keypoints"] == list(COCO17_NAMES)
    assert side["num_tokens"] == 8 and side["codebook_size"] == 64
    assert side["source"] == {"checkpoint": str(tiny_export["checkpoint"]),
                              "sha256": file_sha256(tiny_export["checkpoint"])}
    assert side["config"]["model"]["input_size"] == [48, 64] and side["config"]["tokenizer"]["num_tokens"] == 8
    assert side["max_abs_diff_vs_torch"] < PARITY_PX and side["versions"]["edge_pct"] == __version__


def test_fixed_batch_export_through_the_command_line(tmp_path, capsys):
    """`edge-pct export --batch 2`: the graph takes exactly 2 (ORT refuses 3); the backend splits and pads."""
    from edge_pct.cli import main
    from edge_pct.engines.runtime import OnnxRuntimeBackend, TorchBackend

    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "out" / "fixed.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--batch", "2",
                 "--json", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    table = capsys.readouterr().out  # for people: the artifact and its parity in a table
    assert table.startswith("edge-pct export") and "max abs diff vs torch" in table and str(out) in table
    assert res["onnx"] == str(out) and res["batch"] == 2 and res["max_abs_diff_vs_torch"] < PARITY_PX
    assert sorted(p.name for p in out.parent.iterdir()) == ["fixed.decoder.onnx", "fixed.json", "fixed.onnx"]
    graph = onnx.load(out)
    assert _dims(graph.graph.input[0]) == [2, 3, 64, 48] and _dims(graph.graph.output[2]) == [2, 8, 64]
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        _session(out).run(None, {"images": np.zeros((3, 3, 64, 48), np.float32)})
    backend, ref = OnnxRuntimeBackend(out, threads=1), TorchBackend(ckpt)
    assert backend.max_batch == 2
    for n in (1, 2, 5):
        x = np.random.default_rng(n).uniform(0, 255, (n, 3, 64, 48)).astype(np.float32)
        got, want = backend(x), ref(x)
        assert got["joints"].shape == (n, 17, 2) and got["token_probs"].shape == (n, 8, 64)
        np.testing.assert_allclose(got["joints"], want["joints"], atol=PARITY_PX)
        np.testing.assert_allclose(backend.decode(got["token_probs"]), ref.decode(got["token_probs"]), atol=PARITY_PX)


def test_decoder_graph_reproduces_the_straight_through_joints():
    """The decoder applies the model's assignment: straight-through decodes the one-hot of the argmax."""
    from test_classifier import TINY

    from conftest import tiny_tokenizer_config
    from edge_pct.export.onnx import DecoderGraph, PoseGraph
    from edge_pct.models.classifier import PoseClassifier
    from edge_pct.models.tokenizer import PoseTokenizer

    torch.manual_seed(0)
    tcfg = dataclasses.replace(tiny_tokenizer_config(), input_size=(96, 128))
    model = PoseClassifier(dataclasses.replace(TINY, assignment="straight_through"), PoseTokenizer(tcfg)).eval()
    with torch.inference_mode():
        joints, _, probs = PoseGraph(model)(torch.rand(2, 3, 64, 48) * 255)
        torch.testing.assert_close(DecoderGraph(model)(probs), joints, atol=1e-4, rtol=0)
        assert not torch.allclose(model.decode(probs), joints, atol=1e-2)  # the soft path would differ


def test_bad_checkpoints_and_arguments_are_edge_pct_errors(tmp_path):
    from edge_pct.export.onnx import export_onnx

    with pytest.raises(InputFileError, match="not found"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "m.onnx")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputFileError, match="corrupt"):
        export_onnx(tmp_path / "bad.pt", tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match=r"\.onnx"):
        export_onnx(tmp_path / "bad.pt", tmp_path / "m.json")
    with pytest.raises(ConfigError, match="batch"):
        export_onnx(tmp_path / "bad.pt", tmp_path / "m.onnx", batch=0)
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(tmp_path / "bad.pt", tmp_path / "m.onnx", opset=13)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


def test_failed_write_leaves_no_partial_files(tmp_path):
    from edge_pct.core.files import write_atomic

    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(OSError):
        write_atomic([(tmp_path / "a.onnx", b"1"), (tmp_path / "blocker" / "b.onnx", b"2")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_missing_onnx_package_names_the_extra(tmp_path, monkeypatch):
    import sys

    from edge_pct.export.onnx import export_onnx

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(MissingDependencyError, match=r"edge-pct\[cpu\]"):
        export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx")


def test_export_help_and_one_line_errors(tmp_path, capsys):
    from edge_pct.cli import main
    from edge_pct.core.package import DEFAULT_MODEL

    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    assert "--checkpoint" in help_text and "--batch" in help_text and "--opset" in help_text
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not found" in err and err.startswith("edge-pct export: error:")
    assert not list(tmp_path.iterdir())
    if not DEFAULT_MODEL.exists():  # the shipped model is not there yet: the same one-line error
        assert main(["export", "--out", str(tmp_path / "x.onnx")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(DEFAULT_MODEL) in err


def test_export_folds_large_constant_products():
    """The fused soft-decoding table (codebook 1024 x 256 times decoder_start) is past the exporter's own folding
    limit; left in the graph, the INT8 quantizer quantized it and ONNX Runtime recomputed it on every run."""
    from edge_pct.export.onnx import _export

    class Table(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("codebook", torch.randn(1024, 256))
            self.start = torch.nn.Linear(256, 128)

        def forward(self, probs: torch.Tensor) -> torch.Tensor:
            return probs @ (self.codebook @ self.start.weight.T)

    proto = _export(Table(), torch.rand(2, 8, 1024).softmax(-1), "token_probs", ("out",), None, 17)
    assert [n.op_type for n in proto.graph.node] == ["MatMul"]
    assert any(tuple(t.dims) == (1024, 128) for t in proto.graph.initializer)
