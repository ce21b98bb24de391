"""Output for people and for machines: progress bars on a terminal, a short summary table at the end, JSON on request.

Every command's result is a dict. `emit_result` prints a few of its fields as an aligned table (stdout), and writes
the whole dict as JSON to `--json FILE` (atomically) or to stdout with `--json -` (then no table, so the stream
parses). Progress bars (tqdm) go to stderr and only when stderr is a terminal, so logs and pipes stay clean.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

Row = tuple[str, Any]


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it") -> Any:
    """A tqdm progress bar (rate and ETA) on stderr when it is a terminal; a silent pass-through otherwise."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not sys.stderr.isatty(), leave=False,
                dynamic_ncols=True)


def format_value(value: Any) -> str:
    """Numbers to 3 decimals below 10, 1 decimal above (with thousands separators), the rest as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}" if 0 < abs(value) < 0.01 else f"{value:.3f}"
    return str(value)


def format_table(rows: Sequence[Row], title: str = "") -> str:
    """Aligned columns: label, then one value or a list of them (e.g. ours beside the peer's)."""
    cells = [(label, [format_value(v) for v in (value if isinstance(value, (list, tuple)) else [value])])
             for label, value in rows]
    label_w = max((len(label) for label, _ in cells), default=0)
    ncols = max((len(texts) for _, texts in cells), default=1)
    widths = [max((len(texts[i]) for _, texts in cells if i < len(texts)), default=0) for i in range(ncols)]
    lines = [title] if title else []
    for label, texts in cells:
        padded = [t.ljust(w) for t, w in zip(texts, widths, strict=False)]
        lines.append(("  " + label.ljust(label_w) + "  " + "  ".join(padded)).rstrip())
    return "\n".join(lines)


def emit_result(payload: dict[str, Any], json_path: str | None, rows: Sequence[Row], title: str) -> None:
    """The end of a command: the summary table (unless `--json -`), the JSON where asked."""
    text = json.dumps(payload, indent=2)
    if json_path == "-":
        print(text)
        return
    print(format_table(rows, title))
    if json_path:
        from edge_pct.core.files import write_text_atomic

        write_text_atomic(json_path, text + "\n")
        print(f"  (all fields: {json_path})")


def scalar_rows(payload: dict[str, Any], keys: Sequence[str]) -> list[Row]:
    """(key, value) for the listed keys that the payload has, in that order."""
    return [(k.replace("_", " "), payload[k]) for k in keys if k in payload and payload[k] is not None]
