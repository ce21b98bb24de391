"""The shipped models' recipes (configs/recipes/) are runnable data: every stage's config and overrides load, every
stage starts from an earlier one, and the runner prints the exact chain."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from conftest import REPO
from edge_pct.cli import build_parser
from edge_pct.config import config_to_dict, load_config
from edge_pct.models.factory import MODEL_VARIANTS

sys.path.insert(0, str(REPO / "tools"))
from recipe import read_recipe, stage_argv  # noqa: E402

RECIPES = sorted((REPO / "configs" / "recipes").glob("*.toml"))


def test_there_is_a_recipe_per_shipped_model():
    assert {p.stem for p in RECIPES} == {p.stem for p in (REPO / "edge_pct" / "weights").glob("*.pt")}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_stage_parses_and_its_config_loads(recipe, tmp_path):
    stages = read_recipe(recipe)
    assert stages
    for stage in stages:
        args = build_parser().parse_args(stage_argv(stage, tmp_path, stages))
        base = {"model": config_to_dict(MODEL_VARIANTS[args.variant])} if args.command == "train" else None
        cfg = load_config(REPO / args.config if args.config else None, args.set, base=base)  # unknown keys raise
        if args.command == "train":
            assert cfg.train.lsp_last <= 9000
        if stage["init"]:
            assert args.init.startswith(str(tmp_path / stage["init"]))


def test_the_runner_prints_the_chain_and_skips_finished_stages(tmp_path):
    recipe = REPO / "configs" / "recipes" / "pct_lite_fast.toml"
    (tmp_path / "pct_lite").mkdir()
    (tmp_path / "pct_lite" / "model.pt").write_bytes(b"")
    run = subprocess.run([sys.executable, str(REPO / "tools" / "recipe.py"), str(recipe), "--out", str(tmp_path),
                          "--dry-run"], capture_output=True, text=True, cwd=REPO, check=True)
    lines = run.stdout.splitlines()
    assert len(lines) == len(read_recipe(recipe)) and lines[0].startswith("# done: edge-pct train")
    second = shlex.split(lines[1].split("  # ")[0])
    assert second[second.index("--init") + 1] == str(tmp_path / "pct_lite" / "model.pt")


def test_lsp_last_limits_the_training_images_and_never_reaches_the_held_out_slice():
    from conftest import SHARED_DATA, require_data
    from edge_pct.core.errors import ConfigError
    from edge_pct.data.lsp import load_lsp

    root = require_data(SHARED_DATA / "lspet" / "joints.npz").parent
    first = load_lsp(root, "train", last=6000)
    assert first.image_ids.max() <= 6000 and len(first) > 5000
    assert load_lsp(root, "train").image_ids.max() <= 9000
    with pytest.raises(ConfigError, match="lsp_last=9500 is out of range"):
        load_lsp(root, "train", last=9500)
