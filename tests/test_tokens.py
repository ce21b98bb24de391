"""The token explorer: on a hand-built tokenizer whose token m drives exactly one set of joints, the locality
measurement, the per-pose explorer and the pictures find exactly those joints; `edge-pct tokens` writes its files on
a tiny tokenizer and turns bad input into one line and exit code 2; on the real COCO val poses (skipped when absent)
the shipped tokenizer's figures are measured."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from conftest import COCO_VAL, require_data, tiny_tokenizer_config
from edge_pct.cli import main
from edge_pct.core.keypoints import COCO17_NAMES
from edge_pct.models.tokenizer import PoseTokenizer
from edge_pct.tokens import pictures
from edge_pct.tokens.explore import TokenExplorer
from edge_pct.tokens.locality import (
    LIMBS,
    chance_within_one_limb,
    measure_locality,
    pick_donors,
    summarize_shifts,
    within_one_limb,
)
from edge_pct.tokens.survey import TokenSurveyOptions, survey_tokens

# Token m of the hand-built tokenizer drives these joints and no others; tokens 5-7 drive nothing.
DRIVES = {0: LIMBS["left arm"], 1: LIMBS["right arm"], 2: LIMBS["left leg"], 3: LIMBS["right leg"], 4: LIMBS["head"]}
BOX = 100.0  # crop px: the threshold is 5 px


def local_tokenizer(seed: int = 0) -> PoseTokenizer:
    """A tiny tokenizer whose decoder is local by construction: the token-to-joint mixing is the DRIVES mask, and the
    decoder's mixer layers are identities across joints (their token MLPs output zero), so joint j depends on the
    tokens that drive it only. The output layer is scaled up so any code change moves a driven joint by far more
    than 5 px."""
    torch.manual_seed(seed)
    model = PoseTokenizer(tiny_tokenizer_config())
    with torch.no_grad():
        mask = torch.zeros(model.cfg.num_joints, model.cfg.num_tokens)
        for m, joints in DRIVES.items():
            mask[list(joints), m] = 1.0
        model.decoder_token_mlp.weight.copy_(mask)
        model.decoder_token_mlp.bias.zero_()
        for layer in model.decoder:
            layer.token_mlp[2].weight.zero_()
            layer.token_mlp[2].bias.zero_()
        model.recover_embed.weight.mul_(400.0)
    return model.eval()


def _features(model: PoseTokenizer, n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    codes = np.random.default_rng(seed).integers(0, model.cfg.codebook_size, (n, model.cfg.num_tokens))
    return model.codebook.lookup(torch.from_numpy(codes)), codes


def test_pick_donors_never_picks_the_pose_itself_nor_its_own_code():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, (50, 4))
    codes[:, 3] = 7  # a token that only ever takes one code: no swap is possible
    donors = pick_donors(50, 4, 6, rng, codes)
    assert (donors != np.arange(50)[:, None, None]).all()
    ok = donors[:, :3] >= 0
    assert ok.all() and (donors[:, 3] == -1).all()
    token = np.broadcast_to(np.arange(3)[None, :, None], donors[:, :3].shape)
    assert (codes[donors[:, :3], token] != codes[:, :3, None]).all()


def test_a_swap_moves_exactly_the_joints_its_token_drives():
    model = local_tokenizer()
    feats, codes = _features(model, 40)
    summary, shift = measure_locality(model.decode_features, feats, np.full(40, BOX, np.float32), k=3, codes=codes)
    assert shift.shape == (40, 8, 3, 17)
    for m in range(8):
        driven = np.zeros(17, bool)
        driven[list(DRIVES.get(m, ()))] = True
        assert np.nanmax(shift[:, m][..., ~driven], initial=0.0) < 1e-4  # nothing else moves at all
        if driven.any():
            assert (shift[:, m][..., driven] > 0.05).all()  # every driven joint moves beyond 5% of the box
        t = summary["per_token"][m]
        assert set(t["territory"]) == {COCO17_NAMES[j] for j in np.nonzero(driven)[0]} or not driven.any()
    assert summary["share_within_one_limb"] == 1.0  # each token drives one limb
    assert summary["share_moving_none"] == pytest.approx(3 / 8)  # tokens 5-7 drive nothing
    assert summary["median_joints_moved"] == 3.0
    assert summary["all_tokens_redrawn"]["median_joints_moved"] == 17.0
    assert [summary["per_token"][m]["limb"] for m in range(5)] == ["left arm", "right arm", "left leg", "right leg",
                                                                   "head"]


def test_the_explorer_sees_the_same_joints_on_one_pose():
    model = local_tokenizer()
    explorer = TokenExplorer(model)
    codes = np.random.default_rng(1).integers(0, 64, 8)
    governing = explorer.governing(codes)
    for m, joints in DRIVES.items():
        assert (governing[list(joints)] == m).all()
    base = explorer.decode(codes)
    stepped = explorer.stepped(codes, 0, 1)
    assert stepped[0] == explorer.neighbour(codes[0], 1) != codes[0] and (stepped[1:] == codes[1:]).all()
    moved = np.nonzero(np.linalg.norm(explorer.decode(stepped) - base, axis=-1) > 1e-4)[0]
    assert set(moved) == set(LIMBS["left arm"])
    assert explorer.neighbour(codes[0], 0) == codes[0]  # step 0 is the code itself
    assert explorer.swaps(codes, 2, np.array([3, 4, 5])).shape == (3, 17, 2)


def test_summary_references_and_limb_rule():
    assert chance_within_one_limb(np.array([1, 1])) == 1.0  # one joint always lies in one limb
    assert chance_within_one_limb(np.array([17])) == 0.0
    moved = np.zeros((3, 17), bool)
    moved[0, [5, 7]] = True  # left arm only
    moved[1, [5, 6]] = True  # both shoulders: two limbs
    assert within_one_limb(moved).tolist() == [True, False, False]
    shift = np.zeros((2, 17), np.float32)
    shift[0, 5] = 0.2
    s = summarize_shifts(shift)
    assert s["swaps"] == 2 and s["share_moving_none"] == 0.5 and s["joints_moved_histogram"][:2] == [1, 1]


def test_pictures_are_pngs_with_a_legend():
    model = local_tokenizer()
    explorer = TokenExplorer(model)
    codes = np.arange(8)
    base = explorer.decode(codes)
    size = explorer.input_size
    images = [
        pictures.token_map_picture(base, codes, explorer.governing(codes), size, "test"),
        pictures.swap_picture(base, explorer.swaps(codes, 0, np.array([9, 10])), 0, 0, [9, 10], ["left_wrist"],
                              size, 8, 0.05),
        pictures.swap_grid_picture(base, [explorer.swaps(codes, m, np.array([20])) for m in range(8)],
                                   ["limb"] * 8, size, 1),
        pictures.atlas_picture(base, base[None] + 1.0, [(3, 0, 10)], size, 8, BOX),
        pictures.territory_picture(np.random.default_rng(0).random((8, 17)), ["limb"] * 8),
    ]
    for image in images:
        decoded = cv2.imdecode(np.frombuffer(pictures.encode_png(image), np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == image.shape and image.shape[1] >= 640
        legend = image[-30:]  # the legend's text is lighter than the background
        assert (legend.max(-1) > 120).any()


def _tiny_coco(path, n: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    anns = []
    for i in range(n):
        x, y, w, h = rng.uniform(10, 50), rng.uniform(10, 50), rng.uniform(40, 80), rng.uniform(100, 160)
        kp = np.stack([x + rng.uniform(0, w, 17), y + rng.uniform(0, h, 17), np.full(17, 2.0)], 1)
        anns.append({"id": i + 1, "image_id": i // 3 + 1, "category_id": 1, "iscrowd": 0, "bbox": [x, y, w, h],
                     "area": w * h, "num_keypoints": 17, "keypoints": kp.ravel().tolist()})
    images = [{"id": i + 1, "file_name": f"{i + 1}.jpg", "width": 300, "height": 300} for i in range(n // 3 + 1)]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    return path


@pytest.fixture
def tiny_checkpoint(tmp_path):
    from edge_pct.train.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path / "tok.pt", "tokenizer", tiny_tokenizer_config(), local_tokenizer())


def test_survey_writes_the_pictures_and_figures(tmp_path, tiny_checkpoint):
    ann = _tiny_coco(tmp_path / "ann.json")
    res = survey_tokens(tmp_path / "out", TokenSurveyOptions(checkpoint=tiny_checkpoint, coco_ann=ann, k=2))
    names = {p.name for p in (tmp_path / "out").iterdir()}
    swap = [n for n in names if n.startswith("swap_token")]
    assert names - set(swap) == {"atlas.png", "locality.json", "swaps_all.png", "territory.png", "token_map.png"}
    assert len(swap) == 1 and res["files"][-1].endswith("locality.json")
    saved = json.loads((tmp_path / "out" / "locality.json").read_text())
    assert saved["locality"]["poses"] == 30 and saved["usage"]["persons"] == 30
    assert saved["locality"]["share_within_one_limb"] == 1.0
    assert saved["usage"]["dead_codes"] == 64 - saved["usage"]["codes_used"]
    assert not list((tmp_path / "out").glob(".*"))  # no temp files left


def test_cli_tokens_bad_input_is_one_line_and_exit_2(tmp_path, tiny_checkpoint, capsys):
    ann = _tiny_coco(tmp_path / "ann.json")
    cases = [
        ["--coco-ann", str(tmp_path / "missing.json")],
        ["--coco-ann", str(ann), "--checkpoint", str(ann)],
        ["--coco-ann", str(ann), "--checkpoint", str(tiny_checkpoint), "--image", "a.jpg", "--video", "b.avi"],
        ["--coco-ann", str(ann), "--checkpoint", str(tiny_checkpoint), "--token", "99"],
        ["--coco-ann", str(ann), "--checkpoint", str(tiny_checkpoint), "--image", str(tmp_path / "none.jpg")],
        ["--coco-ann", str(ann), "--checkpoint", str(tiny_checkpoint), "--threshold", "2"],
    ]
    for extra in cases:
        assert main(["tokens", "--out", str(tmp_path / "o"), *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("edge-pct tokens: error:"), (extra, err)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_cli_tokens_prints_a_table_and_json(tmp_path, tiny_checkpoint, capsys):
    ann = _tiny_coco(tmp_path / "ann.json")
    assert main(["tokens", "--out", str(tmp_path / "o"), "--coco-ann", str(ann), "--checkpoint",
                 str(tiny_checkpoint), "--k", "1", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "within one limb" in out
    assert json.loads((tmp_path / "r.json").read_text())["locality"]["swaps_per_token"] == 1


@pytest.mark.data
def test_shipped_tokenizer_on_real_coco_poses(tmp_path):
    ann = require_data(COCO_VAL)
    res = survey_tokens(tmp_path, TokenSurveyOptions(coco_ann=ann, max_poses=60, k=1))
    u, loc = res["usage"], res["locality"]
    assert u["persons"] > 6000 and u["codes_used"] + u["dead_codes"] == u["codebook_size"]
    assert 1 < u["perplexity"] <= u["codebook_size"]
    assert loc["poses"] == 60 and loc["swaps"] == 60 * loc["tokens"]
    assert 0 <= loc["median_joints_moved"] <= 17 and loc["all_tokens_redrawn"]["median_joints_moved"] > 8
    assert res["reconstruction"]["mean_err_box"] < 0.05  # the shipped tokenizer reconstructs real poses closely
