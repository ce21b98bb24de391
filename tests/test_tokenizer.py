"""The pose tokenizer and its codebook on tiny models built here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from edge_pct.models.codebook import EMACodebook, usage_stats
from edge_pct.models.tokenizer import PoseTokenizer
from edge_pct.train.tokenizer import tokenizer_loss


def _poses(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 17, 2, generator=g) * torch.tensor([192.0, 256.0])


def test_shapes(tiny_tokenizer_cfg):
    model = PoseTokenizer(tiny_tokenizer_cfg)
    joints, vis = _poses(5), torch.ones(5, 17, dtype=torch.bool)
    out = model(joints, vis)
    assert out["joints"].shape == (5, 17, 2)
    assert out["indices"].shape == (5, tiny_tokenizer_cfg.num_tokens)
    assert out["commit_loss"].ndim == 0
    assert model.encode(joints, vis).shape == (5, tiny_tokenizer_cfg.num_tokens)
    probs = torch.softmax(torch.randn(5, tiny_tokenizer_cfg.num_tokens, tiny_tokenizer_cfg.codebook_size), -1)
    assert model.decode_probs(probs).shape == (5, 17, 2)


def test_fused_soft_decoding_equals_the_codebook_lookup_path(tiny_tokenizer_cfg):
    """decode_probs reorders the linear layers for speed; it must decode exactly what the paper's path does:
    the soft code (probabilities @ codebook) through the whole decoder, and one-hot probabilities as `decode`."""
    torch.manual_seed(1)
    model = PoseTokenizer(tiny_tokenizer_cfg).eval()
    with torch.no_grad():
        model.codebook.codebook.normal_()
        model.decoder_token_mlp.bias.normal_()  # the bias path is the easy one to get wrong
        probs = torch.softmax(3 * torch.randn(4, tiny_tokenizer_cfg.num_tokens, tiny_tokenizer_cfg.codebook_size), -1)
        torch.testing.assert_close(model.decode_probs(probs),
                                   model.decode_features(model.codebook.soft_lookup(probs)), atol=1e-3, rtol=1e-4)
        indices = torch.randint(0, tiny_tokenizer_cfg.codebook_size, (4, tiny_tokenizer_cfg.num_tokens))
        one_hot = torch.nn.functional.one_hot(indices, tiny_tokenizer_cfg.codebook_size).float()
        torch.testing.assert_close(model.decode_probs(one_hot), model.decode(indices), atol=1e-3, rtol=1e-4)


def test_hidden_joint_coordinates_do_not_reach_the_encoder(tiny_tokenizer_cfg):
    model = PoseTokenizer(tiny_tokenizer_cfg).eval()
    joints = _poses(3)
    vis = torch.ones(3, 17, dtype=torch.bool)
    vis[:, 4] = False
    moved = joints.clone()
    moved[:, 4] += 50.0
    torch.testing.assert_close(model.encode_features(joints, vis), model.encode_features(moved, vis))
    # ... while a visible joint does change the features.
    moved[:, 5] += 50.0
    assert not torch.allclose(model.encode_features(joints, vis), model.encode_features(moved, vis))


def test_eval_quantized_output_equals_codebook_rows():
    cb = EMACodebook(size=16, dim=8).eval()
    z = torch.randn(4, 6, 8)
    q, idx, _ = cb(z)
    torch.testing.assert_close(q, cb.codebook[idx])
    # and the index is the true nearest code
    d = ((z[:, :, None, :] - cb.codebook[None, None]) ** 2).sum(-1)
    assert torch.equal(idx, d.argmin(-1))


def test_straight_through_gradient():
    cb = EMACodebook(size=16, dim=8).eval()
    z = torch.randn(2, 3, 8, requires_grad=True)
    q, _, _ = cb(z)
    w = torch.randn_like(q)
    (q * w).sum().backward()
    torch.testing.assert_close(z.grad, w)  # d(output)/dz is the identity


def test_ema_update_follows_the_formula():
    torch.manual_seed(0)
    cb = EMACodebook(size=4, dim=2, decay=0.9)
    cb.initialized.fill_(True)
    cb.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    cb.ema_sum.copy_(cb.codebook)
    cb.ema_count.fill_(1.0)
    z = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [9.0, 1.0]])  # two vectors near code 0, one near code 1
    idx = cb.nearest(z)
    assert idx.tolist() == [0, 0, 1]
    cb.ema_update(z, idx)
    count = torch.tensor([0.9 + 0.2, 0.9 + 0.1, 0.9, 0.9])
    total = count.sum()
    count = (count + 1e-5) / (total + 4e-5) * total
    ema_sum0 = 0.9 * torch.tensor([0.0, 0.0]) + 0.1 * torch.tensor([0.0, 2.0])
    torch.testing.assert_close(cb.ema_count, count)
    torch.testing.assert_close(cb.codebook[0], ema_sum0 / count[0])
    assert cb.codebook[0, 1] > 0  # moved towards the mean of its assigned vectors


def test_dead_codes_restart_from_encoder_outputs():
    cb = EMACodebook(size=8, dim=2, decay=0.5, dead_code_threshold=0.5).train()
    cb.initialized.fill_(True)
    cb.codebook.copy_(torch.arange(16.0).reshape(8, 2) + 100)  # all codes far from the data
    cb.ema_sum.copy_(cb.codebook)
    cb.ema_count.fill_(1.0)
    z = torch.randn(1, 64, 2)
    for _ in range(3):
        cb(z)
    # every code that got no data restarted onto a data point, so codes now sit near the data
    assert (cb.codebook.abs() < 10).sum(1).eq(2).sum() >= 6
    assert usage_stats(cb.nearest(z), 8)["codes_used"] >= 3


def test_usage_stats():
    s = usage_stats(torch.tensor([0, 0, 1, 1]), 4)
    assert s["codes_used"] == 2 and s["codes_used_share"] == 0.5
    assert s["perplexity"] == pytest.approx(2.0)


def test_encode_decode_round_trip_on_a_toy_set(tiny_tokenizer_cfg):
    """A tiny tokenizer trained here memorises 8 poses to a few pixels (crop 192x256)."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny_tokenizer_cfg, dead_code_threshold=0.01)
    model = PoseTokenizer(cfg)
    poses = _poses(8, seed=1)
    vis = torch.ones(8, 17, dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=400)
    for _ in range(400):
        loss = tokenizer_loss(model, poses, vis, keep_prob=1.0, commit_weight=1.0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        err = (model.decode(model.encode(poses, vis)) - poses).abs().mean()
    assert err < 4.0, f"mean reconstruction error {err:.2f}px"
    # the start was ~60 px away: the round trip really learned
    assert err < 0.15 * (poses - poses.mean(0)).abs().mean()


def test_training_mask_keeps_supervising_hidden_joints(tiny_tokenizer_cfg):
    """keep_prob=0 hides every joint from the encoder, yet the loss still measures all labeled joints."""
    model = PoseTokenizer(tiny_tokenizer_cfg)
    poses = _poses(4)
    lab = torch.ones(4, 17, dtype=torch.bool)
    res = tokenizer_loss(model, poses, lab, keep_prob=0.0, commit_weight=0.0)
    hidden_out = model(poses, torch.zeros_like(lab))["joints"]
    expected = (hidden_out - poses).abs().mean()
    assert float(res["l1"].detach()) == pytest.approx(float(expected.detach()), rel=1e-4)
    assert np.isfinite(float(res["loss"].detach()))


def test_oks_weighted_loss_spends_precision_on_the_face(tiny_tokenizer_cfg):
    """Weights are 1 / OKS sigma with mean 1; a face error costs more than the same error at the hip."""
    from edge_pct.train.tokenizer import oks_joint_weights

    w = oks_joint_weights()
    assert w.mean() == pytest.approx(1.0) and w[1] > 2 * w[11]  # left eye vs left hip
    model = PoseTokenizer(tiny_tokenizer_cfg)
    poses = _poses(4)
    lab = torch.ones(4, 17, dtype=torch.bool)
    gen = [torch.Generator().manual_seed(0) for _ in range(3)]
    plain = tokenizer_loss(model.eval(), poses, lab, 1.0, 0.0, gen[0])
    uniform = tokenizer_loss(model, poses, lab, 1.0, 0.0, gen[1], joint_weights=torch.ones(17))
    weighted = tokenizer_loss(model, poses, lab, 1.0, 0.0, gen[2], joint_weights=w)
    assert uniform["loss"].item() == pytest.approx(plain["loss"].item(), rel=1e-5)
    assert weighted["l1"].item() == pytest.approx(plain["l1"].item(), rel=1e-5)  # the logged L1 stays unweighted
    assert weighted["loss"].item() != pytest.approx(plain["loss"].item(), rel=1e-3)
