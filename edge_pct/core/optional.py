"""Lazy import of optional heavy dependencies, so `import edge_pct` works on a bare CPU install."""

from __future__ import annotations

import importlib
from types import ModuleType

from edge_pct.core.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import `module` or raise a MissingDependencyError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(f"'{module}' is not installed: pip install 'edge-pct[{extra}]'") from e
