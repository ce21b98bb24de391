"""Configuration: frozen dataclasses are the schema, TOML is the only file format.

`load_config(path, overrides)` reads a TOML file (missing sections and keys keep their defaults) and
applies `--set section.key=value` overrides; `save_config` writes one back. Unknown keys and wrongly
typed values raise ConfigError with a "did you mean" hint.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_pct.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 6 ships Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class TokenizerConfig:
    """The pose tokenizer (PCT stage 1): MLP-Mixer encoder -> M tokens -> codebook -> MLP-Mixer decoder.

    Coordinates are pixels in the crop frame `input_size` = (width, height), the image model's input.
    The defaults are the paper's sizes with edge-pct's two training choices (dead-code restarts, `coord_scale` 64);
    the TOML files are the variants: `configs/tokenizer_paper.toml` is the paper exactly, `configs/tokenizer_cpu.toml`
    the shipped tokenizer.
    """

    num_joints: int = 17
    num_tokens: int = 34  # M
    codebook_size: int = 2048  # V
    token_dim: int = 512  # codebook entry size
    enc_dim: int = 512  # encoder channels per joint
    enc_channel_hidden: int = 512
    enc_token_hidden: int = 64
    enc_layers: int = 4
    dec_dim: int = 32
    dec_channel_hidden: int = 64
    dec_token_hidden: int = 64
    dec_layers: int = 1
    ema_decay: float = 0.9
    # A code whose EMA usage falls below this many assignments per step is restarted from an encoder output.
    dead_code_threshold: float = 0.03
    input_size: tuple[int, int] = (192, 256)  # crop (width, height) in pixels
    # Coordinates inside the model are (px - crop centre) / (crop height / 2) * coord_scale, in and out.
    # At 1.0 a pixel is 1/128 unit and the tokenizer learns precision far more slowly (measured: AP 0.39 vs 0.61
    # after 400 iterations); the paper feeds raw 256-crop pixels, i.e. about 128.
    coord_scale: float = 64.0


def check_ranges(section: str, cfg: Any, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
                 unit: tuple[str, ...] = ()) -> None:
    """ConfigError (one line, with the allowed range) for the first field of `cfg` outside its range: `positive`
    > 0, `non_negative` >= 0, `unit` in [0, 1]. Checked when a config is built, before any work starts."""
    rules = [(n, lambda v: v > 0, "> 0") for n in positive] + [(n, lambda v: v >= 0, ">= 0") for n in non_negative]
    rules += [(n, lambda v: 0 <= v <= 1, "in [0, 1]") for n in unit]
    for name, ok, allowed in rules:
        value = getattr(cfg, name)
        if not ok(value):
            raise ConfigError(f"{section}.{name}={value} is out of range: use a value {allowed}")


@dataclass(frozen=True)
class PoseAugment:
    """Top-down crop augmentation strengths, the section both trainers share (flat in TOML: `train.rot_prob`,
    `tokenizer_train.rot_prob`); all zero, the default here, is the plain evaluation crop."""

    flip_prob: float = 0.0
    rot_prob: float = 0.0
    rot_sigma: float = 0.0  # degrees, clipped at 2 sigma
    scale_sigma: float = 0.0  # crop scale ~ clip(N(1, sigma), 1 - sigma, 1 + sigma)
    shift_prob: float = 0.0
    shift_factor: float = 0.0  # of the box size
    half_body_prob: float = 0.0

    def __post_init__(self) -> None:
        check_ranges(self.section, self, non_negative=("rot_sigma", "scale_sigma", "shift_factor"),
                     unit=("flip_prob", "rot_prob", "shift_prob", "half_body_prob"))

    section = "augment"  # the TOML section a subclass lives in (for messages)

    def augmentation(self) -> PoseAugment:
        """These strengths alone (a training config is a PoseAugment with more fields)."""
        return PoseAugment(**{f.name: getattr(self, f.name) for f in dataclasses.fields(PoseAugment)})


@dataclass(frozen=True)
class TokenizerTrainConfig(PoseAugment):
    """Training of the pose tokenizer on COCO poses (docs/method.md §1.6-1.8, with our changes noted)."""

    epochs: int = 50
    batch_size: int = 512
    lr: float = 1e-2
    weight_decay: float = 0.15
    warmup_iters: int = 500
    min_lr_ratio: float = 1e-5  # cosine floor, as a fraction of lr
    keep_prob: float = 0.8  # each joint stays visible to the encoder with this probability
    commit_weight: float = 15.0
    # L1 weight per joint proportional to 1 / OKS sigma (mean 1): spends precision where OKS-AP needs it (eyes, nose)
    # rather than uniformly (the paper). Off by default, as in the paper.
    oks_weighted_l1: bool = False
    padding: float = 1.25  # box -> crop enlargement
    # Pose augmentation (docs/method.md §1.8): the PoseAugment keys, at the paper's strengths
    flip_prob: float = 0.5
    rot_prob: float = 0.6
    rot_sigma: float = 40.0
    scale_sigma: float = 0.5
    shift_prob: float = 0.3
    shift_factor: float = 0.16
    half_body_prob: float = 0.3
    seed: int = 0
    num_threads: int = 0  # torch CPU threads; 0 = torch default
    checkpoint_every: int = 500  # iterations between checkpoints (resume points)
    max_minutes: float = 0.0  # stop (with a checkpoint) after this wall time; 0 = no limit

    section = "tokenizer_train"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self.section, self, positive=("epochs", "batch_size", "lr", "checkpoint_every", "padding"),
                     non_negative=("weight_decay", "warmup_iters", "min_lr_ratio", "commit_weight", "num_threads",
                                   "max_minutes"), unit=("keep_prob",))


@dataclass(frozen=True)
class ModelConfig:
    """The image model (PCT stage 2): light backbone -> PCT class head -> token logits -> frozen decoder.

    `width` scales the MobileNetV2-style backbone; `head_channels` and `token_hidden` size the head
    (the paper: 256 and 64 on a Swin); `assignment` is the paper's soft path or straight-through.
    """

    # "cspdarknet": YOLOX's depthwise CSPDarknet + PAFPN, which can start from YOLOX-Nano's detector weights
    # (train.backbone_init); "mobilenetv2": MobileNetV2, from scratch.
    backbone: Literal["mobilenetv2", "cspdarknet"] = "mobilenetv2"
    width: float = 0.5
    depth: float = 0.33  # cspdarknet only: CSP bottlenecks per stage (YOLOX-Nano: width 0.25, depth 0.33)
    # cspdarknet only: "silu" (YOLOX's own) or "relu", which INT8 fuses into each conv (models/cspdarknet.py). The
    # weights carry over between the two, so `train --init` may switch a trained model.
    activation: Literal["silu", "relu"] = "silu"
    input_size: tuple[int, int] = (192, 256)  # crop (width, height) in pixels
    head_channels: int = 64
    head_blocks: int = 2
    token_hidden: int = 64
    mixer_layers: int = 4
    mixer_channel_hidden: int = 256
    mixer_token_hidden: int = 64
    assignment: Literal["soft", "straight_through"] = "soft"
    aux_heatmap: bool = True  # stride-8 heatmap head: a training aid, and at inference the likelihood of `refine`
    # What the heatmap head reads: "stride8" (the stride-8 features alone: too small a receptive field, it could
    # not even overfit 128 crops) or "fused" (stride-32 features upsampled and concatenated with stride 8).
    aux_features: Literal["stride8", "fused"] = "stride8"
    # Inference decoding. "tokens": the joints the tokenizer decodes (the paper). "heatmap": those joints are a
    # Gaussian prior (sd `refine_sigma` crop heights) over the heatmap's spatial distribution, and each joint is
    # the posterior's peak (classifier.refine_with_heatmap): heatmap precision where the joint is seen, the token
    # prior where it is hidden or ambiguous. Training is the same either way.
    refine: Literal["tokens", "heatmap"] = "tokens"
    refine_sigma: float = 0.125
    # Input normalisation (x / 255 - mean) / std, RGB; the YOLOX-initialised backbone wants raw pixels:
    # mean 0, std 1/255.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainConfig(PoseAugment):
    """Stage-2 training on person crops (docs/method.md §2.4-2.5, scaled to a light backbone and a small dataset)."""

    tokenizer: str = ""  # tokenizer checkpoint; "" = the shipped one
    # YOLOX ONNX export whose backbone + PAFPN weights initialise a cspdarknet backbone of the same size
    # (e.g. ../shared/data/models/yolox_nano.onnx); "" = from scratch. Read once, at the start of a new run.
    backbone_init: str = ""
    lsp_root: str = "../shared/data/lspet"  # LSP-extended (joints.npz + images/); "" = not used
    # Last LSP-extended training image number (im00001 .. this); the shipped recipes used 6000, before im06001-im09000
    # arrived. Never above 9000: im09001-im10000 are the held-out PCK slice.
    lsp_last: int = 9000
    face_pseudo: bool = True  # add lspet/face_pseudo.npz face joints (accepted rows only)
    coco_ann: str = ""  # optional extra COCO-format training set (json) ...
    coco_images: str = ""  # ... and its image folder
    coco_repeat: int = 1  # each epoch sees the COCO-format set this many times (a small in-domain set beside LSP)
    # Folder of COCO person crops (annotations.npz + crops/); its "train" split is trained on, "dev" never.
    coco_crops: str = ""
    coco_crops_repeat: int = 1  # each epoch sees the crops this many times (COCO-convention labels weigh more)
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_iters: int = 300
    min_lr_ratio: float = 0.01
    ce_weight: float = 1.0
    joint_weight: float = 1.0  # L1 on decoded joints, per crop pixel
    vis_weight: float = 1.0  # per-joint confidence BCE
    heatmap_weight: float = 1.0  # auxiliary heatmap (when model.aux_heatmap)
    # "ce": cross-entropy of the spatial softmax against the normalised Gaussian target (strong gradients from
    # the first iteration); "mse": the classic per-pixel squared error (starts by predicting all zeros).
    heatmap_loss: Literal["ce", "mse"] = "ce"
    padding: float = 1.25
    # The PoseAugment keys, milder in rotation and scale than the tokenizer's (images, not poses alone)
    flip_prob: float = 0.5
    rot_prob: float = 0.6
    rot_sigma: float = 30.0
    scale_sigma: float = 0.25
    shift_prob: float = 0.3
    shift_factor: float = 0.16
    half_body_prob: float = 0.3
    color_prob: float = 0.8
    sharpen_prob: float = 0.0  # unsharp mask on the crop (LSP crops are softer than everyday scenes)
    occlusion_prob: float = 0.5  # synthetic occluder patches over the person
    workers: int = 1
    seed: int = 0
    num_threads: int = 0
    checkpoint_every: int = 500
    max_minutes: float = 0.0

    section = "train"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self.section, self, positive=("epochs", "batch_size", "lr", "checkpoint_every", "padding",
                                                   "coco_repeat", "coco_crops_repeat"),
                     non_negative=("weight_decay", "warmup_iters", "min_lr_ratio", "ce_weight", "joint_weight",
                                   "vis_weight", "heatmap_weight", "workers", "num_threads", "max_minutes"),
                     unit=("color_prob", "sharpen_prob", "occlusion_prob"))


@dataclass(frozen=True)
class StreamConfig:
    """The streaming pipeline (edge_pct.stream): detection schedule, tracking, smoothing."""

    detector: str = ""  # "track", "onnx" or "mediapipe"; "" = onnx/mediapipe when a detector model is set, else track
    detector_model: str = ""  # YOLOX .onnx/.engine or PoseLandmarker .task; "" = $EDGE_PCT_DETECTOR_MODEL if set
    # Runtime of a YOLOX .onnx: "onnxruntime", "openvino" (BF16 where the CPU has it), "openvino-fp32"; "" =
    # $EDGE_PCT_DETECTOR_BACKEND, else onnxruntime (an .engine always runs on TensorRT).
    detector_backend: str = ""
    # Pose budget: most persons posed per frame. Tracked persons keep their place; new ones are admitted largest
    # box first (nearest the camera). Persons the detector saw beyond it are counted (`unposed`), never silently.
    max_persons: int = 32
    # Time budget of the pose stage (crop + infer + post) per frame in ms; 0 = off. When all tracks would not fit
    # (at the per-person time measured on this stream), the largest boxes are posed and the rest wait a frame,
    # counted as `unposed` in the result, the bench summary and the app's HUD.
    pose_budget_ms: float = 0.0
    # Two-stage association (ByteTrack): detections scoring at least new_track_score start tracks; weaker ones down
    # to detector_score only keep existing tracks alive (a person half hidden in a crowd keeps the id). With
    # missed_detections, the detector runs in a row that may miss a live track before it ends (its box meanwhile
    # comes from its pose). vtest.avi frames 1-300 against the hand-checked ids (benchmarks/identity.py): at 0.3 / 3
    # IDF1 0.461, 33 id switches, 37 ids; at 0.5 / 6 0.553, 23, 22; at 0.6 / 6 0.541, 23, 21.
    detector_score: float = 0.1
    new_track_score: float = 0.5
    missed_detections: int = 6
    # Seconds an ended track is remembered: a confident detection where it would be by now (its box moved on at
    # its last speed) takes the old id back instead of a new one.
    lost_memory_s: float = 1.0
    detect_every: int = 10  # frames between detector runs (model detectors; 0 = only when no track is left)
    redetect_score: float = 0.5  # run the detector on the next frame when a track's mean confidence drops below
    # Drop a track whose mean confidence falls below this. The shipped model's mean confidence on real persons
    # (LSP held-out) is 0.14 / 0.37 / 0.54 at its 10 / 50 / 90% quantiles, on background crops mostly 0.01 (a
    # vtest.avi floor patch: 0.094). street.avi, 205 frames, lost_frames 1: at 0.15 64 tracks, at 0.1 48 (the SiLU
    # model of commit b3f7507: 31), at 0.05 39 (79% of poses in tracks of 50+ frames vs 60% at 0.1); vtest.avi: 296,
    # 254, 184. 0.05 would hold ids better but keep a `track`-mode ghost on such a floor patch, so it stays 0.1.
    lost_score: float = 0.1
    # Consecutive frames under lost_score that end a track; it is hidden meanwhile, so one bad frame costs no id.
    # street.avi with the shipped model: 48 tracks at 1 (60% of poses in tracks of 50+ frames), 29 at 2 (79%), 21 at
    # 3 (85%); vtest.avi 254, 154, 109; persons shown per frame unchanged (4.07, 4.11, 4.11 on street).
    lost_frames: int = 3
    padding: float = 1.25  # box -> crop enlargement, as in training
    joint_threshold: float = 0.3  # confidence from which a joint counts as seen (overlay, pose-driven boxes)
    smoothing: bool = True  # One-Euro filter on the joints
    min_cutoff_hz: float = 1.0  # One-Euro cutoff at rest
    beta: float = 2.0  # One-Euro cutoff increase per (person heights / s) of speed
    # Share of the new frame in a per-track token-probability average (1.0 = off). Below 1 the joints are decoded
    # from the averaged tokens alone: a `model.refine = "heatmap"` model loses its heatmap refinement then.
    token_weight: float = 1.0

    def __post_init__(self) -> None:
        """Reject values the pipeline cannot run with, one line each (the CLI turns it into exit 2)."""
        check_ranges("stream", self, positive=("max_persons", "lost_frames", "missed_detections", "padding"),
                     non_negative=("pose_budget_ms", "lost_memory_s", "min_cutoff_hz", "beta", "detect_every"),
                     unit=("detector_score", "new_track_score", "redetect_score", "lost_score", "joint_threshold"))
        if self.detector_score > self.new_track_score:
            raise ConfigError(f"stream.detector_score={self.detector_score} is above stream.new_track_score="
                              f"{self.new_track_score}: weak detections must score below confident ones")
        if not 0.0 < self.token_weight <= 1.0:
            raise ConfigError(f"stream.token_weight={self.token_weight} is out of range: use a value in (0, 1]")


@dataclass(frozen=True)
class RunConfig:
    """Everything one experiment needs; each field is one TOML section."""

    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    tokenizer_train: TokenizerTrainConfig = field(default_factory=TokenizerTrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Check `value` against the annotation `typ`; tuples arrive as lists from TOML."""
    origin = typing.get_origin(typ)
    if origin is typing.Literal:
        if value not in typing.get_args(typ):
            raise ConfigError(f"{key}={value!r} is not one of {list(typing.get_args(typ))}")
        return value
    if origin is tuple:
        args = typing.get_args(typ)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}={value!r}: expected a list of {len(args)} values")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is Path and isinstance(value, str):
        return Path(value)
    if typ in (int, float, str, bool) and not (isinstance(value, typ) and not (typ is int and isinstance(value, bool))):
        raise ConfigError(f"{key}={value!r}: expected {typ.__name__}")
    return value


def _unknown(key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"Unknown config key '{key}'. Valid: {sorted(valid)}.{hint}")


def config_from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a (possibly partial, nested) dict, type-checking every value."""
    types = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in types:
            raise _unknown(full, list(types))
        typ = types[key]
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, dict):
                raise ConfigError(f"'{full}' is a section: expected a table, got {value!r}")
            kwargs[key] = config_from_dict(typ, value, prefix=f"{full}.")
        else:
            kwargs[key] = _coerce(value, typ, full)
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain dict (tuples as lists, Paths as str, None dropped: TOML has no null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, (tuple, list)):
            return [clean(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return clean(dataclasses.asdict(cfg))


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """['tokenizer.token_dim=256', ...] -> nested dict; values parsed with ast.literal_eval (never eval)."""
    nested: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"Override '{item}' must look like section.key=value, e.g. tokenizer_train.lr=3e-4")
        key, raw = item.split("=", 1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = {"true": True, "false": False}.get(raw.strip(), raw)  # TOML booleans, else a bare string

        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override '{item}' sets inside '{part}', which an earlier override set to a value: "
                                  "keep one of the two")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"Override '{item}' replaces the section '{key.strip()}' set by an earlier override: "
                              "keep one of the two")
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> RunConfig:
    """Read a RunConfig from TOML (or defaults when `path` is None), then apply `--set` overrides.

    `base` is an optional dict applied before the file, e.g. a variant chosen on the command line.
    """
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file '{p}' not found: pass an existing TOML file (see configs/)")
        try:
            data = _merge(data, tomllib.loads(p.read_text()))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"Config file '{p}' is not valid TOML: {e}") from e
    data = _merge(data, parse_overrides(overrides))
    return config_from_dict(RunConfig, data)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write a config dataclass to TOML (atomically: temp name, then rename)."""
    import tomli_w

    from edge_pct.core.files import write_text_atomic

    write_text_atomic(path, tomli_w.dumps(config_to_dict(cfg)))
