"""A live stream that dies mid-run: the headless app retries a bounded number of times, then ends with one line
and exit code 2 instead of hanging (the window keeps retrying; tests/test_app.py covers its reconnect message)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("PyQt6", reason="the app needs the app extra (PyQt6)")

# Serves one file over HTTP on 127.0.0.1, slowly (so the app is mid-stream when the server is killed).
SLOW_SERVER = """
import http.server, sys, time
path, port = sys.argv[1], int(sys.argv[2])
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "video/x-msvideo")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(0, len(data), 16384):
            self.wfile.write(data[i:i + 16384])
            time.sleep(0.05)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Slow).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_headless_app_ends_with_exit_2_when_its_stream_dies(tmp_path: Path):
    from test_bad_input import _write_video
    from test_export import tiny_checkpoint

    video = tmp_path / "v.avi"
    _write_video(video, frames=2000)
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(video), str(port)])
    try:
        time.sleep(1.0)
        app = subprocess.Popen(
            [sys.executable, "-m", "edge_pct.cli", "app", "--source", f"http://127.0.0.1:{port}/v.avi", "--model",
             str(ckpt), "--backend", "torch", "--detector", "track", "--exit-after", "100000", "--retries", "2",
             "--settings", str(tmp_path / "app.ini")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        time.sleep(8.0)  # the app is up and reading
        assert app.poll() is None, app.communicate()
        server.kill()
        _, err = app.communicate(timeout=60)  # bounded: stall timeout + retries of 1 and 2 s
    finally:
        server.kill()
    lines = [ln for ln in err.strip().splitlines() if "error:" in ln]
    assert app.returncode == 2 and len(lines) == 1 and "Gave up after 2 reconnect attempts" in lines[0], err
