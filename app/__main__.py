"""`python -m edge_pct.app [app options]`: the same as `edge-pct app`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from edge_pct.cli import main as cli_main

    return cli_main(["app", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
