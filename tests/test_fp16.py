"""FP16 ONNX export (`edge-pct export --precision fp16`) of a tiny model: float32 I/O, FP16 compute, LayerNorm /
softmax / cls_pred logits / decoder kept in FP32 (checked on the inferred value types), and ONNX Runtime parity with
the FP32 torch model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto  # noqa: E402

from edge_pct.core.errors import ConfigError  # noqa: E402

FP16_PX = 0.5  # joints, FP16 graph vs FP32 torch; a tiny random model sees about 1e-2 px


@pytest.fixture(scope="module")
def fp16_export(tmp_path_factory):
    """One `edge-pct export --precision fp16` of the tiny model (dynamic batch), through the command line."""
    from test_export import tiny_checkpoint

    from edge_pct.cli import main

    d = tmp_path_factory.mktemp("fp16")
    ckpt = tiny_checkpoint(d / "tiny.pt")
    out = d / "tiny16.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--precision", "fp16",
                 "--json", str(d / "result.json")]) == 0
    return {"checkpoint": ckpt, "onnx": out, "decoder_onnx": d / "tiny16.decoder.onnx", "sidecar": d / "tiny16.json",
            "result": json.loads((d / "result.json").read_text())}


def _session(path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _value_types(proto) -> dict[str, int]:
    """Every value's elem_type after shape inference (inputs, outputs, intermediates, initializers)."""
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def test_fp16_export_result_and_sidecar(fp16_export):
    res, side = fp16_export["result"], json.loads(fp16_export["sidecar"].read_text())
    assert res["precision"] == "fp16" and res["onnx"] == str(fp16_export["onnx"])
    assert side["precision"] == "fp16" and side["decoder"]["precision"] == "fp32"
    assert "LayerNorm" in side["fp32_kept"] and "cls_pred (V-way logits)" in side["fp32_kept"]
    print(f"fp16 ONNX vs fp32 torch: joints {res['max_abs_diff_vs_torch']:.3g} px, "
          f"confidence {res['confidence_max_abs_diff']:.3g}, token_probs {res['token_probs_max_abs_diff']:.3g}")
    assert res["max_abs_diff_vs_torch"] < FP16_PX and res["decoder_max_abs_diff"] < 1e-3


def test_fp16_graph_keeps_norms_logits_and_decoder_in_fp32(fp16_export):
    proto = onnx.load(fp16_export["onnx"])
    onnx.checker.check_model(proto, full_check=True)
    types = _value_types(proto)
    f32, f16 = TensorProto.FLOAT, TensorProto.FLOAT16
    assert [types[v.name] for v in proto.graph.input] == [f32]
    assert [types[v.name] for v in proto.graph.output] == [f32, f32, f32]
    nodes = proto.graph.node
    convs = [n for n in nodes if n.op_type == "Conv"]
    assert convs and all(types[n.output[0]] == f16 and types[n.input[1]] == f16 for n in convs)
    norms = [n for n in nodes if n.op_type == "LayerNormalization"]
    assert norms and all(types[n.input[0]] == f32 and types[n.output[0]] == f32 for n in norms)
    (softmax,) = [n for n in nodes if n.op_type == "Softmax"]  # the token probabilities
    assert softmax.output[0] == "token_probs" and types[softmax.input[0]] == f32
    argmaxes = [n for n in nodes if n.op_type == "ArgMax"]  # the peak of the refinement's log-posterior
    assert argmaxes and all(types[n.input[0]] == f32 for n in argmaxes)
    # cls_pred: the Linear (MatMul + bias Add) producing the logits, weights included, is FP32
    producer = {o: n for n in nodes for o in n.output}
    logits = producer[softmax.input[0]]
    matmul = producer[next(i for i in logits.input if i in producer)]
    assert matmul.op_type in ("MatMul", "Gemm") and all(types[i] == f32 for i in [*logits.input, *matmul.input])
    # the head's LayerNorms are FP32 islands: a Cast from FP16 in front of each (the decoder's need none)
    head_norms = [n for n in norms if producer[n.input[0]].op_type == "Cast"]
    assert head_norms and all(types[producer[n.input[0]].input[0]] == f16 for n in head_norms)
    decoder = onnx.load(fp16_export["decoder_onnx"])
    assert f16 not in set(_value_types(decoder).values())  # the decoder graph is all FP32


def test_fp16_onnxruntime_matches_fp32_torch(fp16_export):
    from edge_pct.models.factory import load_classifier

    model = load_classifier(fp16_export["checkpoint"])
    sess, dec = _session(fp16_export["onnx"]), _session(fp16_export["decoder_onnx"])
    for n in (1, 4):
        x = np.random.default_rng(n).uniform(0, 255, (n, 3, 64, 48)).astype(np.float32)
        joints, conf, probs = sess.run(None, {"images": x})
        with torch.inference_mode():
            ref = model(torch.from_numpy(x))
        assert joints.dtype == conf.dtype == probs.dtype == np.float32 and joints.shape == (n, 17, 2)
        diff = float(np.abs(joints - ref["joints"].numpy()).max())
        print(f"batch {n}: fp16 vs fp32 joints max abs diff {diff:.3g} px")
        assert diff < FP16_PX
        np.testing.assert_allclose(conf, ref["confidence"].numpy(), atol=1e-2)
        np.testing.assert_allclose(probs, ref["logits"].softmax(-1).numpy(), atol=1e-3)
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        with torch.inference_mode():  # the decoder graph decodes tokens alone (the image joints are refined)
            tokens_only = model.decode(torch.from_numpy(probs)).numpy()
        np.testing.assert_allclose(dec.run(None, {"token_probs": probs})[0], tokens_only, atol=1e-3)


def test_fp16_backend_and_untouched_model(fp16_export):
    from edge_pct.engines.runtime import OnnxRuntimeBackend
    from edge_pct.export.onnx import half_precision_copy
    from edge_pct.models.factory import load_classifier

    backend = OnnxRuntimeBackend(fp16_export["onnx"], threads=1)
    assert backend.precision == "fp16" and backend.input_size == (48, 64)
    model = load_classifier(fp16_export["checkpoint"])
    half = half_precision_copy(model)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the source model is not converted
    assert half.head.conv_trans[0].weight.dtype == torch.float16 and half.head.cls_pred.module.weight.dtype == (
        torch.float32)
    assert all(p.dtype == torch.float32 for p in half.tokenizer.parameters())


def test_export_precision_is_checked(tmp_path, capsys):
    from edge_pct.cli import main
    from edge_pct.export.onnx import export_onnx

    with pytest.raises(ConfigError, match="--precision 'int8' is invalid.*edge-pct calibrate"):
        export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx", precision="int8")
    with pytest.raises(SystemExit) as e:
        main(["export", "--out", str(tmp_path / "m.onnx"), "--precision", "bf16"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "--precision {fp32,fp16}" in capsys.readouterr().out
