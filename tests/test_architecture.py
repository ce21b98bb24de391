"""The house rules of the package, checked on its source: imports run one way (no cycle, not even through an import
inside a function), no module reaches into another's `_private` names, and no docstring or comment points at a file
outside the repository."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The import namespace `edge_pct` is four folders (pyproject.toml [tool.setuptools] package-dir).
FOLDERS = {"edge_pct": ROOT / "edge_pct", "edge_pct.engines": ROOT / "engines",
           "edge_pct.calibration": ROOT / "calibration", "edge_pct.app": ROOT / "app"}


def package_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the installed namespace."""
    mods = {}
    for prefix, folder in FOLDERS.items():
        for f in folder.rglob("*.py"):
            if prefix == "edge_pct" and f.relative_to(folder).parts[0] in ("engines", "calibration", "app"):
                continue
            parts = list(f.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([prefix, *parts])] = f
    return mods


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every `import`/`from` of the package in `path`, function bodies included.
    `from pkg import sub` counts as importing the submodule `pkg.sub`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("edge_pct")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edge_pct"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.append((sub, []) if sub in modules else (node.module, [a.name]))
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (a package's own __init__ is not an edge: importing
    `edge_pct.core.errors` runs `edge_pct/__init__.py`, which imports nothing of the package)."""
    modules = package_modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m, _ in imports_of(path, modules) if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None (depth-first search, colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert len(graph) > 60  # the walk found the package
    assert find_cycle(graph) is None


def test_no_module_imports_another_modules_private_names():
    modules = package_modules()
    scripts = [*modules.values(), *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "tools").glob("*.py")]
    offenders = [f"{path.relative_to(ROOT)}: {mod}.{n}" for path in scripts for mod, names in imports_of(path, modules)
                 for n in (names or [mod.rsplit(".", 1)[-1]]) if n.startswith("_") and not n.startswith("__")]
    assert offenders == []


def test_core_imports_nothing_above_it():
    graph = import_graph()
    upward = {f"{a} -> {b}" for a, deps in graph.items() if a.startswith("edge_pct.core")
              for b in deps if not b.startswith("edge_pct.core")}
    assert upward == set()


def test_code_points_at_no_document_outside_the_repository():
    files = [*package_modules().values(), *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "tools").glob("*.py")]
    outside = ("PCT-NOTES", "DESIGN.md", "STYLE.md", "DEPS.md", "shared/layout")
    hits = [f"{f.relative_to(ROOT)}:{i}" for f in files for i, line in enumerate(f.read_text().splitlines(), 1)
            if any(o in line for o in outside)]
    assert hits == []


def test_benchmarks_share_helpers_through_common_and_take_their_data_folder():
    bench = sorted((ROOT / "benchmarks").glob("*.py"))
    names = {f.stem for f in bench}
    for f in bench:
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")
                assert top[0] not in names, f"{f.name} imports the script {node.module} (use benchmarks.common)"
                if top[0] == "benchmarks":
                    assert top[1:] == ["common"], f"{f.name} imports {node.module}"
        if f.stem != "common":
            code = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == "shared"]
            assert code == [], f"{f.name} spells the data folder itself (use benchmarks.common.data_dir)"
