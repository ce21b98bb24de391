"""Load test of the served pipeline: N concurrent camera streams through one Triton server on 127.0.0.1, beside the
in-process pipeline in the same run, then the faults.

Streams are the real videos (`videos/vtest.avi`, `videos/street.avi` of the data folder) decoded once up front and
replayed (stream k takes video k % 2 from frame 3k on), so decoding costs nobody. Modes, each at N = --streams:
  in-process  N threads, each its own `PoseEstimator` (ONNX Runtime, YOLOX-Nano): N cameras on this box, no server;
  client      N threads, each `edge_pct.serve.client.remote_estimator`: pose model and detector served (pct_pose,
              yolox_detector), tracking and smoothing per stream on the client;
  frame       N threads sending whole frames to `pose_pipeline` (stateless, no tracking).
Per cell: poses/s and frames/s over the wall time, p50/p99 of one frame's latency (process() round trip), and the
server's executions per batch size for the models it used (Triton's statistics, read before and after the cell).
Bounded: --frames per stream and --max-seconds per cell (a stream stops at whichever comes first).
Faults, on the same server: a malformed request (wrong shape, wrong dtype), an oversized frame (--oversize px a side),
each answered and the server still serving; then the server stopped mid-stream (the client ends with one line and the
frames it has), and a client with reconnect_s that carries on once the server is back.

    python -m benchmarks.serve_load --streams 1 4 16 --frames 40 --json runs/serve_load.json
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import add_data_arg, data_dir
from edge_pct.core.errors import EdgePctError, InputFileError, run_reporting_errors
from edge_pct.core.files import write_text_atomic

VIDEOS = ("vtest.avi", "street.avi")
OFFSET = 3  # frames between the starts of two streams of one video
FRAMES_AFTER_RESTART = 10  # frames the reconnecting client must get from the restarted server
MAX_FAULT_FRAMES = 2000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _decode(folder: Path, count: int) -> list[list[np.ndarray]]:
    from edge_pct.stream.sources import FileSource

    out = []
    for name in VIDEOS:
        path = folder / "videos" / name
        if not path.is_file():
            raise InputFileError(f"Video '{path}' not found: pass --data DIR holding videos/{name}")
        frames = []
        with FileSource(path) as src:
            while len(frames) < count and (f := src.read()) is not None:
                frames.append(f.image)
        out.append(frames)
    return out


def _stream_frames(videos: list[list[np.ndarray]], k: int, n: int) -> list[np.ndarray]:
    frames = videos[k % len(videos)]
    start = (k // len(videos)) * OFFSET % max(len(frames) - n, 1)
    return frames[start:start + n]


def _run_streams(make: Callable[[int], Callable[[np.ndarray, float], int]], streams: int,
                 frames: list[list[np.ndarray]], max_s: float) -> dict[str, Any]:
    """`streams` threads, thread k running `make(k)` (frame, t_s -> persons) over frames[k] until done or `max_s`."""
    lat: list[list[float]] = [[] for _ in range(streams)]
    poses = [0] * streams
    ended: list[str | None] = [None] * streams
    workers = [make(k) for k in range(streams)]
    deadline = time.perf_counter() + max_s

    def run(k: int) -> None:
        for i, frame in enumerate(frames[k]):
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            try:
                poses[k] += workers[k](frame, i / 25.0)
            except EdgePctError as e:
                ended[k] = str(e)
                return
            lat[k].append((time.perf_counter() - t0) * 1e3)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = np.concatenate([np.array(x) for x in lat]) if any(lat) else np.zeros(1)
    return {"streams": streams, "frames": int(sum(map(len, lat))), "poses": int(sum(poses)), "wall_s": wall,
            "poses_per_s": sum(poses) / wall, "frames_per_s": sum(map(len, lat)) / wall,
            "p50_ms": float(np.percentile(flat, 50)), "p99_ms": float(np.percentile(flat, 99)),
            "ended": [e for e in ended if e]}


def _stats_delta(conn: Any, models: tuple[str, ...], before: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
    after = {m: conn.batch_stats(m) for m in models}
    return {m: {b: c - before[m].get(b, 0) for b, c in sorted(after[m].items()) if c - before[m].get(b, 0)}
            for m in models}


def _in_process(url: str) -> Callable[[int], Callable[[np.ndarray, float], int]]:
    from edge_pct.api import PoseEstimator

    def make(k: int) -> Callable[[np.ndarray, float], int]:
        est = PoseEstimator(backend="onnxruntime", detector="onnx")
        return lambda frame, t: len(est(frame, t))

    return make


def _client(url: str) -> Callable[[int], Callable[[np.ndarray, float], int]]:
    from edge_pct.serve.client import remote_estimator

    def make(k: int) -> Callable[[np.ndarray, float], int]:
        est = remote_estimator(url)
        return lambda frame, t: len(est(frame, t))

    return make


def _frame(url: str) -> Callable[[int], Callable[[np.ndarray, float], int]]:
    from edge_pct.serve.client import TritonConnection, TritonFramePipeline

    def make(k: int) -> Callable[[np.ndarray, float], int]:
        pipe = TritonFramePipeline(TritonConnection(url))
        return lambda frame, t: len(pipe(frame)["joints"])

    return make


MODE_MODELS = {"client": ("pct_pose", "yolox_detector"), "frame": ("pose_pipeline",)}


def load_levels(url: str, videos: list[list[np.ndarray]], levels: list[int], n_frames: int, max_s: float,
                modes: list[str]) -> list[dict[str, Any]]:
    """One row per (mode, N): the cells of the module doc."""
    from edge_pct.serve.client import TritonConnection

    conn = TritonConnection(url)
    rows = []
    for n in levels:
        frames = [_stream_frames(videos, k, n_frames) for k in range(n)]
        for mode in modes:
            make = {"in-process": _in_process, "client": _client, "frame": _frame}[mode](url)
            models = MODE_MODELS.get(mode, ())
            before = {m: conn.batch_stats(m) for m in models}
            row = {"mode": mode, **_run_streams(make, n, frames, max_s)}
            row["server_batches"] = _stats_delta(conn, models, before) if models else {}
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


def _raw_request(conn: Any, model: str, name: str, x: np.ndarray, wire: str, output: str) -> None:
    """One request sent as given (`TritonConnection.infer` would refuse a wrong dtype before sending it)."""
    import tritonclient.grpc as grpc
    from tritonclient.utils import InferenceServerException

    from edge_pct.serve.client import ServerError

    item = grpc.InferInput(name, list(x.shape), wire)
    item.set_data_from_numpy(x)
    try:
        conn.client.infer(model, [item], outputs=[grpc.InferRequestedOutput(output)], client_timeout=conn.timeout_s)
    except InferenceServerException as e:
        raise ServerError(f"refused: {str(e).splitlines()[0][:200]}") from e


def faults(server: Any, videos: list[list[np.ndarray]], oversize: int) -> dict[str, Any]:
    """The fault checks of the module doc; the server is stopped (and restarted once) here."""
    from edge_pct.serve.client import ServerError, TritonConnection, TritonFramePipeline, remote_estimator

    conn = TritonConnection(server.url)
    whole = TritonFramePipeline(conn)
    frame = videos[0][0]
    res: dict[str, Any] = {}
    probes = {
        "malformed shape": lambda: conn.infer("pct_pose", {"images": np.zeros((2, 3, 64, 64), np.float32)}, ["joints"]),
        "malformed dtype": lambda: _raw_request(conn, "pose_pipeline", "frame", np.zeros((1, 64, 64, 3), np.float32),
                                                "FP32", "count"),
        f"oversized frame {oversize}x{oversize}": lambda: whole(np.zeros((oversize, oversize, 3), np.uint8)),
    }
    for name, probe in probes.items():
        t0 = time.perf_counter()
        try:
            probe()
            answer = "accepted (!)"
        except ServerError as e:
            answer = str(e)
        res[name] = {"answer": answer, "ms": (time.perf_counter() - t0) * 1e3,
                     "server_still_serving": len(whole(frame)["joints"]) >= 1}
    # The server stopped mid-stream: one client without reconnect, one with; both loop the clip until the restarted
    # server has answered the reconnecting one for FRAMES_AFTER_RESTART frames (or MAX_FAULT_FRAMES in all).
    out: dict[str, dict[str, Any]] = {"plain": {}, "reconnect_s=60": {}}
    restarted = threading.Event()

    def run(name: str, reconnect: float) -> None:
        est, done, after = remote_estimator(server.url, reconnect_s=reconnect), 0, 0
        clip = videos[1]
        try:
            while done < MAX_FAULT_FRAMES and after < FRAMES_AFTER_RESTART:
                est(clip[done % len(clip)], done / 25.0)
                done += 1
                after += restarted.is_set()
            out[name]["ended"] = f"carried on: {after} frames after the restart"
        except EdgePctError as e:
            out[name]["ended"] = str(e)
        out[name]["frames"] = done

    threads = [threading.Thread(target=run, args=a) for a in (("plain", 0.0), ("reconnect_s=60", 60.0))]
    for t in threads:
        t.start()
    time.sleep(3.0)
    t_stop = time.perf_counter()
    res["stop_exit_code"] = server.stop()
    res["stop_s"] = time.perf_counter() - t_stop
    time.sleep(1.0)
    t_start = time.perf_counter()
    server.start()
    res["restart_s"] = time.perf_counter() - t_start
    restarted.set()
    for t in threads:
        t.join()
    res["stopped mid-stream"] = out
    return res


def _format_row(r: dict[str, Any]) -> str:
    batches = "; ".join(f"{m}: " + " ".join(f"{b}x{c}" for b, c in h.items()) for m, h in r["server_batches"].items())
    return (f"| {r['mode']:<10} | {r['streams']:>2} | {r['frames']:>5} | {r['poses_per_s']:>7.1f} | "
            f"{r['frames_per_s']:>6.1f} | {r['p50_ms']:>7.1f} | {r['p99_ms']:>7.1f} | {batches or '-'} |")


HEADER = ("| mode       |  N | frames | poses/s | frames/s | p50 ms | p99 ms | server batches (size x executions) |\n"
          "|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16], help="concurrent streams per cell")
    ap.add_argument("--frames", type=int, default=40, help="frames per stream (default: 40)")
    ap.add_argument("--max-seconds", type=float, default=90.0, help="time limit of one cell (default: 90)")
    ap.add_argument("--modes", nargs="+", default=["in-process", "client", "frame"],
                    choices=["in-process", "client", "frame"])
    ap.add_argument("--oversize", type=int, default=6000, help="side of the oversized fault frame (default: 6000)")
    ap.add_argument("--repo", type=Path, help="model repository (default: written to a temporary folder)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    add_data_arg(ap)
    a = ap.parse_args(argv)
    return run_reporting_errors(lambda: _main(a), "serve_load")


def _main(a: argparse.Namespace) -> int:
    from edge_pct.serve.environment import ServerProcess, check_serve_python
    from edge_pct.serve.triton_repo import write_triton_repo

    serve = check_serve_python()
    videos = _decode(data_dir(), a.frames + OFFSET * max(a.streams))
    with tempfile.TemporaryDirectory() as tmp:
        repo = a.repo or Path(tmp) / "repo"
        if a.repo is None:
            write_triton_repo(repo)
        ports = {"grpc": _free_port(), "http": _free_port(), "metrics": _free_port()}
        server = ServerProcess(repo, serve, "127.0.0.1", ports, log_path=Path(tmp) / "server.log")
        t0 = time.perf_counter()
        server.start()
        startup = time.perf_counter() - t0
        try:
            print(f"server ready in {startup:.1f} s at {server.url}\n\n{HEADER}", flush=True)
            rows = load_levels(server.url, videos, a.streams, a.frames, a.max_seconds, a.modes)
            fault = faults(server, videos, a.oversize)
        finally:
            code = server.stop()
    res = {"startup_s": startup, "rows": rows, "faults": fault, "final_stop_exit_code": code}
    print("\nfaults:\n" + json.dumps(fault, indent=2))
    if a.json:
        write_text_atomic(a.json, json.dumps(res, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
