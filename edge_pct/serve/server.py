"""The served pipeline on PyTriton: a real Triton server (bundled by `nvidia-pytriton`) whose four models are Python
functions over ONNX Runtime, bound with the signatures and batching of an `edge-pct export --triton` repository.

The official `tritonserver` runs the repository's ONNX models on its onnxruntime (or TensorRT) backend; PyTriton's
server has only the Python backend, so here `pct_pose`, `pct_decoder` and `yolox_detector` are the same graphs in
ONNX Runtime (`edge_pct.engines.runtime.OnnxRuntimeBackend` for the pose model) behind Triton's dynamic batcher, and
`pose_pipeline` runs `edge_pct.serve.frames.FramePoser` on them in process. Names, dims, dtypes, max batch, queue
delay and the pipeline's parameters are read from the repository's `config.pbtxt` files (Triton's own schema), so a
client cannot tell the two servers apart. Runs under Python 3.12 (PyTriton's Python-backend stub is built for it)
with libpython3.12's folder on LD_LIBRARY_PATH: `edge_pct.serve.environment` starts it so. Binds 127.0.0.1 by
default; the statistics endpoint is open (batch sizes seen), the other admin endpoints keep PyTriton's token.
Run: `python -m edge_pct.serve.server --repo DIR [--host 127.0.0.1] [--grpc-port 8001]`.
PyTriton: https://triton-inference-server.github.io/pytriton/
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.core.errors import ConfigError, run_reporting_errors
from edge_pct.core.optional import require
from edge_pct.serve.frames import FramePoser, PoserSettings
from edge_pct.serve.signatures import (
    DECODER_MODEL,
    DETECTOR_MODEL,
    MODEL_NAMES,
    PIPELINE_MODEL,
    POSE_MODEL,
    ModelSignature,
    config_parameters,
    read_config,
    signature_from_config,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORTS = {"grpc": 8001, "http": 8000, "metrics": 8002}  # Triton's defaults
# PyTriton guards these with a per-run token; statistics stays readable (the load test reads batch sizes from it).
PROTECTED_ENDPOINTS = ["shared-memory", "model-repository", "trace", "logging"]


def _batched(fn: Callable[[np.ndarray], dict[str, np.ndarray]], name: str) -> Callable[[list], list]:
    """A PyTriton infer function over `fn`: the queued requests' input `name` concatenated into one call, the
    outputs split back per request (Triton's dynamic batcher decides what is queued together)."""

    def infer(requests: list) -> list:
        xs = [np.asarray(r[name]) for r in requests]
        out = fn(np.concatenate(xs))
        bounds = np.cumsum([0] + [len(x) for x in xs])
        return [{k: v[a:b] for k, v in out.items()} for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    return infer


def _pipeline(poser: FramePoser) -> Callable[[list], list]:
    """The pose_pipeline infer function: frames of one size posed together, each request's persons cut to its own
    most-persons count."""

    def infer(requests: list) -> list:
        frames = [np.asarray(r["frame"]) for r in requests]
        results: list[dict[str, np.ndarray]] = [{} for _ in requests]
        groups: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault((*f.shape[1:], str(f.dtype)), []).append(i)
        for idx in groups.values():
            out = poser(np.concatenate([frames[i] for i in idx]))  # a ValueError is this batch's error response
            start = 0
            for i in idx:
                n = len(frames[i])
                d = max(int(out["count"][start:start + n].max(initial=0)), 1)
                results[i] = {k: v[start:start + n] if k == "count" else v[start:start + n, :d] for k, v in out.items()}
                start += n
        return results

    return infer


class ServedModels:
    """The repository's four models as ONNX Runtime functions: `functions[name]` is a PyTriton infer function,
    `configs[name]` the parsed config.pbtxt, `signatures[name]` its I/O."""

    def __init__(self, repo: str | Path, threads: int | None = None) -> None:
        from edge_pct.engines.runtime import OnnxRuntimeBackend

        repo = Path(repo)
        self.configs = {m: read_config(repo / m / "config.pbtxt") for m in MODEL_NAMES}
        self.signatures: dict[str, ModelSignature] = {m: signature_from_config(c) for m, c in self.configs.items()}
        pose_cfg = self.configs[POSE_MODEL]
        if pose_cfg.get("platform") == "tensorrt_plan":
            raise ConfigError(f"'{repo}' serves the pose model as a TensorRT plan, which PyTriton cannot run: serve it "
                              "with the official tritonserver on its GPU (docs/serving.md), or rewrite the repository "
                              "without --engine")
        self.pose = OnnxRuntimeBackend(repo / POSE_MODEL / "1" / "model.onnx", threads=threads)
        self.detector_session = _session(repo / DETECTOR_MODEL / "1" / "model.onnx", threads)
        det_sig = self.signatures[DETECTOR_MODEL]
        det_in, det_out = det_sig.inputs[0].name, det_sig.outputs[0].name
        dec_in, dec_out = self.signatures[DECODER_MODEL].inputs[0].name, self.signatures[DECODER_MODEL].outputs[0].name

        def detect(canvases: np.ndarray) -> np.ndarray:
            return self.detector_session.run([det_out], {det_in: canvases})[0]

        def decode(probs: np.ndarray) -> dict[str, np.ndarray]:
            return {dec_out: self.pose.decode(probs)}  # the repository's decoder graph, beside the pose graph

        params = config_parameters(self.configs[PIPELINE_MODEL])
        det_hw = tuple(det_sig.inputs[0].dims[1:])
        poser = FramePoser(detect, self.pose, det_hw, self.pose.input_size, self.pose.meta["num_joints"],
                           PoserSettings.from_parameters(params))
        pose_in = self.signatures[POSE_MODEL].inputs[0].name
        self.functions = {POSE_MODEL: _batched(self.pose, pose_in), DECODER_MODEL: _batched(decode, dec_in),
                          DETECTOR_MODEL: _batched(lambda x: {det_out: detect(x)}, det_in),
                          PIPELINE_MODEL: _pipeline(poser)}


def _session(path: Path, threads: int | None) -> Any:
    from edge_pct.engines.onnx_io import open_session

    ort = require("onnxruntime", "serve")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    fix = "rewrite the repository with `edge-pct export --triton DIR`"
    return open_session(ort, path, opts, ["CPUExecutionProvider"], path, fix=fix)


def bind_models(triton: Any, models: ServedModels) -> None:
    """Bind every model on `triton` (a pytriton.triton.Triton) with its config's tensors and dynamic batching."""
    mc = require("pytriton.model_config", "serve")
    for name in MODEL_NAMES:
        cfg, sig = models.configs[name], models.signatures[name]
        delay = int(cfg.get("dynamic_batching", {}).get("max_queue_delay_microseconds", 0))
        triton.bind(model_name=name, infer_func=models.functions[name],
                    inputs=[mc.Tensor(name=t.name, dtype=np.dtype(t.dtype), shape=t.dims) for t in sig.inputs],
                    outputs=[mc.Tensor(name=t.name, dtype=np.dtype(t.dtype), shape=t.dims) for t in sig.outputs],
                    config=mc.ModelConfig(max_batch_size=int(cfg["max_batch_size"]),
                                          batcher=mc.DynamicBatcher(max_queue_delay_microseconds=delay)),
                    strict=False)


def serve_repository(repo: str | Path, host: str = DEFAULT_HOST, grpc_port: int = DEFAULT_PORTS["grpc"],
                     http_port: int = DEFAULT_PORTS["http"], metrics_port: int = DEFAULT_PORTS["metrics"],
                     threads: int | None = None) -> None:
    """Serve `repo` until SIGINT / SIGTERM, then stop Triton and return."""
    triton_mod = require("pytriton.triton", "serve")
    models = ServedModels(repo, threads)
    config = triton_mod.TritonConfig(grpc_address=host, grpc_port=grpc_port, http_address=host, http_port=http_port,
                                     metrics_address=host, metrics_port=metrics_port, log_verbose=0)
    security = triton_mod.TritonSecurityConfig(restricted_endpoints=list(PROTECTED_ENDPOINTS))
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell's background job starts with it ignored
        signal.signal(sig, _interrupt)
    with triton_mod.Triton(config=config, security_config=security) as triton:
        bind_models(triton, models)
        log.info("serving %s on grpc://%s:%d", repo, host, grpc_port)
        triton.serve()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # PyTriton's serve() stops Triton on it


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_pct.serve.server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, help="model repository of `edge-pct export --triton DIR`")
    ap.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: 127.0.0.1, this machine only)")
    for kind, port in DEFAULT_PORTS.items():
        ap.add_argument(f"--{kind}-port", type=int, default=port, help=f"{kind} port (default: {port})")
    ap.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads per model (default: one per core)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    return run_reporting_errors(lambda: serve_repository(args.repo, args.host, args.grpc_port, args.http_port,
                                                         args.metrics_port, args.threads), "edge-pct serve")


if __name__ == "__main__":
    sys.exit(main())
