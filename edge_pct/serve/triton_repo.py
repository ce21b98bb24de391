"""`edge-pct export --triton DIR`: a Triton model repository of the pose model, the detector and the pipeline.

Layout (each `config.pbtxt` from `edge_pct.serve.signatures`, dynamic batching up to `max_batch` items):
  pct_pose/       config.pbtxt, 1/model.onnx (FP32 export, or a calibrate folder's INT8 CPU graph) with its export
                  sidecar 1/model.json and decoder 1/model.decoder.onnx beside it (an `edge-pct export` folder: any
                  backend opens it); with an engine: 1/model.plan on platform tensorrt_plan instead
  pct_decoder/    config.pbtxt, 1/model.onnx: token_probs -> joints (a client's per-track token smoothing)
  yolox_detector/ config.pbtxt, 1/model.onnx: the YOLOX graph with a dynamic batch, uint8 in, person columns out
                  (`detector_graph.py`)
  pose_pipeline/  config.pbtxt, 1/model.py: frame in -> persons out, a Python-backend (BLS) model calling the two
                  above through `edge_pct.serve.frames` (the package must be importable in Triton's Python)
The repository is built in a temporary folder beside DIR and renamed into place: a failed write leaves no half
repository, and an existing edge-pct repository at DIR is replaced whole.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.files import read_json_artifact
from edge_pct.serve.frames import PoserSettings
from edge_pct.serve.signatures import (
    MODEL_NAMES,
    ModelSignature,
    config_text,
    detector_signature,
    pipeline_signature,
    pose_signatures,
)

log = logging.getLogger(__name__)

MIN_MAX_BATCH = 32  # items per server batch: 16 streams x a few persons each
DEFAULT_QUEUE_DELAY_US = 2000  # short against a CPU pose batch (tens of ms); 0 still batches what is queued
BLS_SOURCE = Path(__file__).with_name("bls_model.py")


def write_triton_repo(out: str | Path, model: str | Path | None = None, detector: str | Path | None = None,
                      engine: str | Path | None = None, max_batch: int = MIN_MAX_BATCH,
                      queue_delay_us: int = DEFAULT_QUEUE_DELAY_US, settings: PoserSettings | None = None) -> dict:
    """Write the repository (module doc) to `out`.

    Args:
        out: the repository folder (created; an earlier edge-pct repository there is replaced).
        model: pose model: a .pt (exported once to the user cache), an exported .onnx with its sidecar, or an
            `edge-pct calibrate` folder (its INT8 CPU graph); None: the shipped model.
        detector: YOLOX-format .onnx; None: the shipped YOLOX-Nano.
        engine: a TensorRT .engine built from that pose graph (`edge-pct build`): pct_pose becomes a tensorrt_plan
            model (its batch is the engine's max batch).
        max_batch: Triton max_batch_size of every model (>= 32).
        queue_delay_us: the dynamic batcher's max_queue_delay_microseconds.
        settings: the pose_pipeline parameters (thresholds, person cap, crop padding, frame limit).

    Returns:
        repository, models, pose_onnx (source graph), precision, platform (pct_pose), max_batch, queue_delay_us.
    """
    from edge_pct.core.package import DEFAULT_DETECTOR
    from edge_pct.serve.detector_graph import serving_detector_graph

    out = Path(out)
    _check_args(out, max_batch, queue_delay_us)
    pose_onnx = _pose_graph(model)
    sidecar = read_json_artifact(pose_onnx.with_suffix(".json"), "Sidecar", {"input_size", "num_joints", "num_tokens",
                                 "codebook_size", "decoder_onnx", "batch", "precision"}, "`edge-pct export`",
                                 f"re-export with `edge-pct export --out {pose_onnx}`")
    if sidecar["batch"] is not None:
        raise ConfigError(f"'{pose_onnx}' has a fixed batch of {sidecar['batch']}: Triton batches across streams, "
                          f"re-export with a dynamic batch (`edge-pct export --out {pose_onnx}`, no --batch)")
    det_bytes, det = serving_detector_graph(detector or DEFAULT_DETECTOR)
    pose_sig, dec_sig = pose_signatures(sidecar)
    det_sig = detector_signature(det["input"], det["output"], det["input_hw"], det["cells"])
    settings = settings or PoserSettings()
    plan = _engine_batch(engine) if engine is not None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_pose(tmp, pose_onnx, sidecar, pose_sig, dec_sig, max_batch, queue_delay_us, engine, plan)
        _write_model(tmp, det_sig, {"model.onnx": det_bytes}, max_batch, queue_delay_us, backend="onnxruntime")
        pipe_params = {**settings.parameters(), "detector_input_hw": ",".join(map(str, det["input_hw"])),
                       "pose_input_size": ",".join(map(str, sidecar["input_size"])),
                       "num_joints": str(sidecar["num_joints"])}
        _write_model(tmp, pipeline_signature(sidecar["num_joints"]), {"model.py": BLS_SOURCE.read_bytes()},
                     max_batch, queue_delay_us, backend="python", parameters=pipe_params)
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"repository": str(out), "models": list(MODEL_NAMES), "pose_onnx": str(pose_onnx),
            "precision": sidecar["precision"], "platform": "tensorrt_plan" if engine else "onnxruntime",
            "max_batch": max_batch, "queue_delay_us": queue_delay_us}


def _check_args(out: Path, max_batch: int, queue_delay_us: int) -> None:
    if max_batch < MIN_MAX_BATCH:
        raise ConfigError(f"--max-batch {max_batch} is too small to batch across streams: use >= {MIN_MAX_BATCH}")
    if queue_delay_us < 0:
        raise ConfigError(f"queue delay {queue_delay_us} us is invalid: use >= 0, e.g. {DEFAULT_QUEUE_DELAY_US}")
    if out.exists() and not is_repository(out):
        raise ConfigError(f"'{out}' exists and is not an edge-pct model repository: pass a new or empty folder")


def is_repository(folder: Path) -> bool:
    """Whether `folder` is empty or holds only an edge-pct repository's model folders (safe to replace)."""
    return folder.is_dir() and all(p.name in MODEL_NAMES for p in folder.iterdir())


def _pose_graph(model: str | Path | None) -> Path:
    """The ONNX pose graph to serve: the .onnx given, a calibrate folder's CPU graph, or a .pt's cached export."""
    from edge_pct.core.package import DEFAULT_MODEL
    from edge_pct.engines.model_files import cached_onnx, calibrated_graph

    path = Path(model) if model is not None else DEFAULT_MODEL
    if path.is_dir():
        return calibrated_graph(path, None)
    if not path.is_file():
        raise InputFileError(f"Pose model '{path}' not found: pass a .pt, an exported .onnx or a calibrate folder")
    if path.suffix == ".pt":
        return cached_onnx(path)
    if path.suffix != ".onnx":
        raise ConfigError(f"--model '{path}' cannot be served: pass a .pt, an exported .onnx or a calibrate folder "
                          "(a TensorRT engine goes to --engine)")
    return path


def _engine_batch(engine: str | Path) -> int:
    """The max batch of an `edge-pct build` engine (its manifest)."""
    from edge_pct.engines.build import manifest_path

    path = Path(engine)
    if path.suffix != ".engine" or not path.is_file():
        raise InputFileError(f"Engine '{path}' not found (or not an .engine): build one with `edge-pct build --onnx "
                             "ONNX --precision fp16 --max-batch 32`")
    man = read_json_artifact(manifest_path(path), "Manifest", {"max_batch"}, "`edge-pct build`",
                             f"rebuild it with `edge-pct build --onnx ONNX --precision fp16 --out {path}`")
    return int(man["max_batch"])


def _write_pose(root: Path, onnx: Path, sidecar: dict[str, Any], pose_sig: ModelSignature, dec_sig: ModelSignature,
                max_batch: int, delay: int, engine: str | Path | None, plan_batch: int | None) -> None:
    """pct_pose (ONNX, or the engine as model.plan) with the sidecar beside it, and pct_decoder."""
    dec_path = onnx.with_name(sidecar["decoder_onnx"])
    if not dec_path.is_file():
        raise InputFileError(f"Decoder graph '{dec_path}' not found: re-export with `edge-pct export --out {onnx}`")
    decoder = dec_path.read_bytes()
    # The export's three files side by side, so OnnxRuntimeBackend opens 1/model.onnx as it is (Triton's onnxruntime
    # backend loads model.onnx only; the decoder is served as pct_decoder).
    side = {**sidecar, "onnx": "model.onnx", "decoder_onnx": "model.decoder.onnx"}
    files = {"model.json": (json.dumps(side, indent=2) + "\n").encode(), "model.decoder.onnx": decoder}
    params = {"precision": str(sidecar["precision"])}
    if engine is None:
        _write_model(root, pose_sig, {**files, "model.onnx": onnx.read_bytes()}, max_batch, delay,
                     backend="onnxruntime", parameters=params)
    else:
        assert plan_batch is not None
        if plan_batch < MIN_MAX_BATCH:
            log.warning("engine '%s' takes at most %d crops a run: rebuild with `edge-pct build --max-batch %d` to "
                        "batch more streams", engine, plan_batch, MIN_MAX_BATCH)
        _write_model(root, pose_sig, {**files, "model.plan": Path(engine).read_bytes()}, plan_batch, delay,
                     platform="tensorrt_plan", parameters=params)
    _write_model(root, dec_sig, {"model.onnx": decoder}, max_batch, delay, backend="onnxruntime")


def _write_model(root: Path, sig: ModelSignature, files: dict[str, bytes], max_batch: int, delay: int,
                 **kwargs: Any) -> None:
    folder = root / sig.name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config_text(sig, max_batch, delay, **kwargs))
    for name, data in files.items():
        (folder / "1" / name).write_bytes(data)


def _replace(tmp: Path, out: Path) -> None:
    """Rename the finished `tmp` to `out`; an old repository at `out` is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)



def default_repository(model: str | Path | None = None, detector: str | Path | None = None) -> Path:
    """The repository of `model` and `detector` (defaults: the shipped ones) in the user cache, written on first use
    and keyed by the sha256 of both files and of this package's serving code, so a new model never reuses it."""
    import hashlib

    from edge_pct.core.files import file_sha256
    from edge_pct.core.package import DEFAULT_DETECTOR, DEFAULT_MODEL, __version__
    from edge_pct.engines.model_files import cache_dir

    model_path = Path(model) if model is not None else DEFAULT_MODEL
    det_path = Path(detector) if detector is not None else DEFAULT_DETECTOR
    for what, p in (("Pose model", model_path), ("Detector model", det_path)):
        if not p.exists():
            raise InputFileError(f"{what} '{p}' not found: pass an existing file (or leave it out for the shipped one)")
    parts = [__version__, file_sha256(BLS_SOURCE)]
    parts += [file_sha256(p) if p.is_file() else str(p.resolve()) for p in (model_path, det_path)]
    out = cache_dir() / "triton" / hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    if not (out / "pose_pipeline" / "config.pbtxt").is_file():
        log.info("writing the Triton repository %s (first use only)", out)
        write_triton_repo(out, model, detector)
    return out
