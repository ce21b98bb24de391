"""README.md and .ci/run agree: CI installs and tests exactly as a new user does."""

from __future__ import annotations

import re

from conftest import REPO


def test_ci_runs_the_readme_commands():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    ci_lines = [ln for ln in ci if ln.startswith(("python3 -m venv", ". .venv"))]
    assert len(ci_lines) == 2
    install, test = ci_lines
    assert test in readme
    assert any(line.startswith(install) for line in readme.splitlines()), install
    for pkg in ("libegl1", "libxkbcommon0", "fonts-dejavu-core"):
        assert pkg in readme


def test_readme_is_a_short_front_door_whose_links_resolve():
    readme = REPO / "README.md"
    assert readme.stat().st_size <= 10_000
    for page in [readme, *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_and_docs_point_at_no_team_notes():
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        text = page.read_text()
        for note in ("shared/DESIGN", "PCT-NOTES", "shared/STYLE", "shared/DEPS", "dev machines"):
            assert note not in text, f"{page.name} mentions {note}"
