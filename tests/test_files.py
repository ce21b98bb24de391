"""Atomic artifact writes: unique temporary names, so concurrent writers never trip over each other."""

from __future__ import annotations

import threading

import pytest

from edge_pct.core.files import atomic_output, write_atomic, write_text_atomic


def test_concurrent_writers_of_one_file_never_fail_or_leave_temp_files(tmp_path):
    target, errors = tmp_path / "model.json", []

    def writer(text: str) -> None:
        try:
            for _ in range(60):
                write_text_atomic(target, text)
        except OSError as e:  # with one shared temp name, a rename finds the other writer's file gone
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t * 1000,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and target.read_text() in ("a" * 1000, "b" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_a_failed_write_leaves_the_old_artifact_and_no_temp(tmp_path):
    target = tmp_path / "m.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    write_atomic([(tmp_path / "a.onnx", b"1"), (tmp_path / "sub" / "a.json", b"2")])
    assert (tmp_path / "sub" / "a.json").read_bytes() == b"2"


def test_an_artifact_gets_the_mode_of_any_new_file(tmp_path):
    import os

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomic(tmp_path / "artifact.txt", "x")
    assert os.stat(tmp_path / "artifact.txt").st_mode == os.stat(plain).st_mode  # not mkstemp's 0600
