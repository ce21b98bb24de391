"""Quantization-aware fine-tuning (train/fake_quant.py): the 8-bit grids, which layers are simulated, and that
the float model comes back untouched."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from edge_pct.config import ModelConfig
from edge_pct.models.classifier import PoseClassifier
from edge_pct.models.tokenizer import PoseTokenizer
from edge_pct.train.fake_quant import RangeObserver, attach_fake_quant, fake_quant_activation, fake_quant_weight

TINY = ModelConfig(backbone="cspdarknet", width=0.125, input_size=(64, 64), head_channels=8, head_blocks=1,
                   token_hidden=16, mixer_layers=1, mixer_channel_hidden=16, mixer_token_hidden=8,
                   aux_features="stride8", activation="relu", mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255))


@pytest.fixture
def tiny_model(tiny_tokenizer_cfg):
    torch.manual_seed(0)
    tok = PoseTokenizer(dataclasses.replace(tiny_tokenizer_cfg, input_size=(96, 96))).eval()
    return PoseClassifier(TINY, tok).eval()


def test_activation_grid_is_8_bit_over_the_observed_range_and_passes_gradients():
    observer = RangeObserver()
    x = torch.linspace(-1.0, 3.0, 1001, requires_grad=True)
    y = fake_quant_activation(x, observer, update=True)
    scale, zero_point = observer.scale_zero_point()
    assert scale == pytest.approx(4.0 / 255) and 0 < zero_point < 255
    assert len(torch.unique(y.detach())) <= 256
    assert (y - x).abs().max() <= scale / 2 + 1e-6
    assert fake_quant_activation(torch.zeros(3), observer, update=False).eq(0).all()  # 0 sits on the grid exactly
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # straight-through inside the range
    # frozen range (eval): a value beyond it clamps to the range's end, and the gradient there is 0
    z = torch.tensor([10.0], requires_grad=True)
    out = fake_quant_activation(z, observer, update=False)
    assert out.item() == pytest.approx(3.0, abs=scale) and observer.hi == pytest.approx(3.0)
    out.backward()
    assert z.grad.item() == 0.0


def test_weight_rounding_per_output_channel_commutes_with_the_batchnorm_fold():
    """Rounding the unfolded conv weight per output channel is rounding the BatchNorm-folded one (scaled per channel),
    the weight the export writes."""
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3) * torch.logspace(-2, 2, 8)[:, None, None, None]  # 10^4 spread across channels
    bn_scale = torch.rand(8) * 50 - 25  # gamma / sqrt(var + eps), signs included
    q = fake_quant_weight(w)
    torch.testing.assert_close(fake_quant_weight(w * bn_scale[:, None, None, None]), q * bn_scale[:, None, None, None])
    for c in range(8):  # at most 255 levels per channel, error at most half a step of that channel
        step = w[c].abs().max() / 127
        assert len(torch.unique(q[c])) <= 255 and (q[c] - w[c]).abs().max() <= step / 2 + 1e-6


def test_attach_simulates_backbone_and_head_but_not_the_logits_and_detaches_cleanly(tiny_model):
    images = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        ref = tiny_model(images)
    names = set(tiny_model.state_dict())
    handle = attach_fake_quant(tiny_model)
    simulated = set(handle.observers)
    assert "backbone.stem.0" in simulated and "head.mixer_trans.0" in simulated
    assert not any("cls_pred" in n or "tokenizer" in n or "aux_heatmap" in n for n in simulated)
    with torch.no_grad():
        for m in handle.modules:  # observe ranges without touching BatchNorm statistics
            m.train()
        tiny_model(images)
        for m in handle.modules:
            m.eval()
        quantized = tiny_model(images)
    assert set(tiny_model.state_dict()) == names  # checkpoints stay plain float models
    diff = (quantized["joints"] - ref["joints"]).abs().max()
    assert 0 < diff < 0.1 * 64  # rounded, but still the same model
    handle.remove()
    with torch.no_grad():
        torch.testing.assert_close(tiny_model(images)["joints"], ref["joints"])
