"""TensorRT's native implicit-INT8 calibration cache: write it from per-tensor ranges, and read it back.

TensorRT 8.6-10.x (JetPack 5/6) builds implicit INT8 engines from per-tensor scales that an `IInt8Calibrator`
hands over; `IInt8Calibrator.read_calibration_cache()` may return a previous run's cache instead of calibrating
again, and that is how the ranges measured here reach TensorRT (TensorRT 11 removed implicit INT8; it reads the
Q/DQ ONNX instead). The text format, as TensorRT writes and reads it:

    TRT-8601-EntropyCalibration2
    images: 3c010a14
    conv1_output: 3d8f5c29

The first line is `TRT-<version>-<algorithm>`: <version> is TensorRT's NV_TENSORRT_VERSION integer
(major * 1000 + minor * 100 + patch, so 8601 = 8.6.1, the JetPack 5/6 release; 10.x writes e.g. 100300) and
<algorithm> the calibrator's `CalibrationAlgoType` name (EntropyCalibration2 for `IInt8EntropyCalibrator2`,
whose getAlgorithm() must match the header). Every other line is `<tensor name>: <hex>`, the tensor name as the
ONNX parser names the network tensor (= the ONNX tensor name) and <hex> the big-endian IEEE-754 float32 bit
pattern of the symmetric scale = max(|min|, |max|) / 127 (`struct.pack('>f', scale).hex()`, 8 lowercase
digits). A tensor without a line has no scale, so TensorRT keeps the layers around it out of INT8.
ONNX Runtime's `write_calibration_table` writes another format (flatbuffers/JSON) and takes max(hi, lo), not the
abs-max, so it is not used. Reference: TensorRT developer guide, "INT8 calibration" / "Calibration cache".
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_pct.core.errors import InputFileError
from edge_pct.core.files import write_text_atomic

DEFAULT_TRT_VERSION = 8601  # TensorRT 8.6.1: JetPack 5.1.x / 6 and the last 8.x
DEFAULT_ALGORITHM = "EntropyCalibration2"
INT8_MAX = 127
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


@dataclass(frozen=True)
class CalibrationCache:
    """A parsed cache: TensorRT version integer (8601), algorithm name, scales {tensor: float32 scale}."""

    version: int
    algorithm: str
    scales: dict[str, float]


def trt_scale(lo: float, hi: float) -> float:
    """Symmetric INT8 scale of a tensor range [lo, hi]: max(|lo|, |hi|) / 127, as float32.

    A range of exactly 0 (a tensor that is always zero) gets scale 1.0, as ONNX Runtime's quantizer does, so no
    scale is ever 0 (TensorRT divides by it).
    """
    amax = max(abs(float(lo)), abs(float(hi)))
    if not math.isfinite(amax):
        raise ValueError(f"Range ({lo}, {hi}) is not finite: the calibration data gave inf/nan activations")
    scale = amax / INT8_MAX if amax > 0 else 1.0
    return struct.unpack(">f", struct.pack(">f", scale))[0]


def scale_hex(scale: float) -> str:
    """float -> the 8 lowercase hex digits of its big-endian float32 bits (0.02 -> '3ca3d70a')."""
    return struct.pack(">f", scale).hex()


def format_cache(ranges: Mapping[str, tuple[float, float]], version: int = DEFAULT_TRT_VERSION,
                 algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The cache text for `ranges` {tensor name: (min, max)}, tensors sorted by name, one trailing newline."""
    if not str(algorithm).isidentifier():
        raise ValueError(f"Algorithm {algorithm!r} is not a TensorRT CalibrationAlgoType (e.g. {DEFAULT_ALGORITHM})")
    lines = [f"TRT-{int(version)}-{algorithm}"]
    for name in sorted(ranges):
        if not name or "\n" in name:
            raise ValueError(f"Tensor name {name!r} cannot be written into a TensorRT calibration cache")
        lo, hi = ranges[name]
        lines.append(f"{name}: {scale_hex(trt_scale(lo, hi))}")
    return "\n".join(lines) + "\n"


def write_cache(path: str | Path, ranges: Mapping[str, tuple[float, float]], version: int = DEFAULT_TRT_VERSION,
                algorithm: str = DEFAULT_ALGORITHM) -> Path:
    """Write `format_cache(ranges, ...)` to `path` (under a temporary name first, then renamed); returns path."""
    path = Path(path)
    write_text_atomic(path, format_cache(ranges, version, algorithm))
    return path


def parse_cache(text: str, source: str = "<cache>") -> CalibrationCache:
    """Parse cache text; InputFileError naming the bad line. Hex values of any length are read (TensorRT itself
    prints them without leading zeros)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    match = _HEADER.match(lines[0].strip()) if lines else None
    if match is None:
        first = lines[0][:80] if lines else "an empty file"
        raise InputFileError(f"'{source}' is not a TensorRT calibration cache (first line {first!r}, expected "
                             f"'TRT-<version>-<algorithm>'): run `edge-pct calibrate` to write one")
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        name, sep, value = line.rpartition(":")
        try:
            if not sep or not name.strip():
                raise ValueError("no 'tensor: hex' pair")
            scales[name.strip()] = struct.unpack(">f", int(value.strip(), 16).to_bytes(4, "big"))[0]
        except (ValueError, OverflowError) as e:
            raise InputFileError(f"'{source}' line {number} ({line[:80]!r}) is not '<tensor>: <hex float32>' ({e}): "
                                 "run `edge-pct calibrate` to rewrite the cache") from e
    return CalibrationCache(int(match.group(1)), match.group(2), scales)


def read_cache(path: str | Path) -> CalibrationCache:
    """Read and parse a cache file written by `write_cache` (or by TensorRT)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"Cannot read calibration cache '{path}' ({e}): run `edge-pct calibrate`") from e
    return parse_cache(text, str(path))
