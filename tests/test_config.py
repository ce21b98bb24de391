"""Config dataclasses <-> TOML, overrides and their errors."""

from __future__ import annotations

import dataclasses

import pytest

from edge_pct.config import RunConfig, load_config, save_config
from edge_pct.core.errors import ConfigError


def test_toml_round_trip(tmp_path):
    sets = ["tokenizer.token_dim=256", "tokenizer_train.lr=3e-4", "tokenizer.input_size=[144, 192]"]
    cfg = load_config(overrides=sets)
    assert cfg.tokenizer.token_dim == 256 and cfg.tokenizer_train.lr == 3e-4
    assert cfg.tokenizer.input_size == (144, 192)
    save_config(cfg, tmp_path / "c.toml")
    assert load_config(tmp_path / "c.toml") == cfg
    assert not list(tmp_path.glob("*.tmp"))


def test_defaults_are_the_paper():
    cfg = RunConfig()
    t = cfg.tokenizer
    assert (t.num_tokens, t.codebook_size, t.token_dim, t.enc_layers, t.ema_decay) == (34, 2048, 512, 4, 0.9)
    assert cfg.tokenizer_train.commit_weight == 15.0 and cfg.tokenizer_train.keep_prob == 0.8


def test_shipped_configs_load():
    from conftest import REPO

    for path in sorted((REPO / "configs").glob("tokenizer_*.toml")):
        load_config(path)
    from edge_pct.config import config_to_dict
    from edge_pct.models.factory import MODEL_VARIANTS

    lite = {"model": config_to_dict(MODEL_VARIANTS["pct-lite"])}
    stage1 = load_config(REPO / "configs" / "pct_lite.toml", base=lite)
    stage2 = load_config(REPO / "configs" / "pct_lite_relu.toml", base=lite)
    assert (stage1.model.activation, stage2.model.activation) == ("silu", "relu")
    assert stage1.model == dataclasses.replace(stage2.model, activation="silu")  # the shipped model's two stages


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tokenizer.token_dimm=3", "Did you mean 'token_dim'"),
        ("tokenizer_trian.lr=1", "Unknown config key 'tokenizer_trian'"),
        ("tokenizer.token_dim='big'", "expected int"),
        ("tokenizer.input_size=[1]", "expected a list of 2"),
        ("tokenizer.token_dim", "section.key=value"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(overrides=[override])


def test_toml_booleans_on_the_command_line():
    assert load_config(overrides=["tokenizer_train.oks_weighted_l1=true"]).tokenizer_train.oks_weighted_l1 is True
    assert load_config(overrides=["stream.smoothing=false"]).stream.smoothing is False
    with pytest.raises(ConfigError, match="expected bool"):
        load_config(overrides=["stream.smoothing=yes"])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[tokenizer\nx=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
