"""TensorRT build and runtime: version branching (`trt_compat`) on fake tensorrt modules for 8.6, 10 and 11, the
build flow and manifest with a fake builder, the manifest check and its rebuild command, the `edge-pct build` command
without TensorRT, and (where TensorRT and CUDA exist) a real FP16 engine against ONNX Runtime."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edge_pct.core.errors import ConfigError, EdgePctError, InputFileError, MissingDependencyError
from edge_pct.engines import trt_compat
from edge_pct.engines.build import build_engine, default_engine_path, gpu_info, manifest_path
from edge_pct.engines.trt_runtime import check_manifest, read_manifest, rebuild_command

VERSIONS = ("8.6.1", "10.3.0", "11.1.0")
ONNX_IO = {"images": (-1, 3, 64, 48), "joints": (-1, 17, 2), "confidence": (-1, 17), "token_probs": (-1, 8, 64)}


# -- a fake tensorrt module: just the attributes trt_compat and build.py touch ---------------------------------------
class FakeConfig:
    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.int8_calibrator = None
        self.pools: dict[str, int] = {}
        self.profiles: list = []
        self.timing = None

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def set_memory_pool_limit(self, pool: str, nbytes: int) -> None:
        self.pools[pool] = nbytes

    def add_optimization_profile(self, profile) -> None:
        self.profiles.append(profile)

    def set_calibration_profile(self, profile) -> None:
        self.calibration_profile = profile

    def create_timing_cache(self, blob: bytes):
        return SimpleNamespace(blob=blob, serialize=lambda: blob + b"+new")

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        self.timing = cache
        return True

    def get_timing_cache(self):
        return self.timing


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, lo, opt, hi) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


def _tensor(name: str, shape: tuple) -> SimpleNamespace:
    return SimpleNamespace(name=name, shape=shape)


def _layer(kind: str, dtype: str) -> SimpleNamespace:
    return SimpleNamespace(type=kind, num_outputs=1, get_output=lambda j: SimpleNamespace(dtype=dtype))


class FakeNetwork:
    def __init__(self, flags: int, layers: list) -> None:
        self.flags = flags
        self.layers = layers
        self.inputs = [_tensor("images", ONNX_IO["images"])]
        self.outputs = [_tensor(k, v) for k, v in ONNX_IO.items() if k != "images"]
        self.num_inputs, self.num_outputs, self.num_layers = len(self.inputs), len(self.outputs), len(layers)

    def get_input(self, i: int):
        return self.inputs[i]

    def get_output(self, i: int):
        return self.outputs[i]

    def get_layer(self, i: int):
        return self.layers[i]


def fake_trt(version: str, layers: list | None = None, build_fails: bool = False) -> types.ModuleType:
    """A stand-in for `import tensorrt` at `version` (8.6: EXPLICIT_BATCH, 10: both flags, 11: no FP16/INT8)."""
    v = trt_compat.parse_version(version)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.NetworkDefinitionCreationFlag = SimpleNamespace(
        **({"EXPLICIT_BATCH": 0} if v < (11,) else {}), **({"STRONGLY_TYPED": 1} if v >= (10,) else {}))
    trt.BuilderFlag = SimpleNamespace(FP16="FP16", INT8="INT8") if v < (11,) else SimpleNamespace()
    if v < (11,):
        trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (), {"__init__": lambda self: None})
    trt.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.LayerType = SimpleNamespace(QUANTIZE="QUANTIZE", DEQUANTIZE="DEQUANTIZE", CONVOLUTION="CONVOLUTION")
    trt.DataType = SimpleNamespace(HALF="HALF", FLOAT="FLOAT")
    trt.ILogger = type("ILogger", (), {"__init__": lambda self: None})
    graph = layers if layers is not None else [_layer("CONVOLUTION", "FLOAT")]

    class Builder:
        def __init__(self, logger) -> None:
            self.logger = logger

        def create_network(self, flags: int) -> FakeNetwork:
            self.network = FakeNetwork(flags, graph)
            return self.network

        def create_builder_config(self) -> FakeConfig:
            return FakeConfig()

        def create_optimization_profile(self) -> FakeProfile:
            return FakeProfile()

        def build_serialized_network(self, network, config):
            if build_fails:
                self.logger.log(1, "Out of memory: workspace too small")
                return None
            self.config = config
            return b"ENGINE:" + ",".join(sorted(config.flags)).encode()

    class OnnxParser:
        def __init__(self, network, logger) -> None:
            self.errors: list[str] = []

        def parse(self, blob: bytes) -> bool:
            if blob.startswith(b"bad"):
                self.errors = ["In node 3 (Conv): INVALID_NODE: unsupported group", "In node 9: UNSUPPORTED_NODE"]
            return not self.errors

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> str:
            return self.errors[i]

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    return trt


@pytest.fixture
def use_trt(monkeypatch):
    """use_trt("10.3.0", ...) puts a fake tensorrt into sys.modules for the rest of the test."""

    def install(version: str, **kwargs) -> types.ModuleType:
        trt = fake_trt(version, **kwargs)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(trt_compat, "_LOGGER", None)  # the logger subclasses the (fake) trt.ILogger
        return trt

    return install


@pytest.fixture
def no_trt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` -> ImportError, installed or not


# -- version parsing and branching ------------------------------------------------------------------------------
def test_versions_parse_as_numbers_not_strings():
    assert trt_compat.parse_version("8.6.1") == (8, 6, 1)
    assert trt_compat.parse_version("10.3.0.26") == (10, 3, 0, 26)
    assert trt_compat.parse_version("8.6.1.post1") == (8, 6, 1)
    assert trt_compat.parse_version("11.1.0rc2") == (11, 1, 0)
    assert trt_compat.parse_version("10.10.0") > trt_compat.parse_version("10.9.0")  # "10.10.0" < "10.9.0" as strings
    with pytest.raises(ValueError):
        trt_compat.parse_version("dev")


@pytest.mark.parametrize("version, implicit_int8, strongly_only, plain, typed", [
    ("8.6.1", True, False, 1 << 0, None), ("10.3.0", True, False, 0, 1 << 1), ("11.1.0", False, True, 0, 0)])
def test_version_branches(use_trt, version, implicit_int8, strongly_only, plain, typed):
    use_trt(version)
    assert trt_compat.trt_version() == trt_compat.parse_version(version)
    assert trt_compat.has_implicit_int8() is implicit_int8 and trt_compat.is_strongly_typed_only() is strongly_only
    builder = fake_trt(version).Builder(None)
    assert trt_compat.create_network(builder).flags == plain  # 8.6: EXPLICIT_BATCH; 10: default; 11: always typed
    if typed is None:
        with pytest.raises(ConfigError, match="TensorRT >= 10"):
            trt_compat.create_network(builder, strongly_typed=True)
    else:
        assert trt_compat.create_network(builder, strongly_typed=True).flags == typed


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_fp16_and_int8_are_builder_flags_up_to_10(use_trt, tmp_path, version):
    use_trt(version)
    config = FakeConfig()
    assert trt_compat.set_precision(config, "fp16") is None and config.flags == {"FP16"}
    config = FakeConfig()
    with pytest.raises(ConfigError, match="`edge-pct calibrate`") as e:
        trt_compat.set_precision(config, "int8")  # plain ONNX, no cache
    assert "\n" not in str(e.value)
    cache = tmp_path / "calib.cache"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n")
    calibrator = trt_compat.set_precision(config, "int8", cache, calibration_profile="profile0")
    assert config.flags == {"FP16", "INT8"} and config.int8_calibrator is calibrator
    assert config.calibration_profile == "profile0"  # dynamic batch: calibration needs a profile
    assert calibrator.read_calibration_cache() == cache.read_bytes()  # cache-only calibration
    assert calibrator.get_batch(["images"]) is None and calibrator.get_batch_size() == 1
    config = FakeConfig()
    assert trt_compat.set_precision(config, "int8", qdq=True) is None  # explicit quantization: scales in the graph
    assert config.flags == {"FP16", "INT8"} and config.int8_calibrator is None
    config = FakeConfig()
    assert trt_compat.set_precision(config, "fp32") is None and not config.flags
    with pytest.raises(ConfigError, match="Valid"):
        trt_compat.set_precision(config, "bf16")


def test_tensorrt_11_takes_precision_from_the_onnx(use_trt):
    use_trt("11.1.0")
    config = FakeConfig()
    assert trt_compat.set_precision(config, "fp16", fp16_in_graph=True) is None
    assert trt_compat.set_precision(config, "int8", qdq=True) is None
    assert not config.flags and config.int8_calibrator is None  # no FP16/INT8 flags exist on 11
    with pytest.raises(ConfigError, match=r"`edge-pct export --precision fp16`"):
        trt_compat.set_precision(config, "fp16")
    with pytest.raises(ConfigError, match="`edge-pct calibrate`"):
        trt_compat.set_precision(config, "int8", Path("calib.cache"))  # no implicit calibration any more


def test_workspace_timing_cache_and_execution_paths(use_trt, tmp_path):
    use_trt("10.3.0")
    config = FakeConfig()
    trt_compat.set_workspace(config, 3 << 30)
    assert config.pools == {"WORKSPACE": 3 << 30}
    path = tmp_path / "cache" / "timing.cache"
    assert trt_compat.load_timing_cache(config, path).blob == b""  # no file yet: an empty cache
    trt_compat.save_timing_cache(config, path)
    assert path.read_bytes() == b"+new" and trt_compat.load_timing_cache(config, path).blob == b"+new"

    calls: list = []
    context = SimpleNamespace(
        set_tensor_address=lambda name, ptr: calls.append(("addr", name, ptr)),
        execute_async_v3=lambda stream: calls.append(("v3", stream)) or True,
        execute_async_v2=lambda bindings, stream_handle: calls.append(("v2", bindings, stream_handle)) or True,
        engine=SimpleNamespace(num_bindings=2, get_binding_name=["images", "joints"].__getitem__))
    for version, kind in (("8.4.3", "v2"), ("8.6.1", "v3"), ("10.3.0", "v3"), ("11.1.0", "v3")):
        use_trt(version)
        calls.clear()
        trt_compat.execute_async(context, {"joints": 200, "images": 100}, 7)
        assert calls[-1][0] == kind
        if kind == "v2":
            assert calls == [("v2", [100, 200], 7)]  # binding order, not dict order
        else:
            assert ("addr", "images", 100) in calls and calls[-1] == ("v3", 7)


# -- build flow with a fake builder -----------------------------------------------------------------------------
def _onnx(tmp_path: Path, data: bytes = b"onnx-bytes", sidecar: bool = True) -> Path:
    path = tmp_path / "tiny.onnx"
    path.write_bytes(data)
    if sidecar:
        path.with_suffix(".json").write_text(json.dumps({"onnx": "tiny.onnx", "decoder_onnx": "tiny.decoder.onnx",
                                                         "input_size": [48, 64], "precision": "fp32"}))
    return path


def test_build_writes_engine_and_manifest(use_trt, tmp_path):
    use_trt("10.3.0")
    onnx = _onnx(tmp_path)
    out = tmp_path / "engines" / "tiny.fp16.engine"
    res = build_engine(onnx, "fp16", out, max_batch=8, timing_cache=tmp_path / "timing.cache")
    assert res == {"engine": str(out), "manifest": str(manifest_path(out)), "build_s": res["build_s"]}
    assert out.read_bytes() == b"ENGINE:FP16" and (tmp_path / "timing.cache").is_file()
    assert not list(out.parent.glob("*.tmp"))
    m = json.loads(manifest_path(out).read_text())
    assert m["tensorrt"] == "10.3.0" and m["precision"] == "fp16" and m["engine"] == "tiny.fp16.engine"
    assert m["onnx"] == str(onnx) and len(m["onnx_sha256"]) == 64 and m["onnx_abspath"] == str(onnx.resolve())
    assert m["inputs"] == {"images": [-1, 3, 64, 48]} and m["outputs"]["token_probs"] == [-1, 8, 64]
    assert m["max_batch"] == 8 and m["profile"] == {"min": 1, "opt": 4, "max": 8}
    assert set(m["gpu"]) == {"name", "compute_capability"} and m["sidecar"]["input_size"] == [48, 64]
    assert m["int8_calibration"] is None and m["strongly_typed"] is False and m["build_s"] >= 0
    assert m["versions"]["edge_pct"] and read_manifest(out) == m


def test_build_int8_from_a_cache_or_qdq(use_trt, tmp_path):
    onnx = _onnx(tmp_path)
    use_trt("8.6.1")
    with pytest.raises(ConfigError, match="needs --calib-cache: run `edge-pct calibrate`"):
        build_engine(onnx, "int8", tmp_path / "a.engine")
    cache = tmp_path / "calib.cache"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\n")
    build_engine(onnx, "int8", tmp_path / "a.engine", calib_cache=cache, max_batch=3)
    m = read_manifest(tmp_path / "a.engine")
    assert (tmp_path / "a.engine").read_bytes() == b"ENGINE:FP16,INT8" and m["int8_calibration"] == "cache"
    assert m["calib_cache"] == str(cache) and m["profile"] == {"min": 1, "opt": 1, "max": 3}
    assert "--calib-cache" in rebuild_command(m, tmp_path / "a.engine")
    use_trt("11.1.0", layers=[_layer("QUANTIZE", "FLOAT"), _layer("CONVOLUTION", "FLOAT")])
    build_engine(onnx, "int8", tmp_path / "b.engine")  # Q/DQ graph: no cache, no flags
    assert read_manifest(tmp_path / "b.engine")["int8_calibration"] == "qdq"
    with pytest.raises(ConfigError, match="export --precision fp16"):
        build_engine(onnx, "fp16", tmp_path / "c.engine")  # FP32 graph on TensorRT 11
    use_trt("11.1.0", layers=[_layer("CONVOLUTION", "HALF")])
    build_engine(onnx, "fp16", tmp_path / "c.engine")
    assert read_manifest(tmp_path / "c.engine")["strongly_typed"] is True


def test_build_a_plain_onnx_without_sidecar(use_trt, tmp_path, capsys):
    """A non-pose ONNX (e.g. YOLOX-Nano) builds: the manifest just has no sidecar; FP32 is the TensorRT 11 route."""
    from edge_pct.cli import main

    onnx = _onnx(tmp_path, sidecar=False)
    use_trt("10.3.0")
    out = tmp_path / "yolox.fp16.engine"
    assert main(["build", "--onnx", str(onnx), "--precision", "fp16", "--out", str(out)]) == 0
    m = read_manifest(out)
    assert m["sidecar"] is None and m["precision"] == "fp16" and out.read_bytes() == b"ENGINE:FP16"
    use_trt("11.1.0")
    assert main(["build", "--onnx", str(onnx), "--precision", "fp32", "--out", str(tmp_path / "y.engine")]) == 0
    assert read_manifest(tmp_path / "y.engine")["sidecar"] is None
    capsys.readouterr()


def test_build_errors_carry_tensorrt_messages(use_trt, tmp_path):
    use_trt("10.3.0")
    with pytest.raises(InputFileError, match="not found: run `edge-pct export"):
        build_engine(tmp_path / "missing.onnx", "fp16", tmp_path / "m.engine")
    with pytest.raises(InputFileError) as e:
        build_engine(_onnx(tmp_path, b"bad graph"), "fp16", tmp_path / "m.engine")
    assert "In node 3 (Conv): INVALID_NODE: unsupported group; In node 9: UNSUPPORTED_NODE" in str(e.value)
    use_trt("10.3.0", build_fails=True)
    with pytest.raises(EdgePctError, match="could not build the engine: Out of memory: workspace too small"):
        build_engine(_onnx(tmp_path), "fp16", tmp_path / "m.engine")
    assert not (tmp_path / "m.engine").exists() and not manifest_path(tmp_path / "m.engine").exists()
    for kwargs, match in (({"max_batch": 0}, "--max-batch"), ({"workspace_gb": 0}, "--workspace-gb")):
        with pytest.raises(ConfigError, match=match):
            build_engine(_onnx(tmp_path), "fp16", tmp_path / "m.engine", **kwargs)
    with pytest.raises(ConfigError, match=r"\.engine"):
        build_engine(_onnx(tmp_path), "fp16", tmp_path / "m.trt")
    assert default_engine_path("runs/x/model.onnx", "int8") == Path("runs/x/model.int8.engine")


# -- manifest check (pure) --------------------------------------------------------------------------------------
MANIFEST = {"onnx": "exports/model.onnx", "precision": "fp16", "tensorrt": "10.3.0",
            "gpu": {"name": "Orin", "compute_capability": "8.7"}, "profile": {"min": 1, "opt": 4, "max": 8}}
REBUILD = "edge-pct build --onnx exports/model.onnx --precision fp16 --out engines/model.fp16.engine"


def test_manifest_mismatch_names_the_rebuild_command():
    engine = Path("engines/model.fp16.engine")
    check_manifest(MANIFEST, engine, "10.3.0", "8.7")
    check_manifest(MANIFEST, engine, "10.3.0", None)  # GPU unknown: only TensorRT is compared
    with pytest.raises(InputFileError) as e:
        check_manifest(MANIFEST, engine, "11.1.0", "8.7")
    msg = str(e.value)
    assert "built with TensorRT 10.3.0, this is TensorRT 11.1.0" in msg and f"`{REBUILD}`" in msg and "\n" not in msg
    with pytest.raises(InputFileError, match=r"compute capability 8\.7 \(Orin\), this GPU is 8\.6") as e:
        check_manifest(MANIFEST, engine, "10.3.0", "8.6")
    assert REBUILD in str(e.value)
    assert rebuild_command({**MANIFEST, "profile": {"max": 16}}, engine) == REBUILD + " --max-batch 16"


def test_missing_or_corrupt_manifest(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(InputFileError, match="not found: build it with `edge-pct build"):
        read_manifest(engine)
    engine.write_bytes(b"plan")
    with pytest.raises(InputFileError, match="Manifest .* not found"):
        read_manifest(engine)
    manifest_path(engine).write_text("{not json")
    with pytest.raises(InputFileError, match="corrupt"):
        read_manifest(engine)
    manifest_path(engine).write_text("{}")
    with pytest.raises(InputFileError, match="not written by `edge-pct build`"):
        read_manifest(engine)


# -- the command line without TensorRT --------------------------------------------------------------------------
def test_build_help_lists_the_options(capsys):
    from edge_pct.cli import main

    with pytest.raises(SystemExit) as e:
        main(["build", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in ("--onnx", "--precision", "--out", "--calib-cache", "--workspace-gb", "--max-batch",
                   "--timing-cache", "--json", "int8"):
        assert option in out


def test_build_without_tensorrt_is_one_line_naming_the_extra_and_jetpack(no_trt, tmp_path, capsys):
    from edge_pct.cli import main
    from edge_pct.engines.runtime import create_backend

    onnx = _onnx(tmp_path)
    assert main(["build", "--onnx", str(onnx), "--precision", "fp16", "--out", str(tmp_path / "m.engine")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("edge-pct build: error:")
    assert "pip install 'edge-pct[tensorrt]'" in err and "JetPack" in err
    assert not (tmp_path / "m.engine").exists()
    with pytest.raises(MissingDependencyError, match="JetPack"):
        create_backend("tensorrt", tmp_path / "m.engine")
    assert main(["build", "--onnx", str(onnx), "--precision", "fp16", "--max-batch", "0"]) == 2  # args first
    assert "--max-batch 0 is invalid" in capsys.readouterr().err


def test_engine_modules_import_without_tensorrt_or_torch():
    code = ("import sys, edge_pct.engines.build, edge_pct.engines.trt_runtime, edge_pct.engines.trt_compat\n"
            "print([m for m in ('tensorrt', 'torch', 'onnxruntime') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert set(gpu_info()) == {"name", "compute_capability"}


# -- real TensorRT (skips without it) ---------------------------------------------------------------------------
@pytest.mark.trt
@pytest.mark.gpu
def test_real_fp16_engine_matches_onnxruntime(tmp_path_factory, tmp_path):
    pytest.importorskip("tensorrt", reason="needs TensorRT: pip install 'edge-pct[tensorrt]' or JetPack")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from test_export import shared_tiny_export

    from edge_pct.engines.runtime import OnnxRuntimeBackend, create_backend
    from edge_pct.engines.trt_runtime import TrtBackend, TrtRunner
    from edge_pct.export.onnx import export_onnx

    exp = shared_tiny_export(tmp_path_factory)
    onnx = exp["onnx"]
    if trt_compat.is_strongly_typed_only():  # TensorRT 11: FP16 must be in the ONNX
        onnx = Path(export_onnx(exp["checkpoint"], tmp_path / "tiny16.onnx", precision="fp16")["onnx"])
    res = build_engine(onnx, "fp16", tmp_path / "tiny.fp16.engine", max_batch=4)
    manifest = read_manifest(res["engine"])
    assert manifest["gpu"]["compute_capability"] and manifest["max_batch"] == 4
    backend = create_backend("tensorrt", res["engine"])
    assert isinstance(backend, TrtBackend) and backend.precision == "fp16" and backend.input_size == (48, 64)
    ref = OnnxRuntimeBackend(exp["onnx"], threads=1)
    x = np.random.default_rng(0).uniform(0, 255, (7, 3, 64, 48)).astype(np.float32)  # > max_batch: split
    got, want = backend(x), ref(x)
    err = np.linalg.norm(got["joints"] - want["joints"], axis=-1)
    print(f"TensorRT fp16 vs ORT fp32: mean {err.mean():.3g} px, max {err.max():.3g} px")
    assert got["joints"].shape == (7, 17, 2) and err.mean() < 1.0
    np.testing.assert_allclose(backend.decode(got["token_probs"]), ref.decode(got["token_probs"]), atol=0.5)
    with TrtRunner(res["engine"]) as runner:
        assert [s.name for s in runner.input_spec()] == ["images"] and runner.max_batch == 4
    stale = {**manifest, "tensorrt": "7.0.0"}
    manifest_path(res["engine"]).write_text(json.dumps(stale))
    with pytest.raises(InputFileError, match="edge-pct build --onnx"):
        TrtRunner(res["engine"])


def test_tensorrt_absent_here_is_reported_once():
    """A marker for the log: this machine's TensorRT status (the real-engine test above skips without it)."""
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(MissingDependencyError, match=r"edge-pct\[tensorrt\]"):
            trt_compat.import_tensorrt()
    else:
        assert trt_compat.trt_version() >= (8,)
