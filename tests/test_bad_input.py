"""Bad input across the subcommands, table-driven: each case exits 2 with one stderr line, no traceback, and
leaves nothing behind; SIGTERM and SIGINT end a running bench cleanly (exit 130, no temporary files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_pct.cli import main

EMPTY_COCO = {"images": [], "annotations": [], "categories": []}

# (case id, argv with {tmp} for the test's folder, a word the message must contain)
CASES = [
    ("bench video missing", ["bench", "--video", "{tmp}/none.avi"], "not found"),
    ("bench --frames 0", ["bench", "--video", "{tmp}/v.avi", "--frames", "0"], "--frames"),
    ("bench --frames -5", ["bench", "--video", "{tmp}/v.avi", "--frames", "-5"], "--frames"),
    ("bench --threads -2", ["bench", "--video", "{tmp}/v.avi", "--threads", "-2"], "--threads"),
    ("bench --max-persons 0", ["bench", "--video", "{tmp}/v.avi", "--max-persons", "0"], "--max-persons"),
    ("bench detect_every", ["bench", "--video", "{tmp}/v.avi", "--set", "stream.detect_every=-1"], "detect_every"),
    ("bench padding", ["bench", "--video", "{tmp}/v.avi", "--set", "stream.padding=0"], "padding"),
    ("bench pose budget", ["bench", "--video", "{tmp}/v.avi", "--set", "stream.pose_budget_ms=-1"], "pose_budget"),
    ("bench --json a folder", ["bench", "--video", "{tmp}/v.avi", "--json", "{tmp}"], "folder"),
    ("bench --save under a file", ["bench", "--video", "{tmp}/v.avi", "--save", "{tmp}/v.avi/o.mp4"], "not a folder"),
    ("bench corrupt model", ["bench", "--video", "{tmp}/v.avi", "--model", "{tmp}/text.pt"], "corrupt"),
    ("conflicting overrides", ["bench", "--video", "{tmp}/v.avi", "--set", "a.b=1", "--set", "a.b.c=2"], "earlier"),
    ("export empty checkpoint", ["export", "--checkpoint", "{tmp}/empty.pt", "--out", "{tmp}/m.onnx"], "corrupt"),
    ("export text checkpoint", ["export", "--checkpoint", "{tmp}/text.pt", "--out", "{tmp}/m.onnx"], "corrupt"),
    ("export --out under a file", ["export", "--checkpoint", "{tmp}/text.pt", "--out", "{tmp}/v.avi/m.onnx"],
     "not a folder"),
    ("export --opset 0", ["export", "--checkpoint", "{tmp}/text.pt", "--out", "{tmp}/m.onnx", "--opset", "0"],
     "--opset"),
    ("eval coco without persons", ["eval", "--coco-ann", "{tmp}/empty.json", "--images", "{tmp}"], "no person"),
    ("eval-tokenizer without persons", ["eval-tokenizer", "--coco-ann", "{tmp}/empty.json"], "no person"),
    ("train-tokenizer --epochs 0", ["train-tokenizer", "--poses", "{tmp}/empty.json", "--out", "{tmp}/run",
                                    "--epochs", "0"], "--epochs"),
    ("train batch 0", ["train", "--out", "{tmp}/run", "--set", "train.batch_size=0"], "batch_size"),
    ("train workers -1", ["train", "--out", "{tmp}/run", "--set", "train.workers=-1"], "workers"),
    ("train checkpoint_every 0", ["train", "--out", "{tmp}/run", "--set", "train.checkpoint_every=0"],
     "checkpoint_every"),
    ("train epochs -1", ["train", "--out", "{tmp}/run", "--set", "train.epochs=-1"], "epochs"),
    ("train out is a file", ["train", "--out", "{tmp}/v.avi"], "is a file"),
    ("calibrate out is a file", ["calibrate", "--onnx", "{tmp}/m.onnx", "--images", "{tmp}", "--out", "{tmp}/v.avi"],
     "is a file"),
    ("build --max-batch 0", ["build", "--onnx", "{tmp}/m.onnx", "--precision", "fp16", "--max-batch", "0"],
     "--max-batch"),
]


def _write_video(path: Path, frames: int = 4) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        img = np.zeros((48, 64, 3), np.uint8)
        cv2.rectangle(img, (20 + i % 10, 10), (40 + i % 10, 40), (255, 255, 255), -1)
        writer.write(img)
    writer.release()


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    _write_video(tmp_path / "v.avi")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    (tmp_path / "empty.json").write_text(json.dumps(EMPTY_COCO))
    return tmp_path


@pytest.mark.parametrize("case, argv, word", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, argv, word, inputs, capsys):
    before = sorted(p.relative_to(inputs) for p in inputs.rglob("*"))
    code = main([a.replace("{tmp}", str(inputs)) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, case
    assert len(err) == 1 and "Traceback" not in err[0] and word in err[0], err
    assert sorted(p.relative_to(inputs) for p in inputs.rglob("*")) == before  # no run folder, no temp file


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_a_running_bench_cleanly(sig, tmp_path):
    """`docker stop` / systemd send SIGTERM: bench ends like Ctrl-C, exit 130, and the overlay video it was writing
    (a temporary name until complete) is gone."""
    from test_export import tiny_checkpoint

    video = tmp_path / "long.avi"
    _write_video(video, frames=3000)
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "edge_pct.cli", "bench", "--video", str(video), "--model", str(ckpt), "--backend",
           "torch", "--detector", "track", "--save", str(out / "overlay.avi"), "--json", str(out / "res.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    deadline = time.monotonic() + 60
    while not list(out.glob(".*tmp*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)  # wait until the overlay is being written
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    assert list(out.iterdir()) == []
