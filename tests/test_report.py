"""Output for people and machines: the summary table, --json FILE / -, and progress bars only on a terminal."""

from __future__ import annotations

import io
import json
import sys

from edge_pct.core.report import emit_result, format_table, format_value, progress, scalar_rows


def test_values_and_columns_line_up():
    assert [format_value(v) for v in (12345, 0.26449, 15.234, 0.0012, True, None, "x")] == [
        "12,345", "0.264", "15.2", "0.0012", "True", "None", "x"]
    table = format_table([("FPS", [15.2, 16.9]), ("persons / frame", [4.79, 2.28])], title="bench")
    lines = table.splitlines()
    assert lines[0] == "bench" and lines[1].index("15.2") == lines[2].index("4.790")
    assert lines[1].index("16.9") == lines[2].index("2.280")


def test_emit_result_prints_a_table_and_writes_json_where_asked(tmp_path, capsys):
    payload = {"ap": 0.25, "persons": 400, "extra": {"nested": [1, 2]}}
    rows = scalar_rows(payload, ("ap", "persons", "missing"))
    assert rows == [("ap", 0.25), ("persons", 400)]
    emit_result(payload, str(tmp_path / "r.json"), rows, "edge-pct eval")
    out = capsys.readouterr().out
    assert out.startswith("edge-pct eval\n") and "0.250" in out and "r.json" in out
    assert json.loads((tmp_path / "r.json").read_text()) == payload
    emit_result(payload, "-", rows, "edge-pct eval")
    assert json.loads(capsys.readouterr().out) == payload  # `--json -`: only the JSON, so a pipe parses it
    emit_result(payload, None, rows, "edge-pct eval")
    assert "{" not in capsys.readouterr().out


def test_progress_shows_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert list(progress(range(3), desc="x")) == [0, 1, 2] and sys.stderr.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", Tty())
    bar = progress(range(3), desc="bench", unit="frame")
    assert not bar.disable and list(bar) == [0, 1, 2]
    assert "bench" in sys.stderr.getvalue() and "frame" in sys.stderr.getvalue()
