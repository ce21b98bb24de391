"""Run a training recipe of `configs/recipes/`: the chain of `edge-pct` runs that produced a shipped model.

    python tools/recipe.py configs/recipes/pct_lite.toml --out runs/recipe_pct_lite [--dry-run] [--until NAME]

A recipe is a TOML list of `[[stage]]` tables: `name`, `command` (an `edge-pct` subcommand and its arguments),
`init` (the earlier stage whose model this one starts from, "" for none), `set` (config overrides) and `note`
(what the stage did, how long it took). Stage NAME runs with `--out OUT/NAME`; a stage whose final model exists is
skipped, and an interrupted one resumes from its `last.pt`, so rerunning the same command continues the chain.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from edge_pct.config import tomllib
from edge_pct.core.errors import ConfigError, InputFileError, run_reporting_errors

FINAL = {"train": "model.pt", "train-tokenizer": "tokenizer.pt"}


def read_recipe(path: str | Path) -> list[dict]:
    """The stages of a recipe file, checked: unique names, known commands, `init` naming an earlier stage."""
    p = Path(path)
    try:
        stages = tomllib.loads(p.read_text())["stage"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError) as e:
        raise InputFileError(f"'{p}' is not a recipe ({type(e).__name__}: {e}): pass a file of configs/recipes/") from e
    seen: set[str] = set()
    for s in stages:
        sub = shlex.split(s.get("command", ""))[:1]
        if sub and sub[0] not in FINAL:
            raise ConfigError(f"{p}: stage '{s.get('name')}' runs '{sub[0]}'; a recipe runs {sorted(FINAL)}")
        if s.get("init") and s["init"] not in seen:
            raise ConfigError(f"{p}: stage '{s.get('name')}' starts from '{s['init']}', which is not an earlier stage")
        if not s.get("name") or s["name"] in seen:
            raise ConfigError(f"{p}: every stage needs a unique name ('{s.get('name')}')")
        seen.add(s["name"])
    return stages


def stage_argv(stage: dict, out: Path, stages: list[dict]) -> list[str]:
    """The `edge-pct` argument list of one stage, with its run folder and the model of its `init` stage."""
    argv = [*shlex.split(stage["command"]), "--out", str(out / stage["name"])]
    if stage.get("init"):
        parent = next(s for s in stages if s["name"] == stage["init"])
        argv += ["--init", str(out / parent["name"] / FINAL[shlex.split(parent["command"])[0]])]
    for item in stage.get("set", []):
        argv += ["--set", item]
    return argv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recipe", help="a recipe file, e.g. configs/recipes/pct_lite.toml")
    ap.add_argument("--out", required=True, help="folder for the stages' run folders")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    ap.add_argument("--until", metavar="NAME", help="stop after this stage")
    args = ap.parse_args(argv)
    stages, out = read_recipe(args.recipe), Path(args.out)
    for stage in stages:
        cmd = ["edge-pct", *stage_argv(stage, out, stages)]
        done = (out / stage["name"] / FINAL[cmd[1]]).is_file()
        print(("# done: " if done else "") + shlex.join(cmd) + (f"  # {stage['note']}" if stage.get("note") else ""))
        if not done and not args.dry_run and subprocess.run(cmd).returncode != 0:
            raise ConfigError(f"stage '{stage['name']}' failed; rerun the same command to resume it")
        if stage["name"] == args.until:
            break
    return 0


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "recipe.py"))
