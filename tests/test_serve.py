"""The served pipeline: the Triton repository (configs parsed with Triton's own schema, signatures equal to the graphs),
the served detector graph, the stateless frame poser and the BLS model against the in-process pipeline, one-line
errors, and a real PyTriton server on 127.0.0.1 giving the in-process joints. That last test makes the Python 3.12
server environment itself (as `edge-pct serve --setup` does, about 30 s, once) where a Python 3.12 with a shared
libpython exists, and skips with the reason where none does or the install fails (no package index)."""

from __future__ import annotations

import socket
import subprocess
import sys
import types

import numpy as np
import pytest

from conftest import SHARED_DATA, require_data
from edge_pct.core.errors import ConfigError, EdgePctError, MissingDependencyError
from edge_pct.core.package import DEFAULT_DETECTOR
from edge_pct.serve.signatures import MODEL_NAMES, read_config, signature_from_config

VTEST = SHARED_DATA / "videos" / "vtest.avi"
JOINT_ATOL_PX = 1e-3  # the same ONNX graphs in ONNX Runtime on both sides
# pose_pipeline letterboxes and warps on the server, whose OpenCV is 4.x (PyTriton pins numpy < 2, OpenCV 4.12+ needs
# numpy 2): its bilinear rounding moves some pixels by a few levels against this side's OpenCV 5, and PCT's token
# classification turns that into a mean joint shift of about 0.07 px (30 vtest frames; a rare token flip moves one
# joint by pixels). The served pipeline is compared exactly with the same code under the server's own OpenCV.
WHOLE_FRAME_MEAN_PX = 0.3
_POSER_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
from pathlib import Path
from edge_pct.engines.runtime import OnnxRuntimeBackend
from edge_pct.serve.frames import FramePoser
repo = Path(sys.argv[1])
pose = OnnxRuntimeBackend(repo / "pct_pose" / "1" / "model.onnx")
det = ort.InferenceSession(str(repo / "yolox_detector" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
poser = FramePoser(lambda x: det.run(["output"], {"images": x})[0], pose, (416, 416), pose.input_size, 17)
np.savez(sys.argv[3], **poser(np.load(sys.argv[2])))
"""


def _frames(n: int) -> list[np.ndarray]:
    from edge_pct.stream.sources import FileSource

    out = []
    with FileSource(require_data(VTEST)) as src:
        while len(out) < n and (f := src.read()) is not None:
            out.append(f.image)
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    pytest.importorskip("tritonclient.grpc", reason="tritonclient (the triton extra) parses the configs")
    from edge_pct.serve.triton_repo import write_triton_repo

    out = tmp_path_factory.mktemp("triton") / "repo"
    write_triton_repo(out)
    return out


def _local_parts(repo):
    """The repository's own graphs in process: the pose backend and the served detector graph."""
    import onnxruntime as ort

    from edge_pct.engines.runtime import OnnxRuntimeBackend

    pose = OnnxRuntimeBackend(repo / "pct_pose" / "1" / "model.onnx")
    det = ort.InferenceSession(str(repo / "yolox_detector" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return pose, det


def _poser_in(serve, repo, frames, tmp_path):
    """`_poser(repo)(frames)` run by the server's interpreter (its OpenCV and numpy)."""
    np.save(tmp_path / "frames.npy", frames)
    subprocess.run([str(serve.python), "-c", _POSER_SCRIPT, str(repo), str(tmp_path / "frames.npy"),
                    str(tmp_path / "out.npz")], check=True, env=serve.env(), capture_output=True, timeout=120)
    return dict(np.load(tmp_path / "out.npz"))


def _poser(repo):
    from edge_pct.serve.frames import FramePoser

    pose, det = _local_parts(repo)
    return FramePoser(lambda x: det.run(["output"], {"images": x})[0], pose, (416, 416), pose.input_size, 17)


def test_every_config_parses_with_tritons_schema_and_matches_its_graph(repo):
    import onnxruntime as ort

    wire = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}
    for name in MODEL_NAMES:
        cfg = read_config(repo / name / "config.pbtxt")
        assert cfg["name"] == name and int(cfg["max_batch_size"]) >= 32
        assert "max_queue_delay_microseconds" in cfg["dynamic_batching"]
        sig = signature_from_config(cfg)
        if name == "pose_pipeline":
            assert cfg["backend"] == "python" and (repo / name / "1" / "model.py").is_file()
            assert [o.name for o in sig.outputs] == ["boxes", "joints", "confidence", "score", "count"]
            continue
        assert cfg["backend"] == "onnxruntime"
        sess = ort.InferenceSession(str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        for specs, io in ((sig.inputs, sess.get_inputs()), (sig.outputs, sess.get_outputs())):
            assert [(t.name, t.dtype, t.dims) for t in specs] == [(i.name, wire[i.type], tuple(i.shape[1:]))
                                                                   for i in io]


def test_served_detector_graph_gives_the_in_process_boxes(repo):
    from edge_pct.stream.detectors.yolox import YoloxDetector, decode_yolox, letterbox, make_grids

    _, det = _local_parts(repo)
    grids, strides = make_grids((416, 416))
    ref = YoloxDetector(DEFAULT_DETECTOR, score_threshold=0.1, max_persons=64)
    frames = _frames(3)
    canvases = [letterbox(f, (416, 416)) for f in frames]
    raw = det.run(["output"], {"images": np.stack([c.transpose(2, 0, 1) for c, _ in canvases])})[0]  # one batch
    assert raw.shape == (3, 3549, 6)
    for f, (_, r), rows in zip(frames, canvases, raw, strict=True):
        got = decode_yolox(rows, grids, strides, r, 0.1, 0.45, 64, image_wh=(f.shape[1], f.shape[0]))
        np.testing.assert_allclose(got, ref(f), atol=1e-3)
        assert len(got) >= 2


def _in_process_first_frame(pose, frame):
    """The in-process pipeline's persons on `frame` as a first frame (no smoothing, no history)."""
    from edge_pct.config import StreamConfig
    from edge_pct.stream.detectors.factory import stream_detector
    from edge_pct.stream.pipeline import PosePipeline

    cfg = StreamConfig(smoothing=False)
    pipe = PosePipeline(pose, stream_detector(cfg, "onnx"), cfg)
    return pipe.process(frame, 0.0).persons


def test_frame_poser_gives_the_in_process_pipelines_first_frame(repo):
    from edge_pct.core.geometry import box_iou

    poser = _poser(repo)
    pose, _ = _local_parts(repo)
    frames = np.stack(_frames(2))
    out = poser(frames)
    assert out["count"].shape == (2, 1)
    for i, frame in enumerate(frames):
        n = int(out["count"][i, 0])
        ref = _in_process_first_frame(pose, frame)
        assert n >= 2 and len(ref) >= 2
        iou = box_iou(np.stack([p.box for p in ref]), out["boxes"][i, :n, :4])
        for r, p in enumerate(ref):  # every in-process person is served, with the same joints
            j = int(iou[r].argmax())
            assert iou[r, j] > 0.999
            np.testing.assert_allclose(out["joints"][i, j], p.joints, atol=JOINT_ATOL_PX)
            np.testing.assert_allclose(out["confidence"][i, j], p.confidence, atol=1e-4)


def test_frame_poser_refuses_an_oversized_or_wrong_frame(repo):
    poser = _poser(repo)
    with pytest.raises(ValueError, match="larger than the served limit"):
        poser(np.zeros((1, 4097, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        poser(np.zeros((1, 8, 8, 3), np.float32))
    empty = poser(np.zeros((2, 64, 64, 3), np.uint8))  # nobody: one zero row, count 0
    assert empty["boxes"].shape == (2, 1, 5) and empty["count"].ravel().tolist() == [0, 0]


def _fake_pb_utils(repo):
    """triton_python_backend_utils as far as bls_model.py uses it, its BLS requests answered by local ONNX Runtime."""
    pose, det = _local_parts(repo)
    models = {"yolox_detector": lambda x: {"output": det.run(["output"], {"images": x})[0]}, "pct_pose": pose}

    class Tensor:
        def __init__(self, name, data):
            self.name, self.data = name, np.asarray(data)

        def as_numpy(self):
            return self.data

    class Response:
        def __init__(self, output_tensors=(), error=None):
            self.output_tensors, self.error_ = list(output_tensors), error

        def has_error(self):
            return self.error_ is not None

        def error(self):
            return self.error_

    class Request:
        def __init__(self, model_name, inputs, requested_output_names):
            self.model, self.inputs, self.names = model_name, inputs, requested_output_names

        def exec(self):
            assert len(self.inputs[0].data) <= 32  # chunked to the max batch
            out = models[self.model](self.inputs[0].data)
            return Response([Tensor(n, out[n]) for n in self.names])

    class TritonError:
        def __init__(self, msg):
            self.msg = msg

        def message(self):
            return self.msg

    def by_name(obj, name):
        items = obj.output_tensors if isinstance(obj, Response) else obj
        return next(t for t in items if t.name == name)

    return types.SimpleNamespace(Tensor=Tensor, InferenceResponse=Response, InferenceRequest=Request,
                                 TritonError=TritonError, get_input_tensor_by_name=by_name,
                                 get_output_tensor_by_name=by_name)


def test_bls_model_answers_each_request_as_the_frame_poser(repo, monkeypatch):
    import json

    from edge_pct.serve.signatures import config_parameters

    fake = _fake_pb_utils(repo)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    monkeypatch.delitem(sys.modules, "edge_pct.serve.bls_model", raising=False)
    from edge_pct.serve.bls_model import TritonPythonModel

    cfg = read_config(repo / "pose_pipeline" / "config.pbtxt")
    params = {k: {"string_value": v} for k, v in config_parameters(cfg).items()}
    model = TritonPythonModel()
    model.initialize({"model_config": json.dumps({"max_batch_size": 32, "parameters": params})})
    frames = _frames(2)
    requests = [[fake.Tensor("frame", f[None])] for f in frames] + [[fake.Tensor("frame", np.zeros((1, 5000, 9, 3),
                                                                                                   np.uint8))]]
    responses = model.execute(requests)
    ref = _poser(repo)(np.stack(frames))
    for i in range(2):
        got = {t.name: t.data for t in responses[i].output_tensors}
        n = int(got["count"][0, 0])
        assert n == int(ref["count"][i, 0]) and got["boxes"].shape[1] == n
        np.testing.assert_allclose(got["joints"][0], ref["joints"][i, :n], atol=1e-4)
    assert responses[2].has_error() and "larger than the served limit" in responses[2].error().message()


def test_one_line_errors_without_a_server(tmp_path, monkeypatch):
    pytest.importorskip("tritonclient.grpc")
    from edge_pct.serve.client import ServerError, TritonConnection, parse_server_url
    from edge_pct.serve.environment import SERVE_VENV_ENV, check_serve_python
    from edge_pct.serve.triton_repo import write_triton_repo

    assert parse_server_url("grpc://127.0.0.1:8001") == "127.0.0.1:8001"
    with pytest.raises(ConfigError, match="grpc://HOST:PORT"):
        parse_server_url("http://127.0.0.1:8000")
    with pytest.raises(ServerError, match="does not answer.*edge-pct serve"):
        TritonConnection(f"grpc://127.0.0.1:{_free_port()}", timeout_s=5).config("pct_pose")
    monkeypatch.setenv(SERVE_VENV_ENV, str(tmp_path / "none"))
    with pytest.raises(MissingDependencyError, match="edge-pct serve --setup"):
        check_serve_python()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an edge-pct model repository"):
        write_triton_repo(tmp_path / "busy")
    with pytest.raises(ConfigError, match=">= 32"):
        write_triton_repo(tmp_path / "new", max_batch=8)
    res = subprocess.run([sys.executable, "-m", "edge_pct.cli", "serve", "--repo", str(tmp_path)],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", SERVE_VENV_ENV: str(tmp_path)})
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "export --triton" in res.stderr


def test_a_restarting_server_is_waited_for_but_a_wrong_model_name_is_not():
    pytest.importorskip("tritonclient.grpc")
    from tritonclient.utils import InferenceServerException

    from edge_pct.serve.client import ServerError, TritonConnection

    unloaded = "Request for unknown model: 'pct_pose' has no available versions"
    conn = TritonConnection(f"grpc://127.0.0.1:{_free_port()}", reconnect_s=5.0)
    calls = []

    def answer_third_time():
        calls.append(1)
        if len(calls) < 3:
            raise InferenceServerException(unloaded)
        return "answered"

    with pytest.raises(ServerError, match="refused.*unknown model"):  # never answered: a wrong name, no waiting
        conn._call("a request", answer_third_time)
    assert len(calls) == 1
    conn.requests = 1  # answered before: the same message is the server going down or coming back
    assert conn._call("a request", answer_third_time) == "answered" and len(calls) == 3


def test_import_stays_light_and_the_serve_extra_is_in_the_setup_list():
    import tomllib

    from conftest import REPO
    from edge_pct.serve.environment import SERVER_PACKAGES

    code = ("import sys, edge_pct, edge_pct.cli; edge_pct.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tritonclient', 'pytriton', 'grpc')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    assert {e.split(";")[0] for e in extra} <= set(SERVER_PACKAGES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_python():
    """The server environment, made here (once, where it lives for `edge-pct serve`) when absent but possible."""
    from edge_pct.serve.environment import check_serve_python, find_python312, setup_serve_env

    try:
        return check_serve_python()
    except EdgePctError:
        if find_python312() is None:
            pytest.skip("no Python 3.12 with a shared libpython for PyTriton's server (see `edge-pct serve --setup`)")
    try:
        setup_serve_env()
        return check_serve_python()
    except EdgePctError as e:
        pytest.skip(f"could not make the server environment: {e}")


def test_served_pipeline_on_127_0_0_1_gives_the_in_process_joints(repo, tmp_path):
    from edge_pct.serve.environment import ServerProcess

    serve = _serve_python()
    from edge_pct.api import PoseEstimator
    from edge_pct.core.geometry import box_iou
    from edge_pct.serve.client import ServerError, TritonConnection, TritonFramePipeline, remote_estimator

    frames = _frames(12)
    ports = {"grpc": _free_port(), "http": _free_port(), "metrics": _free_port()}
    server = ServerProcess(repo, serve, "127.0.0.1", ports).start(timeout_s=120)
    try:
        local = PoseEstimator(backend="onnxruntime", detector="onnx")
        with remote_estimator(server.url, local.config) as remote:
            n = 0
            for i, f in enumerate(frames):  # tracking and smoothing on this side, per stream, as in process
                a, b = local(f, i / 10), remote(f, i / 10)
                assert [p.track_id for p in a] == [p.track_id for p in b]
                for p, q in zip(a, b, strict=True):
                    np.testing.assert_allclose(q.joints, p.joints, atol=JOINT_ATOL_PX)
                    n += 1
            assert n >= 20
        conn = TritonConnection(server.url)
        whole = TritonFramePipeline(conn)
        served = [whole(f) for f in frames[:4]]
        same_cv = _poser_in(serve, repo, np.stack(frames[:4]), tmp_path)  # the server's own OpenCV and numpy
        ref = _poser(repo)(np.stack(frames[:4]))  # this side's OpenCV
        shift = []
        for i, got in enumerate(served):
            k = int(same_cv["count"][i, 0])
            assert len(got["joints"]) == k >= 2
            np.testing.assert_allclose(got["joints"], same_cv["joints"][i, :k], atol=JOINT_ATOL_PX)
            iou = box_iou(ref["boxes"][i, :int(ref["count"][i, 0]), :4], got["boxes"][:, :4])
            assert (iou.max(axis=1) > 0.95).sum() >= k - 1
            shift += [np.linalg.norm(got["joints"][j] - ref["joints"][i, r], axis=-1)
                      for r, j in enumerate(iou.argmax(axis=1)) if iou[r, j] > 0.95]
        shift = np.concatenate(shift)
        assert shift.mean() < WHOLE_FRAME_MEAN_PX and np.mean(shift < 1.0) > 0.95, (shift.mean(), shift.max())
        with pytest.raises(ServerError, match="larger than the served limit"):
            whole(np.zeros((4100, 16, 3), np.uint8))
        with pytest.raises(ServerError, match="refused"):
            conn.infer("pct_pose", {"images": np.zeros((1, 3, 10, 10), np.float32)}, ["joints"])
        assert len(whole(frames[1])["joints"]) >= 2  # still serving
        assert sum(conn.batch_stats("pct_pose").values()) >= 1
    finally:
        code = server.stop()
    assert code == 0, server.last_log_line()
    with pytest.raises(ServerError, match="does not answer"):
        conn.infer("pct_pose", {"images": np.zeros((1, 3, 256, 192), np.float32)}, ["joints"])
