"""README.md and .ci/run agree: CI installs and tests exactly as a new user does."""

from __future__ import annotations

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
