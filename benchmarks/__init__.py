"""Measurements of edge-pct, run from the repository root as `python -m benchmarks.NAME --help`.

Speed belongs here, never in the tests. Each script says the command that produced a figure in docs/results.md.
"""
