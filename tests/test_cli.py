"""The command line: --help everywhere, lazy heavy imports, and one-line exit-2 errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_pct.cli import build_parser, main

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_every_command_has_help(capsys):
    assert {"train-tokenizer", "eval-tokenizer"} <= set(COMMANDS)
    for cmd in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "--json" in capsys.readouterr().out


def test_import_and_help_load_no_heavy_extras():
    code = (
        "import sys, edge_pct, edge_pct.cli\n"
        "from edge_pct.cli import build_parser; build_parser().format_help()\n"
        "heavy = [m for m in ('tensorrt', 'PyQt6', 'mediapipe', 'onnxruntime', 'torch') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def _tiny_checkpoint(tmp_path, kind="tokenizer"):
    from conftest import tiny_tokenizer_config
    from edge_pct.models.tokenizer import PoseTokenizer
    from edge_pct.train.checkpoint import save_checkpoint

    cfg = tiny_tokenizer_config()
    return save_checkpoint(tmp_path / f"{kind}.pt", kind, cfg, PoseTokenizer(cfg))


def _tiny_coco(tmp_path):
    kp = np.zeros((17, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = np.linspace(10, 50, 17), np.linspace(10, 90, 17), 2
    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 40, 80], "area": 1600.0,
           "num_keypoints": 17, "keypoints": kp.ravel().tolist()}
    data = {"images": [{"id": 1, "width": 100, "height": 100}], "annotations": [ann],
            "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_bad_inputs_give_one_line_and_exit_2(tmp_path, capsys):
    ann = _tiny_coco(tmp_path)
    ckpt = _tiny_checkpoint(tmp_path)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    other = _tiny_checkpoint(tmp_path, kind="classifier")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{oops")
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK\x03\x04garbage")
    cases = [
        (["eval-tokenizer", "--checkpoint", str(tmp_path / "nope.pt"), "--coco-ann", str(ann)], "not found"),
        (["eval-tokenizer", "--checkpoint", str(corrupt), "--coco-ann", str(ann)], "corrupt"),
        (["eval-tokenizer", "--checkpoint", str(other), "--coco-ann", str(ann)], "expected 'tokenizer'"),
        (["eval-tokenizer", "--checkpoint", str(ckpt), "--coco-ann", str(tmp_path / "no.json")], "not found"),
        (["eval-tokenizer", "--checkpoint", str(ckpt), "--coco-ann", str(bad_json)], "not a COCO keypoints json"),
        (["eval-tokenizer", "--checkpoint", str(ckpt), "--coco-ann", str(ann), "--mask-ratio", "1.5"], "out of range"),
        (["train-tokenizer", "--poses", str(bad_npz), "--out", str(tmp_path / "run")], "not a readable poses"),
        (["train-tokenizer", "--poses", str(ann), "--out", str(tmp_path / "run"), "--set", "tokenizer.dimm=3"],
         "Unknown config key"),
    ]
    for argv, message in cases:
        code, err = _run(argv, capsys)
        assert code == 2, argv
        assert message in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_cli_subprocess_exit_code_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edge_pct.cli", "eval-tokenizer", "--checkpoint",
                           str(tmp_path / "missing.pt"), "--coco-ann", str(tmp_path / "a.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "not found" in proc.stderr


def test_train_then_eval_tokenizer_end_to_end(tmp_path, capsys):
    """A 3-iteration run on a tiny COCO file writes a resumable checkpoint and a final one that eval reads."""
    ann = _tiny_coco(tmp_path)
    out = tmp_path / "run"
    keys = ["tokenizer.codebook_size=16", "tokenizer.token_dim=16", "tokenizer.enc_dim=16", "tokenizer.enc_layers=1",
            "tokenizer.enc_channel_hidden=16", "tokenizer_train.batch_size=4", "tokenizer_train.epochs=3",
            "tokenizer_train.warmup_iters=1"]
    sets = [x for k in keys for x in ("--set", k)]
    train = ["train-tokenizer", "--poses", str(ann), "--out", str(out), *sets]
    assert main([*train, "--json", str(tmp_path / "t.json")]) == 0
    result = json.loads((tmp_path / "t.json").read_text())
    assert result["finished"] and result["iterations"] == 3 and np.isfinite(result["final_loss"])
    assert (out / "last.pt").exists() and (out / "tokenizer.pt").exists()
    # rerunning resumes from last.pt (already at the end: no new iterations, same final checkpoint)
    assert main(train) == 0
    assert main(["eval-tokenizer", "--checkpoint", str(out / "tokenizer.pt"), "--coco-ann", str(ann),
                 "--json", str(tmp_path / "e.json")]) == 0
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["persons"] == 1 and 0.0 <= ev["ap"] <= 1.0 and ev["codes_used"] >= 1
    # --init continues from trained weights in a new run directory (same config only)
    assert main([*train[:4], str(tmp_path / "run2"), *sets, "--init", str(out / "tokenizer.pt")]) == 0
    assert main([*train[:4], str(tmp_path / "run3"), *sets, "--set", "tokenizer.enc_layers=2",
                 "--init", str(out / "tokenizer.pt")]) == 2


def test_train_offers_every_model_variant():
    from edge_pct.models.factory import MODEL_VARIANTS

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    variant = next(a for a in train._actions if a.dest == "variant")
    assert sorted(variant.choices) == sorted(MODEL_VARIANTS)


@pytest.mark.parametrize("script, argv", [
    ("-m benchmarks.model_report", ["--model", "MISSING"]),
    ("-m benchmarks.int8_speed", ["--onnx", "MISSING", "--int8", "MISSING"]),
    ("-m benchmarks.int8_speed", ["--calib", "MISSING"]),
    ("-m benchmarks.int8_sensitivity", ["--onnx", "MISSING", "--calibration", "MISSING", "--json", "OUT"]),
    ("-m benchmarks.coco_crossval", ["--part", "MISSING", "MISSING", "--coco-images", "MISSING", "--json", "OUT"]),
    ("tools/coco_split.py", ["--ann", "MISSING", "--out", "OUT"]),
    ("tools/person_crops_json.py", ["--crops", "MISSING", "--out", "OUT"]),
])
def test_developer_scripts_report_bad_input_in_one_line(tmp_path, script, argv):
    """The developer tools in benchmarks/ and tools/ share the CLI's error handling: one line, exit 2, no
    traceback, nothing written."""
    subs = {"MISSING": str(tmp_path / "missing.file"), "OUT": str(tmp_path / "out")}
    proc = subprocess.run([sys.executable, *script.split(), *[subs.get(a, a) for a in argv]],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    name = script.split(".")[-1] + ".py" if script.startswith("-m") else Path(script).name
    assert err.startswith(f"{name}: error:") and "missing.file" in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_coco_split_tool_writes_image_disjoint_parts_that_cover_the_set(tmp_path):
    """tools/coco_split.py: every image in exactly one part, each annotation with its image, categories kept;
    the same seed gives the same split."""
    data = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(7)],
            "annotations": [{"id": 100 + k, "image_id": k % 7} for k in range(12)],
            "categories": [{"id": 1, "name": "person"}]}
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    root = Path(__file__).parents[1]
    for out in ("a", "b"):
        proc = subprocess.run([sys.executable, "tools/coco_split.py", "--ann", str(ann), "--out", str(tmp_path / out)],
                              capture_output=True, text=True, cwd=root)
        assert proc.returncode == 0, proc.stderr
    parts = [json.loads((tmp_path / "a" / f"part{p}.json").read_text()) for p in (0, 1)]
    images = [{im["id"] for im in p["images"]} for p in parts]
    assert images[0].isdisjoint(images[1]) and images[0] | images[1] == set(range(7))
    assert sorted(len(s) for s in images) == [3, 4]
    for p, ids in zip(parts, images, strict=True):
        assert p["categories"] == data["categories"] and all(a["image_id"] in ids for a in p["annotations"])
    assert sum(len(p["annotations"]) for p in parts) == 12
    for name in ("part0.json", "part1.json"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
