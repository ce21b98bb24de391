"""INT8 calibration of the tiny exported model: Q/DQ placement (FP32 island, quantized convs, zero points 0),
the ONNX Runtime CPU graph fusing into integer kernels, FP32-vs-INT8 agreement, the TensorRT cache format by hand
and round trip, min-max ranges vs a plain ONNX Runtime pass, deterministic crop selection, reuse of an earlier
calibration, atomic writes and the command's errors."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from edge_pct.core.errors import ConfigError, InputFileError  # noqa: E402

ARTIFACTS = ["calib.cache", "model.int8.cpu.json", "model.int8.cpu.onnx", "model.int8.decoder.onnx",
             "model.int8.tensorrt.json", "model.int8.tensorrt.onnx", "report.json"]
QDQ = ("QuantizeLinear", "DequantizeLinear")
FAST = {"threads": 1, "latency_repeats": 3}  # one core, few timed runs: the numbers only need to exist here


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    from test_export import shared_tiny_export  # one export per session, shared with test_export/test_runtime

    return shared_tiny_export(tmp_path_factory)


def _write_coco_set(root, n_images: int = 6) -> tuple:
    """n_images smooth random 100x120 images with two labeled persons each, and their COCO json."""
    (root / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(1, n_images + 1):
        cv2.imwrite(str(root / "img" / f"{i}.jpg"),
                    cv2.GaussianBlur(rng.integers(0, 255, (120, 100, 3), dtype=np.uint8), (0, 0), 3))
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 120})
        for x0 in (10, 50):
            kp = np.stack([np.linspace(x0, x0 + 30, 17), np.linspace(15, 95, 17), np.full(17, 2.0)], 1)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "bbox": [x0, 15, 30, 80],
                         "area": 2400.0, "num_keypoints": 17, "keypoints": kp.ravel().tolist()})
    ann = root / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    return root / "img", ann


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    return _write_coco_set(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="module")
def entropy_run(tiny_export, coco_set, tmp_path_factory):
    """One entropy calibration with annotations (8 crops, 4 held out), its result and output folder."""
    from edge_pct.calibration.calibrate import calibrate

    images, ann = coco_set
    out = tmp_path_factory.mktemp("calib") / "out"
    res = calibrate(tiny_export["onnx"], images, out, ann=ann, method="entropy", num=8, heldout=4, **FAST)
    return {"result": res, "out": out, "images": images, "ann": ann}


def _maps(graph):
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def _session(path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_importing_the_package_loads_no_onnx_or_onnxruntime():
    code = ("import sys, edge_pct.calibration, edge_pct.calibration.reader, edge_pct.calibration.qdq, "
            "edge_pct.calibration.trt_cache, edge_pct.calibration.calibrate; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_fp32_island_has_no_qdq_and_convs_are_int8(tiny_export, entropy_run):
    """LayerNorms, the logits layer, the softmax and the whole decoder after it, and the image stem with the
    depthwise-separable conv reading it read and write only FP32 tensors; every other Conv reads an INT8-quantized
    weight and activation."""
    from edge_pct.calibration.qdq import float_nodes

    fp32 = onnx.load(tiny_export["onnx"])
    q = onnx.load(entropy_run["result"]["int8_onnx"])
    keep = set(float_nodes(fp32))
    fp_producer, fp_consumers = _maps(fp32.graph)
    softmax = fp_producer["token_probs"]
    bias_add = fp_producer[softmax.input[0]]
    logits = fp_producer[bias_add.input[0]]
    v = {t.name: t.dims for t in fp32.graph.initializer}[logits.input[1]][-1]
    assert softmax.op_type == "Softmax" and logits.op_type in ("MatMul", "Gemm") and v == 64  # the V-way cls_pred
    downstream, todo = set(), [softmax]
    while todo:
        for c in [c for o in todo.pop().output for c in fp_consumers.get(o, [])]:
            if c.name not in downstream:
                downstream.add(c.name)
                todo.append(c)
    layer_norms = {n.name for n in fp32.graph.node if n.op_type == "LayerNormalization"}
    assert len(layer_norms) == 7 and "MatMul" in {n.op_type for n in fp32.graph.node if n.name in downstream}
    assert {softmax.name, bias_add.name, logits.name} | downstream | layer_norms <= keep
    producer, consumers = _maps(q.graph)
    island = [n for n in q.graph.node if n.name in keep]
    assert len(island) == len(keep)
    for n in island:
        assert not [i for i in n.input if i in producer and producer[i].op_type in QDQ], n.name
        assert not [c for o in n.output for c in consumers.get(o, []) if c.op_type in QDQ], n.name
    init = {t.name: t for t in q.graph.initializer}
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    stem = [n.name for n in convs if n.name in keep]
    # 52 in the backbone and head, 2 in the heatmap head (refine model); the stem, then the depthwise conv after it
    # and its pointwise partner
    assert len(convs) == 56 and stem == [convs[0].name, convs[1].name, convs[2].name]
    assert [a.i for a in convs[1].attribute if a.name == "group"] > [1]  # depthwise
    for n in convs[3:]:
        x, w = producer[n.input[0]], producer[n.input[1]]
        assert x.op_type == "DequantizeLinear" and producer[x.input[0]].op_type == "QuantizeLinear"
        assert w.op_type == "DequantizeLinear" and producer[w.input[0]].op_type == "QuantizeLinear"
        assert init[producer[w.input[0]].input[0]].data_type == onnx.TensorProto.FLOAT  # FP32 -> Q -> DQ weight
        assert numpy_helper.to_array(init[w.input[1]]).size > 1  # per-channel weight scales
        assert len(n.input) < 3 or n.input[2] in init  # FP32 bias, no INT32 DequantizeLinear (TensorRT rejects it)
    # graph inputs and outputs stay float32
    assert [o.name for o in q.graph.output] == ["joints", "confidence", "token_probs"]
    assert all(producer[o.name].op_type not in QDQ for o in q.graph.output)


def test_all_zero_points_are_int8_zeros(entropy_run):
    q = onnx.load(entropy_run["result"]["int8_onnx"])
    init = {t.name: t for t in q.graph.initializer}
    nodes = [n for n in q.graph.node if n.op_type in QDQ]
    assert len(nodes) > 100
    for n in nodes:
        zp = init[n.input[2]]
        assert zp.data_type == onnx.TensorProto.INT8 and not numpy_helper.to_array(zp).any(), n.name


def test_int8_model_runs_and_agrees_with_fp32(tiny_export, entropy_run):
    """The INT8 model loads in the runtime's ONNX Runtime backend and its joints follow FP32 (48x64 crops)."""
    from edge_pct.engines.runtime import OnnxRuntimeBackend

    res = entropy_run["result"]
    agree = res["fp32_vs_int8"]
    print(f"int8 vs fp32 on {agree['crops']} held-out crops: mean {agree['joints_mean_px']:.3f} px, "
          f"p95 {agree['joints_p95_px']:.3f} px, max {agree['joints_max_px']:.3f} px; latency ms {agree['latency_ms']}")
    assert agree["on"] == "heldout" and agree["crops"] == 4
    assert agree["joints_mean_px"] < 1.0 and agree["joints_p95_px"] < 3.0
    assert agree["cpu"]["crops"] == 4 and agree["cpu"]["joints_mean_px"] < 1.0 and agree["cpu"]["joints_p95_px"] < 3.0
    assert agree["latency_ms"]["int8_onnx"] == "model.int8.cpu.onnx"
    assert set(agree["latency_ms"]["int8_tensorrt_graph"]) == {"1", "4"}
    assert agree["coco"]["persons"] == 4 and 0 <= agree["coco"]["ap_int8_cpu"] <= 1
    assert set(agree["latency_ms"]["fp32"]) == set(agree["latency_ms"]["int8"]) == {"1", "4"}
    assert all(v > 0 for v in agree["latency_ms"]["int8"].values())
    assert 0 <= agree["coco"]["ap_fp32"] <= 1 and agree["coco"]["persons"] == 4
    int8 = OnnxRuntimeBackend(res["int8_onnx"], ["CPUExecutionProvider"], threads=1)
    fp32 = OnnxRuntimeBackend(tiny_export["onnx"], ["CPUExecutionProvider"], threads=1)
    assert int8.precision == "int8" and fp32.precision == "fp32"
    x = np.random.default_rng(3).uniform(0, 255, (3, 3, 64, 48)).astype(np.float32)
    got, want = int8(x), fp32(x)
    assert np.linalg.norm(got["joints"] - want["joints"], axis=-1).mean() < 1.0
    np.testing.assert_allclose(got["token_probs"].sum(-1), 1.0, atol=1e-5)  # softmax stays FP32
    tokens_only = fp32.decode(got["token_probs"])  # the image graphs' joints are heatmap-refined
    np.testing.assert_allclose(int8.decode(got["token_probs"]), tokens_only, atol=1e-3)  # FP32 decoder
    cpu = OnnxRuntimeBackend(res["cpu_onnx"], ["CPUExecutionProvider"], threads=1)
    assert cpu.precision == "int8" and cpu.meta["quantization_target"] == "cpu"
    got = cpu(x)
    assert np.linalg.norm(got["joints"] - want["joints"], axis=-1).mean() < 1.0
    np.testing.assert_allclose(got["token_probs"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(cpu.decode(got["token_probs"]), fp32.decode(got["token_probs"]), atol=1e-3)


def test_cpu_graph_keeps_the_fp32_island_and_symmetric_int8_weights(tiny_export, entropy_run):
    """model.int8.cpu.onnx: no Q/DQ on the FP32 island (+ the token Mixer), INT8 weights with zero points 0 and
    per-channel scales, UINT8 activations, INT32 biases; layers reading an FP32 tensor stay FP32."""
    from edge_pct.calibration.qdq import cpu_exclude, cpu_float_nodes, float_nodes, qdq_summary

    fp32 = onnx.load(tiny_export["onnx"])
    q = onnx.load(entropy_run["result"]["cpu_onnx"])
    keep = cpu_exclude(fp32, float_nodes(fp32))
    assert len(keep) > len(float_nodes(fp32))  # the token Mixer stays FP32 as well on this target
    facts = qdq_summary(q, keep)
    assert not facts["qdq_touching_excluded"] and not facts["nonzero_weight_zero_points"]
    assert facts["weights"] and facts["biases"] and facts["activations"]
    init = {t.name: t for t in q.graph.initializer}
    producer, _ = _maps(q.graph)
    for n in q.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in facts["weights"] and n.input[0].endswith("weight"):
            assert init[n.input[0]].data_type == onnx.TensorProto.INT8
            assert numpy_helper.to_array(init[n.input[1]]).size > 1  # per-channel
    act_zps = {n.input[2] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert act_zps and all(init[z].data_type == onnx.TensorProto.UINT8 for z in act_zps)
    extra = cpu_float_nodes(fp32, keep)
    by_name = {n.name: n for n in q.graph.node}
    for name in extra:  # FP32 weights read directly, no weight DequantizeLinear left to run on every inference
        w = by_name[name].input[1]
        assert w in init and init[w].data_type == onnx.TensorProto.FLOAT and w not in producer


def test_an_fp32_layer_behind_a_relu_still_reads_the_relu(tiny_export, entropy_run, tmp_path):
    """Keeping a mid-graph conv FP32 whose input is Relu(quantized conv): with UINT8 activations ONNX Runtime folds
    that Relu into the Q/DQ range and deletes it, and the FP32 conv would read the raw, unclamped values once its
    Q/DQ pair is dropped. The Relu must survive (`activations_feeding`), in both targets."""
    from edge_pct.calibration.qdq import float_nodes, quantize_qdq

    fp32 = onnx.load(tiny_export["onnx"])
    producer, _ = _maps(fp32.graph)
    keep = float_nodes(fp32)
    before = {n.name: producer[producer[n.input[0]].input[0]] for n in fp32.graph.node
              if n.op_type == "Conv" and producer[n.input[0]].op_type == "Relu"}  # conv -> the layer before its Relu
    target = next(n for n in fp32.graph.node if n.name in before and n.name not in keep
                  and before[n.name].op_type == "Conv" and before[n.name].name not in keep)
    relu = producer[target.input[0]]
    ranges = {k: tuple(v) for k, v in entropy_run["result"]["ranges"].items()}
    for kind in ("cpu", "tensorrt"):
        path = tmp_path / f"{kind}.onnx"
        quantize_qdq(tiny_export["onnx"], path, ranges=ranges, exclude=keep + [target.name], target=kind)
        q = onnx.load(path)
        q_producer, _ = _maps(q.graph)
        conv = next(n for n in q.graph.node if n.name == target.name)
        assert q_producer[conv.input[0]].name == relu.name, kind  # reads the Relu, not a raw conv output


def _optimized(path):
    """The graph ONNX Runtime's CPU provider actually runs (all graph optimizations) and its op counts."""
    from edge_pct.calibration.ort_cpu import op_counts, optimized_graph

    graph = optimized_graph(path)
    return graph, op_counts(graph)


def test_cpu_graph_runs_on_integer_kernels_in_onnxruntime(tiny_export, entropy_run):
    """Structure, not timing: after ONNX Runtime's optimizations every conv of model.int8.cpu.onnx but the stem's
    three is a QLinearConv, the first Linear a QGemm, and no float Conv/Gemm/MatMul reads a DequantizeLinear (a weight
    dequantized on every run). The TensorRT graph leaves float convs between DQ and Q there (why both exist)."""
    from pathlib import Path

    fp32 = onnx.load(tiny_export["onnx"])
    convs = sum(n.op_type == "Conv" for n in fp32.graph.node)
    graph, ops = _optimized(Path(entropy_run["result"]["cpu_onnx"]))
    # the stem and its depthwise-separable conv stay FP32; the heatmap head's 1x1 output conv (17 channels) reads
    # INT8 and writes the FP32 logits of the refinement, so it runs as DQ -> Conv (a 64 x 17 weight dequantized per
    # run: negligible)
    assert ops.get("QLinearConv") == convs - 4 and ops.get("Conv", 0) == 4 and ops.get("QGemm") == 1, ops
    producer = {o: n for n in graph.node for o in n.output}
    float_after_dq = [n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul", "FusedMatMul")
                      and any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
                              for i in n.input)]
    heatmap_out = [n for n in fp32.graph.node if n.op_type == "Conv"][-1]
    assert [n.output for n in float_after_dq] == [heatmap_out.output]
    _, trt_ops = _optimized(Path(entropy_run["result"]["int8_onnx"]))
    assert trt_ops.get("QLinearConv", 0) < convs - 1


def test_artifacts_report_sidecar_and_cache(tiny_export, entropy_run):
    from edge_pct.calibration.trt_cache import read_cache, trt_scale

    out, res = entropy_run["out"], entropy_run["result"]
    assert sorted(p.name for p in out.iterdir()) == ARTIFACTS  # no staging folder or .tmp left
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "entropy" and report["num"] == 8 and report["heldout"] == 4 and not report["reused"]
    assert report["calibration_s"] > 0 and report["fingerprint"] == res["fingerprint"]
    assert report["ranges"] == res["ranges"] and report["cache"]["header"] == "TRT-8601-EntropyCalibration2"
    side = json.loads((out / "model.int8.tensorrt.json").read_text())
    assert side["precision"] == "int8" and side["onnx"] == "model.int8.tensorrt.onnx"
    assert side["decoder_onnx"] == "model.int8.decoder.onnx" and side["calibration"]["method"] == "entropy"
    assert side["quantization_target"] == "tensorrt" and side["cpu_onnx"] == "model.int8.cpu.onnx"
    cpu_side = json.loads((out / "model.int8.cpu.json").read_text())
    assert cpu_side["onnx"] == "model.int8.cpu.onnx" and cpu_side["decoder_onnx"] == "model.int8.decoder.onnx"
    assert cpu_side["precision"] == "int8" and cpu_side["quantization_target"] == "cpu"
    assert report["quantization"]["cpu"]["quantized"]["biases"] > 0
    assert report["quantization"]["tensorrt"]["quantized"]["biases"] == 0 and res["cpu_onnx"] == str(
        out / "model.int8.cpu.onnx")
    assert (out / "calib.cache").read_text().splitlines()[0] == "TRT-8601-EntropyCalibration2"
    cache = read_cache(out / "calib.cache")
    assert (cache.version, cache.algorithm) == (8601, "EntropyCalibration2")
    fp32_tensors = {o for n in onnx.load(tiny_export["onnx"]).graph.node for o in (*n.input, *n.output)}
    assert set(cache.scales) <= set(res["ranges"]) & fp32_tensors and len(cache.scales) > 50
    assert "token_probs" not in cache.scales and "joints" not in cache.scales  # the FP32 island has no scales
    for name, scale in cache.scales.items():
        assert scale == trt_scale(*res["ranges"][name])


def test_the_calibrate_folder_is_a_model_that_runs_the_graph_for_the_backend(entropy_run, caplog):
    from edge_pct.engines.model_files import open_backend

    out = entropy_run["out"]
    backend = open_backend(out, threads=1)  # ONNX Runtime (the default) takes the CPU graph
    assert backend.path.name == "model.int8.cpu.onnx" and backend.precision == "int8"
    assert backend.meta["quantization_target"] == "cpu"
    with pytest.raises(ConfigError, match=r"edge-pct build --onnx .*model.int8.tensorrt.onnx --precision int8"):
        open_backend(out, "tensorrt")
    with pytest.raises(ConfigError, match="torch backend runs .pt"):
        open_backend(out, "torch")
    with pytest.raises(InputFileError, match="folder without model.int8.cpu.onnx"):
        open_backend(out.parent, threads=1)
    caplog.clear()
    open_backend(out / "model.int8.tensorrt.onnx", threads=1)  # the TensorRT graph by hand, on a CPU: warned
    assert any("model.int8.cpu.onnx" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    caplog.clear()
    open_backend(out / "model.int8.cpu.onnx", threads=1)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_bench_on_the_calibrate_folder_runs_the_cpu_graph(entropy_run, tmp_path):
    from test_pipeline import _write_video

    from edge_pct.cli import main

    video = tmp_path / "walk.avi"
    _write_video(video, frames=4)
    out = tmp_path / "bench.json"
    assert main(["bench", "--video", str(video), "--model", str(entropy_run["out"]), "--detector", "track",
                 "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["graph"].endswith("model.int8.cpu.onnx") and res["precision"] == "int8" and res["frames"] == 4


def test_cache_line_by_hand_and_round_trip(tmp_path):
    from edge_pct.calibration.trt_cache import format_cache, read_cache, trt_scale, write_cache

    # range (-2.54, 1.0): abs-max 2.54 / 127 = 0.02 (ONNX Runtime's table would take max(hi, lo) = 1.0)
    assert struct.pack(">f", 0.02).hex() == "3ca3d70a"
    assert format_cache({"x": (-2.54, 1.0)}) == "TRT-8601-EntropyCalibration2\nx: 3ca3d70a\n"
    assert format_cache({"x": (-2.54, 1.0)}, version=100300).startswith("TRT-100300-EntropyCalibration2\n")
    ranges = {"images": (0.0, 255.0), "a/b:0": (-1e-3, 5e-4), "zero": (0.0, 0.0), "neg": (-7.5, -0.25)}
    path = write_cache(tmp_path / "calib.cache", ranges, version=8502)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.cache"]
    cache = read_cache(path)
    assert (cache.version, cache.algorithm) == (8502, "EntropyCalibration2")
    assert cache.scales == {k: trt_scale(*v) for k, v in ranges.items()}
    assert cache.scales["zero"] == 1.0 and cache.scales["neg"] == np.float32(7.5 / 127)
    assert all(len(line.rsplit(": ", 1)[1]) == 8 for line in path.read_text().splitlines()[1:])
    (tmp_path / "bad.cache").write_text("calibration table\nx: 1.0\n")
    with pytest.raises(InputFileError, match="not a TensorRT calibration cache"):
        read_cache(tmp_path / "bad.cache")
    (tmp_path / "bad2.cache").write_text("TRT-8601-EntropyCalibration2\nx: zz\n")
    with pytest.raises(InputFileError, match="line 2"):
        read_cache(tmp_path / "bad2.cache")


def test_minmax_ranges_match_a_plain_onnxruntime_pass(tiny_export, coco_set):
    """Oracle: every calibrated tensor made a graph output, one ONNX Runtime run per batch, np.min / np.max."""
    from edge_pct.calibration.qdq import calibrate_ranges
    from edge_pct.calibration.reader import calibration_reader, cut_crops, select_samples
    from edge_pct.core.geometry import to_model_input

    sel = select_samples(coco_set[0], num=6, heldout=0, ann=coco_set[1], seed=1)
    crops = cut_crops(sel.calib, (48, 64))
    ranges = calibrate_ranges(tiny_export["onnx"], calibration_reader(crops, "images", 2), "minmax", threads=1,
                              chunk=2)
    model = onnx.load(tiny_export["onnx"])
    have = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                              for t in sorted(ranges) if t not in have)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = [dict(zip(names, sess.run(None, {"images": to_model_input(crops[s:s + 2])}), strict=True))
            for s in range(0, len(crops), 2)]
    assert len(ranges) > 100 and not {"div", "token_probs"} & set(ranges)  # stem input, softmax: FP32
    for t, (lo, hi) in ranges.items():
        assert lo == min(float(o[t].min()) for o in outs) and hi == max(float(o[t].max()) for o in outs), t


def test_ranges_cover_what_each_qdq_model_quantizes_and_nothing_of_the_fp32_island(tiny_export, entropy_run):
    """Calibrated: every activation a Q/DQ model quantizes. Not calibrated: the tensors only FP32-island nodes touch
    (the heatmap refinement, the decoder), which no Q/DQ pair can reach (histogramming them once crashed)."""
    from edge_pct.calibration.qdq import float_nodes, qdq_summary

    fp32 = onnx.load(tiny_export["onnx"])
    keep = set(float_nodes(fp32))
    ranges = entropy_run["result"]["ranges"]
    for name in ("int8_onnx", "cpu_onnx"):
        quantized = qdq_summary(onnx.load(entropy_run["result"][name]), keep)["activations"]
        assert quantized and set(quantized) <= set(ranges), name
    touched_outside = {t for n in fp32.graph.node if n.name not in keep for t in (*n.input, *n.output)}
    island_only = {t for n in fp32.graph.node if n.name in keep for t in n.output} - touched_outside
    assert len(island_only) > 50 and not island_only & set(ranges)


def test_crop_selection_is_seeded_and_splits_by_image(coco_set, tmp_path):
    from edge_pct.calibration.reader import CropBatches, cut_crops, select_samples

    images, ann = coco_set
    a, b = select_samples(images, 5, 3, ann, seed=0), select_samples(images, 5, 3, ann, seed=0)
    assert a == b and len(a.calib) == 5 and len(a.heldout) == 3 and a.source == "annotations"
    assert {s.path for s in a.calib}.isdisjoint({s.path for s in a.heldout})
    assert select_samples(images, 5, 3, ann, seed=1) != a
    assert all(s.padding == 1.25 and s.box is not None for s in a.calib)
    big = select_samples(images, 100, 0, ann)  # fewer candidates than asked: all of them, no repeats
    assert len(big.calib) == 12 == len(set(big.calib))
    frames = select_samples(images, 4, 2)
    assert frames.source == "frames" and len(frames.calib) == 4 and len(frames.heldout) == 2
    assert all(s.box is None and s.padding == 1.0 for s in frames.calib)
    crops = cut_crops(frames.calib, (48, 64))
    assert crops.shape == (4, 64, 48, 3) and crops.dtype == np.uint8 and crops.any()
    batches = CropBatches(crops[:3], batch=2, fixed=True)  # a fixed-batch graph gets full batches, padded
    first, last = batches.next_batch(), batches.next_batch()
    assert first.shape == last.shape == (2, 3, 64, 48) and batches.next_batch() is None
    np.testing.assert_array_equal(last[0], last[1])
    assert len(CropBatches(crops[:3], batch=2)) == 2 and CropBatches(crops[:3], 2).item(1).shape[0] == 1


def test_command_reuses_an_identical_calibration(tiny_export, coco_set, tmp_path, capsys):
    """Whole frames, min-max, via the CLI: a second identical run reuses the ranges; another --num does not."""
    from edge_pct.cli import main

    args = ["calibrate", "--onnx", str(tiny_export["onnx"]), "--images", str(coco_set[0]), "--out",
            str(tmp_path / "c"), "--method", "minmax", "--num", "3", "--threads", "1"]
    assert main([*args, "--json", str(tmp_path / "r.json")]) == 0
    first = json.loads((tmp_path / "r.json").read_text())
    table = capsys.readouterr().out  # for people: a summary table naming the artifacts
    assert table.startswith("edge-pct calibrate") and "model.int8.cpu.onnx" in table and "r.json" in table
    assert first["source"] == "frames" and not first["reused"] and first["num"] == 3 and "coco" not in first[
        "fp32_vs_int8"]
    cache = (tmp_path / "c" / "calib.cache").read_bytes()
    assert main([*args, "--json", "-"]) == 0
    second = json.loads(capsys.readouterr().out)  # --json -: stdout is exactly the result
    assert second["reused"] and second["ranges"] == first["ranges"]
    assert second["calibration_s"] == first["calibration_s"] and second["fingerprint"] == first["fingerprint"]
    assert (tmp_path / "c" / "calib.cache").read_bytes() == cache
    assert main([*args[:-4], "--num", "2", "--threads", "1", "--trt-version", "100300", "--json", "-"]) == 0
    third = json.loads(capsys.readouterr().out)
    assert not third["reused"] and third["fingerprint"] != first["fingerprint"]
    assert (tmp_path / "c" / "calib.cache").read_text().startswith("TRT-100300-EntropyCalibration2\n")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ARTIFACTS


def test_failed_run_keeps_the_previous_artifacts(tiny_export, coco_set, tmp_path, monkeypatch):
    import edge_pct.calibration.calibrate as cal

    out = tmp_path / "c"
    cal.calibrate(tiny_export["onnx"], coco_set[0], out, method="minmax", num=2, heldout=1, **FAST)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("measurement failed")

    monkeypatch.setattr(cal, "_measure", boom)
    with pytest.raises(RuntimeError, match="measurement failed"):
        cal.calibrate(tiny_export["onnx"], coco_set[0], out, method="percentile", num=2, heldout=1, **FAST)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(RuntimeError):
        cal.calibrate(tiny_export["onnx"], coco_set[0], tmp_path / "new", method="minmax", num=2, **FAST)
    assert not (tmp_path / "new").exists()


def test_help_and_one_line_errors(tiny_export, coco_set, tmp_path, capsys):
    from edge_pct.calibration.calibrate import calibrate
    from edge_pct.cli import main

    with pytest.raises(SystemExit) as e:
        main(["calibrate", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert all(opt in text for opt in ("--onnx", "--images", "--out", "--ann", "--method", "--num", "--json"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "m.onnx").write_bytes(b"not an onnx model")
    (tmp_path / "bad" / "m.json").write_text(tiny_export["sidecar"].read_text())
    onnx_path, images = str(tiny_export["onnx"]), str(coco_set[0])
    cases = [([str(tmp_path / "missing.onnx"), images], "edge-pct export"),
             ([str(tmp_path / "bad" / "m.onnx"), images], "corrupt"),
             ([onnx_path, str(tmp_path / "empty")], "No images"),
             ([onnx_path, str(tmp_path / "nope")], "not found")]
    for (model, imgs), words in cases:
        assert main(["calibrate", "--onnx", model, "--images", imgs, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("edge-pct calibrate: error:") and words in err, err
    assert main(["calibrate", "--onnx", onnx_path, "--images", images, "--out", str(tmp_path / "o"),
                 "--ann", str(tmp_path / "none.json")]) == 2
    assert "Annotation file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse choices
        main(["calibrate", "--onnx", onnx_path, "--images", images, "--out", str(tmp_path / "o"), "--method", "kl"])
    assert e.value.code == 2
    with pytest.raises(ConfigError, match="Did you mean 'entropy'"):
        calibrate(onnx_path, images, tmp_path / "o", method="entropie")
    with pytest.raises(ConfigError, match="--num"):
        calibrate(onnx_path, images, tmp_path / "o", num=0)
    assert not (tmp_path / "o").exists()
    capsys.readouterr()
