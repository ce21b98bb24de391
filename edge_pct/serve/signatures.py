"""The served models' signatures (names, dtypes, per-item dims) and their Triton `config.pbtxt` text, in one place.

Every signature is derived from an artifact, never typed twice: the pose model's from its `edge-pct export`
sidecar (`model.json`: input size, J, M, V), the detector's from its graph (input H x W, anchor count). The
repository writer turns them into `config.pbtxt` (`config_text`); the PyTriton server and the clients read them
back from a parsed config (`read_config`, `signature_from_config`), so server, client and repository agree by
construction. Dims are per item: Triton adds the batch axis (`max_batch_size` > 0); -1 is a variable size.
Schema: tritonclient.grpc.model_config_pb2 (Triton's model_config.proto).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_pct.core.errors import InputFileError
from edge_pct.core.optional import require

POSE_MODEL = "pct_pose"
DECODER_MODEL = "pct_decoder"
DETECTOR_MODEL = "yolox_detector"
PIPELINE_MODEL = "pose_pipeline"
MODEL_NAMES = (POSE_MODEL, DECODER_MODEL, DETECTOR_MODEL, PIPELINE_MODEL)
# The detector's served columns: [tx, ty, tw, th, obj, cls[person]] (edge_pct.serve.detector_graph).
DETECTOR_COLUMNS = 6
# numpy dtype name -> Triton config type (model_config.proto DataType) and wire datatype (tritonclient InferInput).
_CONFIG_TYPES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8", "int32": "TYPE_INT32"}
_WIRE_TYPES = {"float32": "FP32", "uint8": "UINT8", "int32": "INT32"}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: `dims` per item (no batch axis), -1 = any size."""

    name: str
    dtype: str  # numpy dtype name: "float32" | "uint8" | "int32"
    dims: tuple[int, ...]

    @property
    def wire_type(self) -> str:
        """The tritonclient datatype string, e.g. "FP32"."""
        return _WIRE_TYPES[self.dtype]


@dataclass(frozen=True)
class ModelSignature:
    """A served model's name, inputs and outputs."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def output(self, name: str) -> TensorSpec:
        return next(o for o in self.outputs if o.name == name)


def pose_signatures(sidecar: Mapping[str, Any]) -> tuple[ModelSignature, ModelSignature]:
    """(pct_pose, pct_decoder) from an `edge-pct export` sidecar: images (3, H, W) float32 RGB 0-255 -> joints (J, 2)
    crop px, confidence (J,), token_probs (M, V); token_probs (M, V) -> joints (J, 2)."""
    w, h = sidecar["input_size"]
    j, m, v = sidecar["num_joints"], sidecar["num_tokens"], sidecar["codebook_size"]
    name = sidecar.get("input", {}).get("name", "images")
    dec = sidecar.get("decoder", {})
    pose = ModelSignature(POSE_MODEL, (TensorSpec(name, "float32", (3, h, w)),),
                          (TensorSpec("joints", "float32", (j, 2)), TensorSpec("confidence", "float32", (j,)),
                           TensorSpec("token_probs", "float32", (m, v))))
    decoder = ModelSignature(DECODER_MODEL, (TensorSpec(dec.get("input", "token_probs"), "float32", (m, v)),),
                             (TensorSpec(dec.get("output", "joints"), "float32", (j, 2)),))
    return pose, decoder


def detector_signature(input_name: str, output_name: str, input_hw: tuple[int, int], cells: int) -> ModelSignature:
    """yolox_detector: the letterboxed canvas (3, H, W) uint8 BGR -> (A, 6) float32 rows [tx, ty, tw, th, obj,
    cls[person]] (`edge_pct.stream.detectors.yolox.decode_yolox` reads them)."""
    h, w = input_hw
    return ModelSignature(DETECTOR_MODEL, (TensorSpec(input_name, "uint8", (3, h, w)),),
                          (TensorSpec(output_name, "float32", (cells, DETECTOR_COLUMNS)),))


def pipeline_signature(num_joints: int) -> ModelSignature:
    """pose_pipeline: one frame (H, W, 3) uint8 BGR -> up to D persons (padded to the most in the request):
    boxes (D, 5) [x1, y1, x2, y2, detector score] frame px, joints (D, J, 2) frame px, confidence (D, J),
    score (D,) mean joint confidence, count (1,) int32 persons in this frame."""
    j = num_joints
    return ModelSignature(PIPELINE_MODEL, (TensorSpec("frame", "uint8", (-1, -1, 3)),),
                          (TensorSpec("boxes", "float32", (-1, 5)), TensorSpec("joints", "float32", (-1, j, 2)),
                           TensorSpec("confidence", "float32", (-1, j)), TensorSpec("score", "float32", (-1,)),
                           TensorSpec("count", "int32", (1,))))


def _tensor_text(t: TensorSpec) -> str:
    return f'  {{ name: "{t.name}" data_type: {_CONFIG_TYPES[t.dtype]} dims: [ {", ".join(map(str, t.dims))} ] }}'


def config_text(sig: ModelSignature, max_batch: int, queue_delay_us: int, *, backend: str | None = None,
                platform: str | None = None, parameters: Mapping[str, str] | None = None) -> str:
    """The `config.pbtxt` of `sig`: `backend` (onnxruntime, python) or `platform` (tensorrt_plan), dynamic batching
    up to `max_batch` items with `queue_delay_us` of queueing, string `parameters`. No instance_group: Triton then
    puts one instance on each GPU, or one on the CPU where there is none."""
    lines = [f'name: "{sig.name}"']
    lines += [f'backend: "{backend}"'] if backend else []
    lines += [f'platform: "{platform}"'] if platform else []
    lines += [f"max_batch_size: {max_batch}",
              "input [", ",\n".join(map(_tensor_text, sig.inputs)), "]",
              "output [", ",\n".join(map(_tensor_text, sig.outputs)), "]",
              f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}"]
    for key, value in (parameters or {}).items():
        lines.append(f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


def read_config(path: str | Path) -> dict[str, Any]:
    """A `config.pbtxt` parsed with Triton's own schema -> its JSON form (proto field names; int64 as str);
    InputFileError naming the file when it does not parse."""
    pb = require("tritonclient.grpc.model_config_pb2", "triton")
    text_format = require("google.protobuf.text_format", "triton")
    json_format = require("google.protobuf.json_format", "triton")
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"Model config '{path}' not found: write the repository with `edge-pct export --triton "
                             "DIR`")
    try:
        msg = text_format.Parse(path.read_text(), pb.ModelConfig())
    except text_format.ParseError as e:
        raise InputFileError(f"Model config '{path}' does not parse as a Triton ModelConfig ({e}): rewrite it with "
                             "`edge-pct export --triton DIR`") from e
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _specs(items: Sequence[Mapping[str, Any]]) -> tuple[TensorSpec, ...]:
    types = {v: k for k, v in _CONFIG_TYPES.items()}
    return tuple(TensorSpec(t["name"], types[t["data_type"]], tuple(int(d) for d in t["dims"])) for t in items)


def signature_from_config(config: Mapping[str, Any]) -> ModelSignature:
    """The signature in a parsed config (`read_config`, or a server's `get_model_config(..., as_json=True)`)."""
    return ModelSignature(config["name"], _specs(config.get("input", [])), _specs(config.get("output", [])))


def config_parameters(config: Mapping[str, Any]) -> dict[str, str]:
    """The string parameters of a parsed config."""
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
