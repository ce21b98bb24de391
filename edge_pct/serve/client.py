"""Clients of a Triton server of the edge-pct repository (PyTriton's `edge-pct serve`, or the official tritonserver
on the repository of `edge-pct export --triton`), over gRPC (`tritonclient`, the `triton` extra).

`TritonPoseBackend` is a `PoseBackend` (pct_pose, pct_decoder) and `TritonDetector` a `Detector` (yolox_detector:
the letterbox and decode run here, `edge_pct.stream.detectors.yolox`), so `PosePipeline`, `PoseEstimator.from_parts`
and `edge-pct bench --server` run unchanged against a server, tracking and smoothing on the client, per stream
(`remote_estimator`). `TritonFramePipeline` is the whole-frame client of `pose_pipeline` (no tracking). Shapes come
from the server's own model configs; nothing is downloaded. A server that stops answering is one `ServerError` line
(after retrying for `reconnect_s` seconds when that is set); a request the server refuses names its reason.
tritonclient: https://github.com/triton-inference-server/client
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_pct.config import StreamConfig
from edge_pct.core.errors import ConfigError, EdgePctError
from edge_pct.core.geometry import check_frame
from edge_pct.core.optional import require
from edge_pct.engines.onnx_io import check_array, empty_outputs
from edge_pct.serve.signatures import (
    DECODER_MODEL,
    DETECTOR_MODEL,
    MODEL_NAMES,
    PIPELINE_MODEL,
    POSE_MODEL,
    ModelSignature,
    config_parameters,
    signature_from_config,
)
from edge_pct.stream.detectors.base import DEFAULT_SCORE_THRESHOLD
from edge_pct.stream.detectors.yolox import decode_yolox, letterbox, make_grids

log = logging.getLogger(__name__)

_GONE = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED")


class ServerError(EdgePctError):
    """The server is unreachable, or refused a request (the message names which and why)."""


def parse_server_url(url: str) -> str:
    """"grpc://HOST:PORT" (or "HOST:PORT") -> "HOST:PORT"; ConfigError for another scheme or no port."""
    rest = url[len("grpc://"):] if url.startswith("grpc://") else url
    if "://" in rest or ":" not in rest or not rest.rsplit(":", 1)[1].isdigit():
        raise ConfigError(f"--server '{url}' is not a gRPC address: use grpc://HOST:PORT, e.g. grpc://127.0.0.1:8001")
    return rest


def _reason(e: Exception) -> str:
    """The server's reason in one line: the last `SomeError: message` line of a traceback (PyTriton sends the whole
    traceback), else the first line."""
    text = e.message() if callable(getattr(e, "message", None)) else str(e)
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", ln)]
    return (raised or lines or [type(e).__name__])[-1 if raised else 0]


class TritonConnection:
    """One gRPC channel to a server, with the configs of its models.

    Args:
        url: grpc://HOST:PORT.
        timeout_s: per-request limit (a stalled server is an error, not a hang).
        reconnect_s: when the server is unreachable, retry for this long before giving up (0: give up at once).
    """

    def __init__(self, url: str, timeout_s: float = 30.0, reconnect_s: float = 0.0) -> None:
        self._grpc = require("tritonclient.grpc", "triton")
        self.url, self.address = url, parse_server_url(url)
        self.timeout_s, self.reconnect_s = timeout_s, reconnect_s
        self.client: Any = self._grpc.InferenceServerClient(self.address)
        self.requests = 0  # answered requests
        self._configs: dict[str, dict] = {}

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        utils = require("tritonclient.utils", "triton")
        t0 = time.monotonic()
        while True:
            try:
                return fn()
            except utils.InferenceServerException as e:
                # A stopping or restarting server is up while its models are not: "Request for unknown model".
                # Once this connection has been answered, that is the server coming or going, not a wrong name.
                gone = (str(e.status()) in _GONE or "failed to connect" in str(e).lower()
                        or (self.requests > 0 and "unknown model" in str(e)))
                if gone and time.monotonic() - t0 < self.reconnect_s:
                    time.sleep(0.5)
                    continue
                if gone:
                    raise ServerError(f"Triton server at {self.url} does not answer ({what}; {self.requests} requests "
                                      f"answered before): start it with `edge-pct serve` or check --server") from e
                raise ServerError(f"Triton server at {self.url} refused {what}: {_reason(e)}") from e

    def config(self, model: str) -> dict:
        """The served config of `model` (JSON form), cached."""
        if model not in self._configs:
            self._configs[model] = self._call(f"the config of '{model}'", lambda: self.client.get_model_config(
                model, as_json=True, client_timeout=self.timeout_s))["config"]
        return self._configs[model]

    def signature(self, model: str) -> ModelSignature:
        return signature_from_config(self.config(model))

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """One request: `inputs` (each with its batch axis) -> the named outputs."""
        grpc = self._grpc
        sig = {t.name: t for t in self.signature(model).inputs}
        items = []
        for name, x in inputs.items():
            spec = sig[name] if name in sig else None
            wire = spec.wire_type if spec else "FP32"
            item = grpc.InferInput(name, list(x.shape), wire)
            item.set_data_from_numpy(np.ascontiguousarray(x))
            items.append(item)
        wanted = [grpc.InferRequestedOutput(o) for o in outputs]
        res = self._call(f"a '{model}' request", lambda: self.client.infer(model, items, outputs=wanted,
                                                                         client_timeout=self.timeout_s))
        self.requests += 1
        return {o: res.as_numpy(o) for o in outputs}

    def batch_stats(self, model: str) -> dict[int, int]:
        """Server-side executions per batch size of `model` so far ({batch size: count})."""
        stats = self._call(f"the statistics of '{model}'", lambda: self.client.get_inference_statistics(
            model, as_json=True, client_timeout=self.timeout_s))
        out: dict[int, int] = {}
        for m in stats.get("model_stats", []):
            for b in m.get("batch_stats", []):
                out[int(b["batch_size"])] = out.get(int(b["batch_size"]), 0) + int(b["compute_infer"]["count"])
        return out

    def close(self) -> None:
        self.client.close()


def wait_until_ready(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Block until the server at `url` and its four models are ready; TimeoutError or RuntimeError (`alive()` went
    False: the process died) otherwise."""
    grpc = require("tritonclient.grpc", "triton")
    client = grpc.InferenceServerClient(parse_server_url(url))
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout_s:
            if not alive():
                raise RuntimeError("the server process exited")
            try:
                if client.is_server_ready() and all(client.is_model_ready(m) for m in MODEL_NAMES):
                    return
            except Exception:  # not listening yet: tritonclient raises its own exception types
                pass
            time.sleep(0.5)
        raise TimeoutError(f"not ready after {timeout_s:.0f} s")
    finally:
        client.close()


class TritonPoseBackend:
    """A `PoseBackend` served by `pct_pose` (+ `pct_decoder` for `decode`); input size, J, M, V from its config."""

    name = "triton"

    def __init__(self, conn: TritonConnection) -> None:
        self.conn = conn
        cfg = conn.config(POSE_MODEL)
        sig = signature_from_config(cfg)
        _, h, w = sig.inputs[0].dims
        self.input_size: tuple[int, int] = (w, h)
        self.precision: str = config_parameters(cfg).get("precision", "served")
        self.max_batch: int | None = None  # any N: split into the server's max batch here
        self._chunk = int(cfg.get("max_batch_size") or 1)
        self._input = sig.inputs[0].name
        self._dims = (sig.output("joints").dims[0], *sig.output("token_probs").dims)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = check_array(images, (3, self.input_size[1], self.input_size[0]), "images")
        if not len(x):
            return empty_outputs(*self._dims)
        keys = ["joints", "confidence", "token_probs"]
        parts = [self.conn.infer(POSE_MODEL, {self._input: x[s:s + self._chunk]}, keys)
                 for s in range(0, len(x), self._chunk)]
        return {k: np.concatenate([p[k] for p in parts]).astype(np.float32, copy=False) for k in keys}

    def decode(self, token_probs: np.ndarray) -> np.ndarray:
        p = check_array(token_probs, self._dims[1:], "token_probs")
        if not len(p):
            return np.zeros((0, self._dims[0], 2), np.float32)
        sig = self.conn.signature(DECODER_MODEL)
        name, out = sig.inputs[0].name, sig.outputs[0].name
        parts = [self.conn.infer(DECODER_MODEL, {name: p[s:s + self._chunk]}, [out])[out]
                 for s in range(0, len(p), self._chunk)]
        return np.concatenate(parts)


class TritonDetector:
    """A `Detector` served by `yolox_detector`: letterbox here, the graph there, decode and NMS here.

    Args:
        conn: the connection.
        score_threshold, nms_iou, max_persons: as `edge_pct.stream.detectors.yolox.YoloxDetector`.
        own_connection: close `conn` in `close()`.
    """

    name = "triton"

    def __init__(self, conn: TritonConnection, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 nms_iou: float = 0.45, max_persons: int = 5, own_connection: bool = False) -> None:
        self.conn, self._own = conn, own_connection
        sig = conn.signature(DETECTOR_MODEL)
        self._input, self._output = sig.inputs[0].name, sig.outputs[0].name
        self.input_hw: tuple[int, int] = tuple(sig.inputs[0].dims[1:])
        self._grids, self._strides = make_grids(self.input_hw)
        self.score_threshold, self.nms_iou, self.max_persons = score_threshold, nms_iou, max_persons

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        frame = check_frame(frame_bgr)
        canvas, ratio = letterbox(frame, self.input_hw)
        x = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])
        raw = self.conn.infer(DETECTOR_MODEL, {self._input: x}, [self._output])[self._output]
        return decode_yolox(raw[0], self._grids, self._strides, ratio, self.score_threshold, self.nms_iou,
                            self.max_persons, image_wh=(frame.shape[1], frame.shape[0]))

    def close(self) -> None:
        if self._own:
            self.conn.close()
            self._own = False


class TritonFramePipeline:
    """The whole-frame client: frame (H, W, 3) uint8 BGR -> persons of `pose_pipeline` (stateless, no tracking):
    {"boxes": (D, 5) [x1, y1, x2, y2, detector score], "joints": (D, J, 2) frame px, "confidence": (D, J),
    "score": (D,)}."""

    def __init__(self, conn: TritonConnection) -> None:
        self.conn = conn
        self.outputs = [o.name for o in conn.signature(PIPELINE_MODEL).outputs]

    def __call__(self, frame_bgr: np.ndarray) -> dict[str, np.ndarray]:
        frame = check_frame(frame_bgr)
        out = self.conn.infer(PIPELINE_MODEL, {"frame": frame[None]}, self.outputs)
        n = int(out["count"][0, 0])
        return {k: v[0, :n] for k, v in out.items() if k != "count"}


def remote_estimator(url: str, config: StreamConfig | None = None, timeout_s: float = 30.0,
                     reconnect_s: float = 0.0) -> Any:
    """An `edge_pct.PoseEstimator` whose pose model and detector are served at `url` (grpc://HOST:PORT); tracking and
    smoothing run here. The detector keeps boxes as the in-process one does (`stream_detector`): down to
    `config.detector_score`, up to 2 x max_persons. `close()` closes the connection."""
    from edge_pct.api import PoseEstimator

    cfg = config or StreamConfig()
    conn = TritonConnection(url, timeout_s, reconnect_s)
    backend = TritonPoseBackend(conn)
    detector = TritonDetector(conn, score_threshold=cfg.detector_score, max_persons=2 * cfg.max_persons,
                              own_connection=True)
    return PoseEstimator.from_parts(backend, detector, cfg)
