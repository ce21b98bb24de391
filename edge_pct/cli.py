"""The `edge-pct` command line: one entry point, thin subcommand handlers that import their module lazily.

Every handler returns an exit code; `main` turns an EdgePctError into one stderr line and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from edge_pct.core.errors import ConfigError, EdgePctError, InputFileError, run_reporting_errors
from edge_pct.core.package import DEFAULT_MODEL, DEFAULT_TOKENIZER, __version__


def _report(path: str | None, payload: dict[str, Any], title: str, keys: tuple[str, ...]) -> None:
    """The command's result: a summary table of `keys` for people, all of it as JSON to --json FILE or -."""
    from edge_pct.core.report import emit_result, scalar_rows

    emit_result(payload, path, scalar_rows(payload, keys), title)


# Pose backends a user can name (edge_pct.engines.runtime.BACKENDS; a literal here keeps `--help` light). The
# OpenVINO names carry the precision: "openvino" is BF16 on CPUs with native BF16, else FP32.
POSE_BACKENDS = ["onnxruntime", "openvino", "openvino-fp32", "openvino-bf16", "torch", "tensorrt"]
BACKEND_HELP = ("default: the fastest checked CPU runtime (openvino BF16 on CPUs with AMX / AVX-512 BF16 where "
                "openvino is installed, else onnxruntime), tensorrt for an .engine")

TRAIN_KEYS = ("checkpoint", "finished", "epochs", "iterations", "final_loss", "final_l1_px", "minutes")


def _cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from edge_pct.config import load_config
    from edge_pct.train.tokenizer import train_tokenizer

    overrides = list(args.set) + ([f"tokenizer_train.epochs={args.epochs}"] if args.epochs is not None else [])
    cfg = load_config(args.config, overrides)
    _report(args.json, train_tokenizer(args.poses, args.out, cfg, val_ann=args.val_ann, init=args.init),
                "edge-pct train-tokenizer", TRAIN_KEYS)
    return 0


def _cmd_eval_tokenizer(args: argparse.Namespace) -> int:
    from edge_pct.eval.tokenizer import evaluate_tokenizer_model
    from edge_pct.models.weights import load_tokenizer

    if not 0.0 <= args.mask_ratio < 1.0:
        raise EdgePctError(f"--mask-ratio {args.mask_ratio} is out of range: use a value in [0, 1)")
    model = load_tokenizer(args.checkpoint)
    res = evaluate_tokenizer_model(model, args.coco_ann, args.mask_ratio, seed=args.seed, flip=args.flip)
    _report(args.json, {"checkpoint": str(args.checkpoint), **res}, "edge-pct eval-tokenizer: reconstruction",
                ("ap", "ap50", "ap75", "ar", "persons", "mask_ratio", "codes_used", "perplexity", "mean_err_px"))
    return 0


def _cmd_tokens(args: argparse.Namespace) -> int:
    import dataclasses

    from edge_pct.core.report import emit_result
    from edge_pct.tokens.survey import TokenSurveyOptions, summary_rows, survey_tokens

    names = {f.name for f in dataclasses.fields(TokenSurveyOptions)}
    res = survey_tokens(args.out, TokenSurveyOptions(**{k: v for k, v in vars(args).items() if k in names}))
    emit_result(res, args.json, summary_rows(res), f"edge-pct tokens: {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from edge_pct.config import config_to_dict, load_config
    from edge_pct.models.factory import MODEL_VARIANTS
    from edge_pct.train.classifier import train_classifier

    cfg = load_config(args.config, args.set, base={"model": config_to_dict(MODEL_VARIANTS[args.variant])})
    _report(args.json, train_classifier(cfg, args.out, init=args.init), "edge-pct train", TRAIN_KEYS)
    return 0


def _estimator(spec: str, flip: bool, backend: str | None = None, threads: int | None = None):
    """`--model` value -> Estimator: a .pt checkpoint, an exported .onnx, or mediapipe:PATH.task for the peer; with
    `backend`, the model (also a calibrate folder) on that pose backend."""
    from edge_pct.eval.evaluate import backend_estimator, mediapipe_estimator, onnx_estimator, torch_estimator

    if spec.startswith("mediapipe:"):
        return mediapipe_estimator(spec.split(":", 1)[1])
    if backend is not None:
        return backend_estimator(spec, backend, flip=flip, threads=threads)
    if spec.endswith(".pt"):
        from edge_pct.models.factory import load_classifier

        return torch_estimator(load_classifier(spec), flip=flip)
    if spec.endswith(".onnx"):
        return onnx_estimator(spec, flip=flip)
    raise EdgePctError(f"Unsupported --model '{spec}': pass a .pt checkpoint, a .onnx from `edge-pct export`, "
                       "or mediapipe:PATH.task")


def _cmd_eval(args: argparse.Namespace) -> int:
    from edge_pct.eval.evaluate import evaluate_coco, evaluate_lsp

    if not args.lsp and not (args.coco_ann and args.images):
        raise EdgePctError("Nothing to evaluate: pass --coco-ann JSON --images DIR, or --lsp LSPET_ROOT")
    occlusion = None
    if args.occlude is not None:
        lo, hi = args.occlude
        if not 0 < lo <= hi < 1:
            raise EdgePctError(f"--occlude {lo} {hi} is out of range: use 0 < LO <= HI < 1, e.g. --occlude 0.2 0.4")
        occlusion = (lo, hi)
    est = _estimator(args.model, args.flip, args.backend, args.threads)
    try:
        res = (evaluate_lsp(est, args.lsp, occlusion=occlusion) if args.lsp
               else evaluate_coco(est, args.coco_ann, args.images, occlusion=occlusion))
    finally:
        est.close()
    _report(args.json, {"model_path": args.model, "flip": args.flip, **res}, f"edge-pct eval: {args.model}",
                ("pck", "pck_occluded", "ap", "ap50", "ap75", "ar", "persons", "ms_per_person", "backend", "precision"))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from edge_pct.export.onnx import export_onnx

    if args.triton:  # a Triton model repository (of the --out export when given)
        from edge_pct.serve.triton_repo import write_triton_repo

        model = export_onnx(args.checkpoint, args.out, opset=args.opset, precision=args.precision)["onnx"] \
            if args.out else args.checkpoint
        _report(args.json, write_triton_repo(args.triton, model, args.detector_model, args.engine),
                "edge-pct export --triton", ("repository", "pose_onnx", "precision", "platform", "max_batch"))
        return 0
    if not args.out:
        raise EdgePctError("Nothing to export: pass --out model.onnx, --triton DIR (a Triton repository), or both")
    _report(args.json, export_onnx(args.checkpoint, args.out, batch=args.batch, opset=args.opset,
                                       precision=args.precision),
                "edge-pct export", ("onnx", "precision", "batch", "max_abs_diff_vs_torch"))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from edge_pct.calibration.calibrate import calibrate

    _report(args.json, calibrate(args.onnx, args.images, args.out, ann=args.ann, method=args.method, num=args.num,
                                     seed=args.seed, threads=args.threads, trt_version=args.trt_version),
                "edge-pct calibrate", ("cpu_onnx", "int8_onnx", "cache", "report"))
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from edge_pct.engines.build import build_engine  # lazy: `edge-pct --help` works without TensorRT

    _report(args.json, build_engine(args.onnx, args.precision, args.out, workspace_gb=args.workspace_gb,
                                        max_batch=args.max_batch, timing_cache=args.timing_cache,
                                        calib_cache=args.calib_cache),
                "edge-pct build", ("engine", "manifest", "build_s"))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from edge_pct.api import PoseEstimator
    from edge_pct.config import load_config
    from edge_pct.core.report import emit_result
    from edge_pct.stream.bench import run_bench, run_peer, summary_rows

    overrides = list(args.set) + ([f"stream.max_persons={args.max_persons}"] if args.max_persons is not None else [])
    cfg = load_config(args.config, overrides).stream
    if not Path(args.video).is_file():  # before a model export of many seconds
        raise InputFileError(f"Video file '{args.video}' not found: pass a recorded video (.mp4, .avi, ...)")
    if args.peer and not args.peer_model:
        raise EdgePctError("--peer mediapipe needs --peer-model PATH.task (MediaPipe's pose_landmarker_*.task)")
    if args.server:  # the pose model and detector on a Triton server; tracking and smoothing here
        from edge_pct.serve.client import remote_estimator
    estimator = remote_estimator(args.server, cfg) if args.server else PoseEstimator(
        args.model, args.backend, args.detector, args.detector_model, threads=args.threads, config=cfg)
    with estimator:
        res = run_bench(args.video, estimator.pipeline, save=args.save, max_frames=args.frames)
    res["model"] = args.server or str(args.model or DEFAULT_MODEL)
    if args.peer:
        res["peer"] = run_peer(args.video, args.peer_model, cfg.max_persons, max_frames=args.frames)
        res["poses_per_s_vs_peer"] = res["poses_per_s"] / max(res["peer"]["poses_per_s"], 1e-9)
    emit_result(res, args.json, summary_rows(res), f"edge-pct bench: {Path(args.video).name}, {res['frames']} frames")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from edge_pct.serve.environment import run_serve, setup_serve_env

    if args.setup:
        _report(args.json, setup_serve_env(), "edge-pct serve --setup", ("venv", "python", "libdir"))
        return 0
    ports = {"grpc": args.grpc_port, "http": args.http_port, "metrics": args.metrics_port}
    return run_serve(args.repo, args.model, args.detector_model, args.host, ports, args.threads)


def _cmd_app(args: argparse.Namespace) -> int:
    from edge_pct.app.launch import run_app  # PyQt6 is imported inside run_app only
    from edge_pct.config import load_config

    if args.screenshot and args.exit_after is None:
        raise EdgePctError("--screenshot needs --exit-after N (the screenshot is taken after N frames)")
    if args.retries < 0:
        raise EdgePctError(f"--retries {args.retries} is out of range: use 0 or more reconnect attempts")
    names = ("model", "backend", "precision", "detector", "detector_model", "exit_after", "screenshot", "retries")
    res = run_app(args.source, **{k: getattr(args, k) for k in names}, smoothing=False if args.no_smoothing else None,
                  loop=args.loop or None, stream=load_config(args.config, args.set).stream,
                  settings_path=args.settings)  # fmt: skip
    if args.exit_after is not None or args.json:
        _report(args.json, res, "edge-pct app", ("frames", "fps", "persons_per_frame", "screenshot"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-pct", description="PCT pose estimation for the edge.")
    parser.add_argument("--version", action="version", version=f"edge-pct {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train-tokenizer", help="train the pose tokenizer (PCT stage 1) on COCO poses")
    p.add_argument("--poses", required=True, help="poses .npz (keypoints, bbox_xywh) or COCO keypoints .json")
    p.add_argument("--out", required=True, help="run directory (last.pt resume point, tokenizer.pt, train_log.jsonl)")
    p.add_argument("--config", help="TOML config, e.g. configs/tokenizer_cpu.toml (default: the paper's sizes)")
    p.add_argument("--epochs", type=int, help="override tokenizer_train.epochs")
    p.add_argument("--val-ann", help="COCO json scored (reconstruction AP) at every checkpoint")
    p.add_argument("--init", help="start from this tokenizer's weights (same config), fresh optimizer and schedule")
    p.set_defaults(func=_cmd_train_tokenizer)

    p = sub.add_parser("eval-tokenizer", help="reconstruction OKS-AP of a tokenizer on COCO ground truth")
    p.add_argument("--checkpoint", default=str(DEFAULT_TOKENIZER), help="tokenizer .pt (default: the shipped one)")
    p.add_argument("--coco-ann", required=True, help="COCO keypoints json, e.g. person_keypoints_val2017.json")
    p.add_argument("--mask-ratio", type=float, default=0.0, help="share of each person's labeled joints hidden")
    p.add_argument("--seed", type=int, default=0, help="seed of the joint hiding")
    p.add_argument("--flip", action="store_true", help="average with the reconstruction of the mirrored pose")
    p.set_defaults(func=_cmd_eval_tokenizer)

    p = sub.add_parser("tokens", help="token explorer: pictures of what each token does + its locality on COCO poses")
    p.add_argument("--out", required=True, help="folder for the PNGs and locality.json")
    p.add_argument("--checkpoint", default=str(DEFAULT_TOKENIZER), help="tokenizer .pt (default: the shipped one)")
    p.add_argument("--coco-ann", help="COCO keypoints json of the real poses (default: "
                   "$EDGE_PCT_DATA or ../shared/data, coco/person_keypoints_val2017.json)")
    p.add_argument("--image", help="token-map pose from this picture, through the image model (default: a COCO person)")
    p.add_argument("--video", help="token-map pose from a frame of this video, through the image model")
    p.add_argument("--frame", type=int, default=0, help="frame index of --video (default: 0)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="image model .pt for --image / --video")
    p.add_argument("--person", type=int, help="token-map pose: index among the measured COCO persons")
    p.add_argument("--token", type=int, help="token of swap_token<T>.png (default: the most local one)")
    p.add_argument("--swaps", type=int, default=8, help="other codes drawn in swap_token<T>.png (default: 8)")
    p.add_argument("--k", type=int, default=4, help="swaps per token and pose in the measurement (default: 4)")
    p.add_argument("--min-joints", type=int, default=10, help="measure persons with this many labeled joints")
    p.add_argument("--max-poses", type=int, default=0, help="measure at most this many persons (default: all)")
    p.add_argument("--threshold", type=float, default=0.05, help="a joint moves beyond this share of the box size")
    p.add_argument("--ae-steps", type=int, default=0,
                   help="also train a plain autoencoder of the same size for this many steps (600: ~4 min on 2 cores) "
                   "and measure it the same way")
    p.add_argument("--ae-poses", help="its training poses (default: person_keypoints_train2017.npz beside --coco-ann)")
    p.add_argument("--seed", type=int, default=0, help="seed of the swaps and the baseline")
    p.set_defaults(func=_cmd_tokens)

    p = sub.add_parser("train", help="train the image model (PCT stage 2) on person crops")
    p.add_argument("--config", help="TOML config, e.g. configs/pct_lite.toml")
    p.add_argument("--variant", default="pct-lite", choices=["pct-lite", "pct-lite-mnv2", "pct-base"],
                   help="model size and backbone (edge_pct/models/factory.py)")
    p.add_argument("--out", required=True, help="run directory (last.pt resume point, model.pt, train_log.jsonl)")
    p.add_argument("--init", help="start from this image model's weights (same model config, e.g. the shipped "
                   "edge_pct/weights/pct_lite.pt), fresh optimizer and schedule")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="top-down accuracy with GT boxes: COCO OKS-AP or LSP PCK@0.2")
    p.add_argument("--model", default=str(DEFAULT_MODEL),
                   help="model .pt, exported .onnx, or mediapipe:PATH.task (the peer)")
    p.add_argument("--coco-ann", help="COCO keypoints json")
    p.add_argument("--images", help="folder of the json's images")
    p.add_argument("--lsp", metavar="LSPET_ROOT", help="PCK@0.2 on the LSP-extended held-out slice instead")
    p.add_argument("--flip", action="store_true",
                   help="flip test: also run the mirrored crop; average where both agree, else keep the surer joint")
    p.add_argument("--occlude", nargs=2, type=float, metavar=("LO", "HI"),
                   help="paste a synthetic occluder over a random LO-HI share of each person's box first, e.g. 0.2 0.4")
    p.add_argument("--backend", choices=POSE_BACKENDS,
                   help="run the model on this backend (default: torch for a .pt, onnxruntime for a .onnx); a "
                   "calibrate folder as --model needs one")
    p.add_argument("--threads", type=int, help="CPU threads of onnxruntime / openvino (default: one per core)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("export", help="export the image model to ONNX (+ decoder graph and JSON sidecar)")
    p.add_argument("--checkpoint", default=str(DEFAULT_MODEL), help="classifier .pt (default: the shipped one)")
    p.add_argument("--out", help="model .onnx; <stem>.decoder.onnx and <stem>.json go next to it")
    p.add_argument("--triton", metavar="DIR", help="write a Triton model repository (pose model, detector, pipeline; "
                   "docs/serving.md); --checkpoint may then also be an exported .onnx or a calibrate folder")
    p.add_argument("--detector-model", help="--triton: YOLOX-format .onnx (default: the shipped YOLOX-Nano)")
    p.add_argument("--engine", help="--triton: serve the pose model as this TensorRT .engine (tensorrt_plan)")
    p.add_argument("--batch", type=int, help="fixed batch size (default: dynamic batch)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"],
                   help="fp16: mixed-precision graph for strongly typed TensorRT 11 (LayerNorm, logits, decoder FP32)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("calibrate", help="INT8: Q/DQ ONNX + TensorRT calibration cache + report from image crops")
    p.add_argument("--onnx", required=True, help="FP32 model.onnx from `edge-pct export` (sidecar, decoder beside it)")
    p.add_argument("--images", required=True, help="folder of frames (whole-frame crops), or the --ann json's images")
    p.add_argument("--out", required=True, help="folder for model.int8.tensorrt.onnx (TensorRT Q/DQ), "
                   "model.int8.cpu.onnx (ONNX Runtime on CPU), their decoder and sidecars, calib.cache, report.json")
    p.add_argument("--ann", help="COCO keypoints json: person crops from its boxes, and FP32 vs INT8 OKS-AP")
    p.add_argument("--method", default="entropy", choices=["entropy", "percentile", "minmax"],
                   help="range calibration method (default: entropy, as TensorRT's EntropyCalibration2)")
    p.add_argument("--num", type=int, default=256, help="calibration crops (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crop selection")
    p.add_argument("--threads", type=int, help="ONNX Runtime CPU threads (default: one per core)")
    p.add_argument("--trt-version", type=int, help="TensorRT version in the cache header (default: 8601 = 8.6.1)")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("build", help="compile an exported ONNX to a TensorRT engine (+ <engine stem>.json manifest)")
    p.add_argument("--onnx", required=True, help="model.onnx from `edge-pct export`, model.int8.tensorrt.onnx "
                   "(Q/DQ) from `edge-pct calibrate`, or a plain ONNX such as a YOLOX detector (no sidecar needed)")
    p.add_argument("--precision", required=True, choices=["fp16", "int8", "fp32"],
                   help="TensorRT 11 needs an fp16 export (`export --precision fp16`) or a Q/DQ ONNX for int8; an "
                   "FP32 ONNX from elsewhere (YOLOX) builds there as fp32")
    p.add_argument("--out", help="engine path (default: <onnx stem>.<precision>.engine beside the ONNX)")
    p.add_argument("--calib-cache", help="calib.cache of `edge-pct calibrate`: INT8 from a plain ONNX, TensorRT <= 10")
    p.add_argument("--workspace-gb", type=float, default=2.0, help="builder workspace limit in GiB (default: 2)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="largest batch (persons per call) of a dynamic-batch ONNX (default: 32, stream.max_persons)")
    p.add_argument("--timing-cache", help="TensorRT timing cache file: read if present, then updated (faster rebuilds)")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("bench", help="FPS and per-stage latency of the streaming pipeline on a recorded video")
    p.add_argument("--video", required=True, help="video file; every frame is processed")
    p.add_argument("--model", help="pose model .pt, .onnx or .engine (default: the shipped model)")
    p.add_argument("--backend", choices=POSE_BACKENDS,
                   help=BACKEND_HELP + " (a .pt is exported once to the user cache)")
    p.add_argument("--detector", choices=["track", "onnx", "mediapipe"],
                   help="person detector (default: [stream] detector of --config, else onnx/mediapipe when a detector "
                   "model is set, else track)")
    p.add_argument("--detector-model", help="YOLOX-format .onnx/.engine or PoseLandmarker .task "
                   "(default: [stream] detector_model of --config, else $EDGE_PCT_DETECTOR_MODEL)")
    p.add_argument("--max-persons", type=int, help="most persons posed per frame (default: 32, stream.max_persons)")
    p.add_argument("--threads", type=int, help="ONNX Runtime CPU threads (default: one per core)")
    p.add_argument("--frames", type=int, help="stop after this many frames (default: all)")
    p.add_argument("--save", help="write the video with the skeleton overlay to this .mp4/.avi")
    p.add_argument("--peer", choices=["mediapipe"], help="also run MediaPipe PoseLandmarker on the same video")
    p.add_argument("--peer-model", help="PoseLandmarker .task file for --peer mediapipe")
    p.add_argument("--config", help="TOML config whose [stream] section sets the pipeline")
    p.add_argument("--server", metavar="grpc://HOST:PORT", help="run the pose model and detector on a Triton server "
                   "(`edge-pct serve`); tracking and smoothing stay here")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("serve", help="serve the pipeline on Triton (PyTriton in its own Python 3.12 environment) "
                       "for `bench --server` and gRPC clients")
    p.add_argument("--repo", help="model repository of `export --triton DIR` (default: one of --model in the cache)")
    p.add_argument("--model", help="pose model .pt/.onnx/calibrate folder of the default repository (default: shipped)")
    p.add_argument("--detector-model", help="YOLOX-format .onnx of the default repository (default: YOLOX-Nano)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    for kind, port in (("grpc", 8001), ("http", 8000), ("metrics", 8002)):
        p.add_argument(f"--{kind}-port", type=int, default=port, help=f"{kind} port (default: {port})")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads per served model (default: one per core)")
    p.add_argument("--setup", action="store_true", help="create the server environment (.venv-serve: Python 3.12, "
                   "PyTriton, onnxruntime; pip, once) and exit")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("app", help="the camera app: live skeleton overlay (PyQt6, the `app` extra)")
    p.add_argument("--source", help="camera index, video file or URL (default: the last one used, first run: 0)")
    p.add_argument("--model", help="pose model .pt, .onnx or .engine (default: the last used, else shipped)")
    p.add_argument("--backend", choices=POSE_BACKENDS, help=BACKEND_HELP)
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16", "int8"],
                   help="require this model precision (default: any); OpenVINO's is in its backend name")
    p.add_argument("--detector", choices=["track", "onnx", "mediapipe"], help="default: last used, else track")
    p.add_argument("--detector-model", help="YOLOX-format .onnx/.engine or PoseLandmarker .task")
    p.add_argument("--no-smoothing", action="store_true", help="start with the One-Euro smoothing off")
    p.add_argument("--loop", action="store_true", help="loop video files instead of stopping at the end")
    p.add_argument("--config", help="TOML config whose [stream] section sets the pipeline")
    p.add_argument("--exit-after", type=int, metavar="N", help="headless: process N frames, then exit")
    p.add_argument("--retries", type=int, default=3, metavar="N", help="headless: reconnect attempts after a lost "
                   "stream before exiting with code 2 (default: 3; the window retries until closed)")
    p.add_argument("--screenshot", metavar="PNG", help="headless: save a screenshot of the window after N frames")
    p.add_argument("--settings", metavar="INI", help="settings file to use instead of the user's (~/.config/edge-pct)")
    p.set_defaults(func=_cmd_app)

    for name, action in sub.choices.items():
        action.add_argument("--json", metavar="FILE", help="write the whole result as JSON to FILE ('-': to stdout "
                            "instead of the summary table)")
        if name.startswith("train") or name in ("bench", "app"):
            action.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                                help="config override, e.g. tokenizer_train.lr=3e-4 (repeatable)")
    return parser


# Numeric options that must be > 0 wherever a subcommand has them (checked before any work starts).
POSITIVE_OPTIONS = ("frames", "threads", "max_persons", "epochs", "num", "max_batch", "batch", "exit_after",
                    "trt_version", "workspace_gb", "opset")


def _check_numbers(args: argparse.Namespace) -> None:
    """ConfigError naming the first positive-only option given as 0 or less."""
    for name in POSITIVE_OPTIONS:
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} {value} is invalid: use a number > 0")


# Output options per subcommand: True = a folder, False = a file (checked before any work starts).
OUTPUT_OPTIONS = {"train": {"out": True}, "train-tokenizer": {"out": True}, "calibrate": {"out": True},
                  "export": {"out": False}, "build": {"out": False}, "bench": {"save": False},
                  "app": {"screenshot": False}}


def _check_outputs(args: argparse.Namespace) -> None:
    """InputFileError for the first output path (and --json FILE) that cannot be written."""
    from edge_pct.core.files import check_output_path

    wanted = {**OUTPUT_OPTIONS.get(args.command, {}), "json": False}
    for name, folder in wanted.items():
        value = getattr(args, name, None)
        if value and value != "-":
            check_output_path(value, folder)


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (docker stop, systemd) ends a command like Ctrl-C: the same cleanup, exit 130."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)

    def run() -> int:
        _check_numbers(args)
        _check_outputs(args)
        return args.func(args)

    return run_reporting_errors(run, f"edge-pct {args.command}")


if __name__ == "__main__":
    sys.exit(main())
