"""Video sources: a synthetic MJPG file for FileSource, a fake capture for LiveSource (no camera needed)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_pct.core.errors import InputFileError, SourceError
from edge_pct.stream.sources import CLOSE_JOIN_TIMEOUT_S, FileSource, LiveSource, open_source

N_FRAMES, WIDTH, HEIGHT, FPS = 12, 64, 48, 25.0


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of 64x48, frame i a uniform gray level of 20 * i."""
    path = tmp_path_factory.mktemp("video") / "gray.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(N_FRAMES):
        writer.write(np.full((HEIGHT, WIDTH, 3), 20 * i, np.uint8))
    writer.release()
    return path


class FakeCapture:
    """cv2.VideoCapture stand-in: `good` frames, one per `period_s`, then failed reads or a blocking read."""

    def __init__(
        self, spec: int | str = 0, good: int = 10**6, period_s: float = 0.002, then: str = "fail", opened: bool = True
    ) -> None:
        self.spec, self.good, self.period_s, self.then, self.opened = spec, good, period_s, then, opened
        self.count = 0
        self.released = threading.Event()
        self.unblock = threading.Event()

    def isOpened(self) -> bool:  # noqa: N802 - the cv2 name
        return self.opened

    def get(self, prop: int) -> float:
        return 0.0  # cameras often report nothing; the source falls back to 30 fps

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.count >= self.good:
            if self.then == "block":
                self.unblock.wait(10.0)
            else:
                time.sleep(0.001)
            return False, None
        time.sleep(self.period_s)
        self.count += 1
        return True, np.full((24, 32, 3), self.count % 256, np.uint8)

    def release(self) -> None:
        self.released.set()


def test_file_source_reads_every_frame_in_order(video: Path) -> None:
    with FileSource(video) as source:
        assert source.fps == pytest.approx(FPS)
        assert source.size == (WIDTH, HEIGHT)
        assert source.frame_count == N_FRAMES
        assert not source.live
        frames = list(source)
        assert source.read() is None
        assert source.frames_dropped == 0
    assert [f.index for f in frames] == list(range(N_FRAMES))
    assert [f.timestamp_ms for f in frames] == pytest.approx([i / FPS * 1000 for i in range(N_FRAMES)])
    for i, frame in enumerate(frames):
        assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
        assert abs(frame.image.mean() - 20 * i) < 6  # MJPG is lossy


def test_file_source_missing_or_corrupt_raises_input_file_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="nope.mp4"):
        FileSource(tmp_path / "nope.mp4")
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputFileError, match="corrupt.avi"):
        FileSource(corrupt)
    with pytest.raises(InputFileError, match="missing.avi"):
        open_source(tmp_path / "missing.avi")


def test_open_source_dispatch(video: Path) -> None:
    made: list[FakeCapture] = []

    def factory(spec: int | str) -> FakeCapture:
        made.append(FakeCapture(spec))
        return made[-1]

    with open_source(str(video)) as source:
        assert isinstance(source, FileSource)
    with open_source("0", capture_factory=factory) as source:
        assert isinstance(source, LiveSource) and source.live
        assert source.fps == 30.0 and source.size == (32, 24)
    with open_source("rtsp://cam.local/stream", capture_factory=factory) as source:
        assert isinstance(source, LiveSource)
    assert [c.spec for c in made] == [0, "rtsp://cam.local/stream"]


def test_live_source_that_cannot_open_raises_source_error() -> None:
    with pytest.raises(SourceError, match="camera 3.*v4l2-ctl"):
        LiveSource(3, capture_factory=lambda spec: FakeCapture(spec, opened=False))


def test_live_source_returns_newest_frame_and_counts_drops() -> None:
    capture = FakeCapture()
    source = LiveSource(0, capture_factory=lambda spec: capture, stall_timeout_s=2.0)
    indices = []
    for _ in range(4):
        frame = source.read()
        assert frame is not None and frame.image.shape == (24, 32, 3)
        indices.append(frame.index)
        time.sleep(0.05)  # a slow consumer: the reader grabs several frames meanwhile
    assert indices == sorted(set(indices))
    assert indices[-1] - indices[0] > 3 and source.frames_dropped > 0
    start = time.monotonic()
    source.close()
    assert time.monotonic() - start < CLOSE_JOIN_TIMEOUT_S + 0.5
    assert source.read() is None
    assert capture.released.wait(1.0)


def test_live_source_raises_when_reads_fail() -> None:
    source = LiveSource(0, capture_factory=lambda spec: FakeCapture(spec, good=5), stall_timeout_s=0.5)
    start = time.monotonic()
    with pytest.raises(SourceError, match="camera 0 stopped delivering frames"):
        for _ in range(100):
            source.read()
    assert time.monotonic() - start < 2.0
    source.close()


def test_live_source_raises_on_stall_and_closes_promptly() -> None:
    capture = FakeCapture(good=3, then="block")
    try:
        source = LiveSource("rtsp://cam.local/stream", capture_factory=lambda spec: capture, stall_timeout_s=0.5)
        start = time.monotonic()
        with pytest.raises(SourceError, match="stopped delivering frames"):
            for _ in range(100):
                source.read()
        assert time.monotonic() - start < 2.0
        start = time.monotonic()
        source.close()  # the reader is stuck inside read(): close gives up after the bounded join
        assert time.monotonic() - start < CLOSE_JOIN_TIMEOUT_S + 0.5
    finally:
        capture.unblock.set()
    assert capture.released.wait(2.0)  # released by the reader thread once its read returns
