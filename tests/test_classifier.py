"""The image model on tiny configs: shapes, frozen tokenizer, straight-through, and learning on real crops."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, require_data, write_one_person_coco
from edge_pct.config import ModelConfig, TrainConfig
from edge_pct.models.classifier import PoseClassifier
from edge_pct.models.factory import build_classifier, load_classifier
from edge_pct.models.tokenizer import PoseTokenizer
from edge_pct.train.checkpoint import save_checkpoint
from edge_pct.train.classifier import _ckpt_config, classifier_loss, heatmap_targets, training_persons

TINY = ModelConfig(width=0.25, input_size=(48, 64), head_channels=8, head_blocks=1, token_hidden=16, mixer_layers=1,
                   mixer_channel_hidden=16, mixer_token_hidden=8)


@pytest.fixture
def tiny_model(tiny_tokenizer_cfg):
    torch.manual_seed(0)
    tok = PoseTokenizer(dataclasses.replace(tiny_tokenizer_cfg, input_size=(96, 128))).eval()
    return PoseClassifier(TINY, tok)


def test_forward_shapes(tiny_model):
    tiny_model.train()
    out = tiny_model(torch.rand(2, 3, 64, 48) * 255)
    m, v = tiny_model.tokenizer.cfg.num_tokens, tiny_model.tokenizer.cfg.codebook_size
    assert out["logits"].shape == (2, m, v)
    assert out["joints"].shape == (2, 17, 2) and out["confidence"].shape == (2, 17)
    assert out["heatmaps"].shape == (2, 17, 8, 6)
    assert ((out["confidence"] >= 0) & (out["confidence"] <= 1)).all()
    tiny_model.eval()
    assert "heatmaps" not in tiny_model(torch.rand(1, 3, 64, 48))


def test_fused_heatmap_head_reads_the_deep_features(tiny_tokenizer_cfg):
    """aux_features="fused": stride-8 heatmaps whose values depend on the stride-32 features too."""
    tok = PoseTokenizer(dataclasses.replace(tiny_tokenizer_cfg, input_size=(96, 128))).eval()
    model = PoseClassifier(dataclasses.replace(TINY, aux_features="fused"), tok).train()
    x = torch.rand(2, 3, 64, 48, requires_grad=True) * 255
    hm = model(x)["heatmaps"]
    assert hm.shape == (2, 17, 8, 6)
    deep = next(model.backbone.features[-1].parameters())  # the last (stride-32) block
    (grad,) = torch.autograd.grad(hm.sum(), deep)
    assert grad.abs().sum() > 0


def test_heatmap_refinement_takes_a_sharp_peak_and_otherwise_keeps_the_token_joint():
    """Joint 0: a sharp heatmap peak 1.5 cells from the token joint -> the peak. Joint 1: a flat heatmap -> the
    token joint. Joint 2: two equal peaks (a limb and its twin) -> the one near the token joint."""
    from edge_pct.models.classifier import refine_with_heatmap

    peak_a, peak_b = torch.tensor([19.5, 35.5]), torch.tensor([35.5, 11.5])  # cell centres (2, 4) and (4, 1)
    hm = torch.zeros(1, 3, 8, 6)
    hm[0, 0] = 20 * heatmap_targets(peak_a.view(1, 1, 2), (8, 6), 8)[0, 0]
    hm[0, 2] = 20 * (heatmap_targets(peak_a.view(1, 1, 2), (8, 6), 8) + heatmap_targets(peak_b.view(1, 1, 2), (8, 6),
                                                                                         8))[0, 0]
    tokens = torch.stack([peak_a + 12, torch.tensor([21.0, 30.0]), peak_b - 6])[None]
    refined = refine_with_heatmap(tokens, hm, stride=8, sigma=2.0)[0]
    assert (refined[0] - peak_a).norm() < 1.0
    assert (refined[1] - tokens[0, 1]).norm() < 0.05  # the posterior is the prior itself: its vertex is exact
    assert (refined[2] - peak_b).norm() < 1.0


def test_heatmap_refinement_finds_the_sub_cell_position_of_a_trained_peak():
    """Heatmap logits as the cross-entropy training makes them (the log of the Gaussian target, up to a constant):
    the refinement recovers joints between cell centres to a tenth of a pixel at stride 8; a 3x3 centroid would be
    off by up to 2 px. The prior is wide and centred elsewhere, so the heatmap decides."""
    from edge_pct.models.classifier import refine_with_heatmap

    truth = torch.tensor([[[13.0, 22.0], [20.9, 41.3], [27.5, 30.0]]])  # 0.0 to 0.5 cells off the cell centres
    hm = heatmap_targets(truth, (8, 6), 8).log()
    refined = refine_with_heatmap(truth + torch.tensor([3.0, -2.0]), hm, stride=8, sigma=50.0)
    assert (refined - truth).norm(dim=-1).max() < 0.1
    # a peak in a border cell has one neighbour: it stays at that cell's centre (bounded, no sub-cell step)
    edge = torch.tensor([[[1.0, 22.0], [20.9, 62.5]]])  # in column 0; in the last row (cell centre y 59.5)
    refined = refine_with_heatmap(edge, heatmap_targets(edge, (8, 6), 8).log(), stride=8, sigma=50.0)
    torch.testing.assert_close(refined[0, :, 0], torch.tensor([3.5, 20.9]), atol=0.1, rtol=0)
    torch.testing.assert_close(refined[0, :, 1], torch.tensor([22.0, 59.5]), atol=0.1, rtol=0)


def test_refine_model_outputs_the_refined_joints(tiny_tokenizer_cfg):
    from edge_pct.core.errors import ConfigError
    from edge_pct.models.classifier import refine_with_heatmap

    tok = PoseTokenizer(dataclasses.replace(tiny_tokenizer_cfg, input_size=(96, 128))).eval()
    torch.manual_seed(0)
    model = PoseClassifier(dataclasses.replace(TINY, refine="heatmap"), tok).eval()
    x = torch.rand(2, 3, 64, 48) * 255
    with torch.no_grad():
        model.aux_heatmap[-1].weight.mul_(100)  # untrained heatmaps are flat: the refinement would change nothing
        out = model(x)
        tokens = model.decode(model.assign(out["logits"]))
        hm = model.aux_heatmap(model.backbone((x - model.mean) / model.std)[0])
        train_out = model.train()(x)
    sigma = TINY.refine_sigma * 64 / 8  # crop heights -> stride-8 cells
    torch.testing.assert_close(out["joints"], refine_with_heatmap(tokens, hm, 8, sigma))
    assert "heatmaps" not in out and (out["joints"] - tokens).abs().max() > 0.1
    # training sees the token joints (the losses are unchanged) and the heatmaps
    torch.testing.assert_close(train_out["joints"], model.decode(model.assign(train_out["logits"])))
    assert train_out["heatmaps"].shape == (2, 17, 8, 6)
    with pytest.raises(ConfigError, match="aux_heatmap"):
        build_classifier(dataclasses.replace(TINY, refine="heatmap", aux_heatmap=False), tok)
    with pytest.raises(ConfigError, match="refine_sigma"):
        build_classifier(dataclasses.replace(TINY, refine="heatmap", refine_sigma=0.0), tok)


def test_token_projection_regridded_for_a_larger_input_keeps_a_uniform_map_s_output():
    """resize_token_projection (train --init at another input size): on a spatially uniform feature map the head's
    first Linear gives the same output at 128x128 as at 64x64 (a 2x2 grid -> 4x4)."""
    from edge_pct.models.classifier import resize_token_projection, token_grid

    c = 5
    weight = torch.randn(7, 2 * 2 * c)
    big = resize_token_projection(weight, c, (64, 64), (128, 128))
    assert token_grid((64, 64)) == (2, 2) and token_grid((96, 128)) == (4, 3) and big.shape == (7, 4 * 4 * c)
    feat = torch.randn(c)
    torch.testing.assert_close(big @ feat.repeat(16), weight @ feat.repeat(4))  # spatial-major: cells x channels
    torch.testing.assert_close(resize_token_projection(weight, c, (64, 64), (64, 64)), weight)


def test_tokenizer_stays_frozen(tiny_model):
    tiny_model.train()
    assert not tiny_model.tokenizer.training
    assert not any(p.requires_grad for p in tiny_model.tokenizer.parameters())
    before = tiny_model.tokenizer.codebook.codebook.clone()
    out = tiny_model(torch.rand(2, 3, 64, 48) * 255)
    out["joints"].sum().backward()
    torch.testing.assert_close(tiny_model.tokenizer.codebook.codebook, before)
    assert tiny_model.head.cls_pred.weight.grad is not None


def test_joints_scale_from_tokenizer_to_input_pixels(tiny_model):
    """Decoding the same token weights gives joints scaled by input height / tokenizer crop height (64 / 128)."""
    tcfg = tiny_model.tokenizer.cfg
    probs = torch.softmax(torch.randn(1, tcfg.num_tokens, tcfg.codebook_size), -1)
    torch.testing.assert_close(tiny_model.decode(probs), tiny_model.tokenizer.decode_probs(probs) * 0.5)


def test_straight_through_uses_the_hard_code_forward_and_soft_gradient(tiny_model):
    st = PoseClassifier(dataclasses.replace(TINY, assignment="straight_through"), tiny_model.tokenizer)
    logits = torch.randn(2, tiny_model.tokenizer.cfg.num_tokens, tiny_model.tokenizer.cfg.codebook_size,
                         requires_grad=True)
    w = st.assign(logits)
    torch.testing.assert_close(w.detach(), torch.nn.functional.one_hot(logits.argmax(-1), w.shape[-1]).float())
    (w * torch.randn_like(w)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_aspect_mismatch_is_refused(tiny_tokenizer_cfg):
    from edge_pct.core.errors import EdgePctError

    with pytest.raises(EdgePctError, match="aspect"):
        build_classifier(TINY, PoseTokenizer(dataclasses.replace(tiny_tokenizer_cfg, input_size=(128, 128))))


def test_heatmap_targets_peak_at_the_joint():
    hm = heatmap_targets(torch.tensor([[[19.5, 35.5]]]), (8, 6), stride=8)  # centre of cell (x 2, y 4)
    assert hm.shape == (1, 1, 8, 6)
    y, x = divmod(int(hm.flatten().argmax()), 6)
    assert (x, y) == (2, 4) and hm[0, 0, 4, 2] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["ce", "mse"])
def test_heatmap_loss_is_lowest_at_the_target_and_reports_the_peak_error(kind):
    from edge_pct.train.classifier import heatmap_terms

    joints = torch.tensor([[[19.5, 35.5], [3.5, 3.5]]])  # cell centres (2, 4) and (0, 0) on the stride-8 grid
    labeled = torch.ones(1, 2)
    target = heatmap_targets(joints, (8, 6), stride=8)
    logits = target * 20 if kind == "ce" else target  # CE scores a spatial softmax: make the peak dominant
    good = heatmap_terms(logits, joints, labeled, (48, 64), kind)
    bad = heatmap_terms(logits.flip(-1), joints, labeled, (48, 64), kind)
    assert float(good["heatmap"]) < float(bad["heatmap"])
    assert float(good["heatmap_err"]) == pytest.approx(0.0, abs=1e-5)
    assert float(bad["heatmap_err"]) > 8


def test_checkpoint_round_trip(tiny_model, tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", "classifier", _ckpt_config(tiny_model), tiny_model.eval())
    loaded = load_classifier(path)
    x = torch.rand(2, 3, 64, 48) * 255
    torch.testing.assert_close(loaded(x)["joints"], tiny_model(x)["joints"])


def test_loss_decreases_on_a_tiny_real_batch(tiny_model):
    """Eight real LSP-extended crops: 60 steps lower the loss well below its start, token CE and heatmap terms
    included. (The joint L1 barely moves here: the random tiny tokenizer's decoder is almost constant.)"""
    root = require_data(SHARED_DATA / "lspet")
    from edge_pct.data.lsp import load_lsp
    from edge_pct.data.topdown import CropDataset
    from edge_pct.data.transforms import PoseAugment

    persons = load_lsp(root, "train").subset(np.arange(8))
    ds = CropDataset(persons, TINY.input_size, 1.25, PoseAugment())
    batch = {k: torch.stack([ds[i][k] for i in range(8)]) for k in ("image", "joints", "labeled", "visible")}
    t = TrainConfig()
    opt = torch.optim.AdamW([p for p in tiny_model.parameters() if p.requires_grad], lr=3e-3)
    tiny_model.train()
    terms = ("loss", "ce", "heatmap")
    history = {k: [] for k in terms}
    for _ in range(60):
        res = classifier_loss(tiny_model, tiny_model(batch["image"]), batch, t)
        opt.zero_grad()
        res["loss"].backward()
        opt.step()
        for k in terms:
            history[k].append(res[k].item())
    start, end = ({k: np.mean(v[s]) for k, v in history.items()} for s in (slice(0, 5), slice(-5, None)))
    assert end["loss"] < 0.8 * start["loss"], history["loss"][::10]
    assert all(end[k] < start[k] for k in terms), (start, end)


def test_training_persons_repeat_the_small_coco_set(tmp_path):
    """train.coco_repeat: each epoch sees the COCO-format set that many times."""
    ann = write_one_person_coco(tmp_path, np.zeros((100, 100, 3), np.uint8))
    t = TrainConfig(lsp_root="", coco_ann=str(ann), coco_images=str(tmp_path), coco_repeat=3)
    persons = training_persons(t)
    assert len(persons) == 3 and len(set(persons.paths)) == 1
    np.testing.assert_array_equal(persons.keypoints[0], persons.keypoints[2])


def test_sharpen_augmentation_steepens_soft_edges():
    """A blurred step edge (a soft, upsampled person outline) comes out steeper, its flat sides unchanged on
    average; with probability 0 the crop passes through untouched and no random number is drawn (the runs
    before the augmentation keep their augmentation stream)."""
    import cv2

    from edge_pct.data.topdown import _sharpen

    crop = np.full((64, 48, 3), 60, np.uint8)
    crop[:, 24:] = 180
    soft = cv2.GaussianBlur(crop, (0, 0), 1.0)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert _sharpen(rng, soft, 0.0) is soft and rng.bit_generator.state == state
    sharpened = [_sharpen(rng, soft, 1.0) for _ in range(10)]
    assert all(s.dtype == np.uint8 and s.shape == soft.shape for s in sharpened)
    steepest = [np.abs(np.diff(img[32, :, 0].astype(int))).max() for img in (soft, *sharpened)]
    assert min(steepest[1:]) > steepest[0] and np.mean(steepest[1:]) > 1.15 * steepest[0], steepest
    sharp = sharpened[0]
    assert abs(sharp[:, :12].mean() - 60) < 1 and abs(sharp[:, -12:].mean() - 180) < 1


def test_train_command_runs_resumes_and_writes_a_loadable_model(tmp_path, tiny_model, capsys):
    """`edge-pct train` on a 4-person synthetic COCO set: finishes, resumes, and eval-able model.pt."""
    import json

    import cv2

    from edge_pct.cli import main

    images = tmp_path / "images"
    images.mkdir()
    anns = []
    for i in range(4):
        cv2.imwrite(str(images / f"{i}.jpg"), np.random.default_rng(i).integers(0, 255, (80, 60, 3), dtype=np.uint8))
        kp = np.stack([np.linspace(10, 50, 17), np.linspace(5, 75, 17), np.full(17, 2.0)], 1)
        anns.append({"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "bbox": [10, 5, 40, 70],
                     "area": 1500.0, "num_keypoints": 17, "keypoints": kp.ravel().tolist()})
    data = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 60, "height": 80} for i in range(4)],
            "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    tok_path = save_checkpoint(tmp_path / "tok.pt", "tokenizer", tiny_model.tokenizer.cfg, tiny_model.tokenizer)
    model_sets = [f"model.{k}={v!r}" for k, v in dataclasses.asdict(TINY).items() if k in
                  ("width", "head_channels", "head_blocks", "token_hidden", "mixer_layers", "mixer_channel_hidden",
                   "mixer_token_hidden")] + ["model.input_size=[48, 64]"]
    sets = model_sets + [f"train.tokenizer='{tok_path}'", "train.lsp_root=''",
                         f"train.coco_ann='{tmp_path / 'ann.json'}'", f"train.coco_images='{images}'",
                         "train.batch_size=2", "train.epochs=2", "train.workers=0", "train.warmup_iters=1",
                         "train.checkpoint_every=1"]
    argv = ["train", "--variant", "pct-lite-mnv2", "--out", str(tmp_path / "run"), "--json", str(tmp_path / "r.json")]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["finished"] and res["iterations"] == 4 and np.isfinite(res["final_loss"])
    assert main(argv) == 0  # resumes at the end: nothing left to do
    model = load_classifier(tmp_path / "run" / "model.pt")
    assert model.cfg.input_size == (48, 64)
    # --init: a new run from those weights (at a negligible learning rate it ends where it started)
    again = [a.replace(str(tmp_path / "run"), str(tmp_path / "run2")) for a in argv]
    assert main(again + ["--init", str(tmp_path / "run" / "model.pt"), "--set", "train.lr=1e-12"]) == 0
    continued = load_classifier(tmp_path / "run2" / "model.pt")
    for name in ("head.cls_pred.weight", "backbone.features.0.0.weight"):
        torch.testing.assert_close(continued.state_dict()[name], model.state_dict()[name])
    # --init at another input size: the backbone carries over, the head's token projection is re-gridded
    bigger = [a.replace("[48, 64]", "[96, 128]").replace(str(tmp_path / "run2"), str(tmp_path / "run3"))
              for a in again]
    assert main(bigger + ["--init", str(tmp_path / "run" / "model.pt"), "--set", "train.lr=1e-12"]) == 0
    big = load_classifier(tmp_path / "run3" / "model.pt")
    assert big.cfg.input_size == (96, 128)
    torch.testing.assert_close(big.state_dict()["backbone.features.0.0.weight"],
                               model.state_dict()["backbone.features.0.0.weight"])
    other = [a.replace("head_channels=8", "head_channels=16") for a in again]
    assert main(other + ["--init", str(tmp_path / "run" / "model.pt")]) == 2
    assert "another model config" in capsys.readouterr().err


def test_train_starts_the_cspdarknet_from_the_yolox_detector(tmp_path, tiny_model, capsys):
    """`edge-pct train --variant pct-lite` with train.backbone_init: the run starts from YOLOX-Nano's weights
    (after 2 small steps the stem is still the detector's, RGB-ordered)."""
    import json

    from conftest import YOLOX_NANO, write_one_person_coco
    from edge_pct.cli import main
    from edge_pct.models.cspdarknet import CSPDarknetPAFPN, load_yolox_onnx

    require_data(YOLOX_NANO)

    ann = write_one_person_coco(tmp_path, np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8))
    tok_path = save_checkpoint(tmp_path / "tok.pt", "tokenizer", tiny_model.tokenizer.cfg, tiny_model.tokenizer)
    sets = ["model.head_channels=8", "model.head_blocks=1", "model.token_hidden=16", "model.mixer_layers=1",
            f"train.tokenizer='{tok_path}'", "train.lsp_root=''", f"train.coco_ann='{ann}'",
            f"train.coco_images='{tmp_path}'", f"train.backbone_init='{YOLOX_NANO}'", "train.batch_size=1",
            "train.epochs=2", "train.workers=0", "train.lr=1e-5", "train.warmup_iters=1"]
    argv = ["train", "--variant", "pct-lite", "--out", str(tmp_path / "run"), "--json", str(tmp_path / "r.json")]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    assert json.loads((tmp_path / "r.json").read_text())["iterations"] == 2
    yolox = CSPDarknetPAFPN(0.25, 0.33)
    load_yolox_onnx(yolox, YOLOX_NANO)
    stem = load_classifier(tmp_path / "run" / "model.pt").backbone.stem[0].weight
    torch.testing.assert_close(stem, yolox.stem[0].weight, atol=1e-3, rtol=0)  # fp32 checkpoint, 2 steps of 1e-5
    capsys.readouterr()


@pytest.mark.parametrize(("name", "min_pck"), [("pct_lite.pt", 0.4), ("pct_lite_fast.pt", 0.33)])
def test_shipped_models_pose_held_out_lsp_persons(name, min_pck):
    """The shipped models on the first 200 held-out LSP-extended persons (never trained on): PCK@0.2 above
    `min_pck` (0.562 / 0.423 on all 737, README), and the per-joint confidence is higher where the joints are right."""
    from edge_pct.core.package import WEIGHTS_DIR
    from edge_pct.data.lsp import load_lsp
    from edge_pct.eval.evaluate import pck, predict_persons, torch_estimator

    persons = load_lsp(require_data(SHARED_DATA / "lspet"), "heldout").subset(np.arange(200))
    joints, scores, _, _ = predict_persons(torch_estimator(load_classifier(WEIGHTS_DIR / name)), persons)
    assert pck(joints, persons.keypoints)["pck"] > min_pck
    gt = persons.keypoints
    torso = np.linalg.norm(gt[:, 5, :2] - gt[:, 12, :2], axis=-1)[:, None]
    hit = np.linalg.norm(joints - gt[..., :2], axis=-1) <= 0.2 * torso
    labeled = gt[..., 2] > 0
    assert scores[hit & labeled].mean() > scores[~hit & labeled].mean()
