"""The YOLOX CSPDarknet + PAFPN backbone: shapes, loading the official YOLOX-Nano export exactly, bad files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import YOLOX_NANO, require_data
from edge_pct.config import ModelConfig
from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.models.cspdarknet import ConvBnAct, CSPDarknetPAFPN, fit_batchnorm, load_yolox_onnx
from edge_pct.models.factory import build_classifier, init_backbone
from edge_pct.models.tokenizer import PoseTokenizer

TINY = ModelConfig(backbone="cspdarknet", width=0.125, input_size=(96, 128), head_channels=8, head_blocks=1,
                   token_hidden=16, mixer_layers=1, mixer_channel_hidden=16, mixer_token_hidden=8,
                   aux_features="stride8")


def test_strides_and_channels():
    net = CSPDarknetPAFPN(width=0.125, depth=0.33).eval()
    p3, p5 = net(torch.rand(2, 3, 64, 96) * 255)
    assert p3.shape == (2, net.channels8, 8, 12) and p5.shape == (2, net.out_channels, 2, 3)
    assert (net.channels8, net.out_channels) == (32, 128)


def test_pose_model_on_cspdarknet(tiny_tokenizer_cfg):
    tok = PoseTokenizer(dataclasses.replace(tiny_tokenizer_cfg, input_size=(96, 128))).eval()
    model = build_classifier(TINY, tok).train()
    out = model(torch.rand(2, 3, 128, 96) * 255)
    assert out["joints"].shape == (2, 17, 2) and out["heatmaps"].shape == (2, 17, 16, 12)
    with pytest.raises(ConfigError, match="multiples of 32"):
        build_classifier(dataclasses.replace(TINY, input_size=(72, 96)), tok)
    mnv2 = build_classifier(dataclasses.replace(TINY, backbone="mobilenetv2", width=0.25), tok)
    with pytest.raises(InputFileError, match="cspdarknet"):
        init_backbone(mnv2, "any.onnx", torch.zeros(1, 3, 128, 96))


def test_loads_the_official_yolox_nano_exactly():
    """Our backbone + PAFPN with the copied weights reproduce the ONNX graph's own stride-8 and stride-32 maps
    (the inputs of the detection head's first convs), RGB in ours vs BGR in YOLOX."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    graph = onnx.load(str(require_data(YOLOX_NANO)))
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    names = [convs[77].input[0], convs[101].input[0]]  # head stems of the stride-8 and stride-32 levels
    for name in names:
        graph.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    bgr = np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    want = sess.run(names, {"images": bgr})
    net = CSPDarknetPAFPN(0.25, 0.33)
    assert load_yolox_onnx(net, YOLOX_NANO) == 77
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(np.ascontiguousarray(bgr[:, ::-1])))
    for w, g in zip(want, got, strict=True):
        assert w.shape == tuple(g.shape)
        np.testing.assert_allclose(g.numpy(), w, atol=1e-3)


def test_fitted_batchnorm_keeps_the_loaded_function_in_eval_and_training_mode():
    """After loading (identity BatchNorm + folded bias), fitting BatchNorm on a batch leaves the eval-mode output
    unchanged and makes the training-mode output (batch statistics) on that batch the same function."""
    torch.manual_seed(0)
    net = CSPDarknetPAFPN(0.125)
    for block in net.modules():
        if isinstance(block, ConvBnAct):  # what load_yolox_onnx leaves: identity BN, the conv bias in bn.bias
            bn = block[1]
            bn.weight.data.fill_(1.0), bn.bias.data.normal_(), bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
    x = torch.rand(8, 3, 64, 64) * 255
    with torch.no_grad():
        loaded = net.eval()(x)
        training_before = net.train()(x)
        fit_batchnorm(net, x)
        after_eval, after_train = net.eval()(x), net.train()(x)
    for a, b, c, d in zip(loaded, after_eval, after_train, training_before, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(c, a, rtol=1e-3, atol=1e-2)
        assert (d - a).abs().mean() > 10 * (c - a).abs().mean()  # unfitted, training mode computes something else


def test_bad_onnx_files(tmp_path):
    onnx = pytest.importorskip("onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputFileError, match="Cannot read YOLOX ONNX"):
        load_yolox_onnx(CSPDarknetPAFPN(0.125), bad)
    h = onnx.helper
    w = onnx.numpy_helper.from_array(np.zeros((4, 3, 1, 1), np.float32), "w")
    one_conv = h.make_model(h.make_graph([h.make_node("Conv", ["x", "w"], ["y"])], "g",
                                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
                                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [w]))
    path = tmp_path / "one_conv.onnx"
    onnx.save(one_conv, str(path))
    with pytest.raises(InputFileError, match="not a YOLOX export"):
        load_yolox_onnx(CSPDarknetPAFPN(0.125), path)
    if YOLOX_NANO.exists():  # the right file for another width
        with pytest.raises(InputFileError, match="same width and depth"):
            load_yolox_onnx(CSPDarknetPAFPN(0.125), YOLOX_NANO)


def _random_batchnorm(net: torch.nn.Module, seed: int = 0) -> None:
    """BatchNorm weights spread over 3 decades and random biases: channels of very different ranges, as trained."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.weight.numel()
            m.weight.data = torch.randn(n, generator=g) * torch.logspace(-2, 1, n)[torch.randperm(n, generator=g)]
            m.bias.data = torch.randn(n, generator=g)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_range_equalization_keeps_the_function_and_evens_the_depthwise_inputs(mode):
    """equalize_depthwise_inputs on a ReLU backbone: the same outputs (eval and training-mode BatchNorm), and the
    tensors the depthwise convs read get far more even channel ranges (what per-tensor INT8 needs)."""
    from edge_pct.models.equalize import equalize_depthwise_inputs

    torch.manual_seed(0)
    net = CSPDarknetPAFPN(0.25, 0.33, act="relu")
    _random_batchnorm(net)
    getattr(net, mode)()
    x = torch.rand(4, 3, 96, 64) * 255

    def spreads() -> list[float]:
        """max / median channel range of each depthwise input, on x."""
        seen = []
        hooks = [b[0].register_forward_pre_hook(lambda _, inp: seen.append(inp[0].amax((0, 2, 3))))
                 for _, b in net.depthwise_pairs()]
        with torch.no_grad():
            out = net(x)
        for h in hooks:
            h.remove()
        return [float(r.max() / r[r > 0].median()) for r in seen], out

    before, ref = spreads()
    assert equalize_depthwise_inputs(net) == len(net.depthwise_pairs()) == 15
    after, out = spreads()
    for a, b in zip(ref, out, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-3 * float(a.abs().max()))  # float rounding only
    assert np.median(after) < np.median(before) / 3, (before, after)


def test_range_equalization_leaves_silu_alone():
    from edge_pct.models.equalize import equalize_depthwise_inputs

    net = CSPDarknetPAFPN(0.125, 0.33)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert equalize_depthwise_inputs(net) == 0
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_relu_variant_takes_silu_weights_and_init_accepts_only_an_activation_change(tmp_path, tiny_tokenizer_cfg):
    from edge_pct.config import RunConfig
    from edge_pct.train.checkpoint import save_checkpoint
    from edge_pct.train.classifier import _ckpt_config, _read_same_model

    tok = PoseTokenizer(dataclasses.replace(tiny_tokenizer_cfg, input_size=(96, 128))).eval()
    silu = build_classifier(TINY, tok)
    path = save_checkpoint(tmp_path / "silu.pt", "classifier", _ckpt_config(silu), silu)
    relu_cfg = dataclasses.replace(TINY, activation="relu")
    relu = build_classifier(relu_cfg, tok)
    relu.load_state_dict(silu.state_dict())  # the same parameters: only the nonlinearity differs
    assert isinstance(relu.backbone.stem[2], torch.nn.ReLU)
    run = RunConfig(model=relu_cfg)
    assert _read_same_model(path, run, "fix", may_differ=("activation",))["kind"] == "classifier"
    with pytest.raises(InputFileError, match="another model config"):
        _read_same_model(path, run, "fix")
    with pytest.raises(ConfigError, match="cspdarknet backbone only"):
        build_classifier(ModelConfig(activation="relu", input_size=(96, 128)), tok)
