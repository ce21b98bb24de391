"""The EdgePctError tree: every error a user can fix, turned by the CLI into one stderr line and exit code 2."""

from __future__ import annotations


class EdgePctError(Exception):
    """A problem with the user's input or environment; the message names the problem and the fix."""


class ConfigError(EdgePctError):
    """An unknown config key, a value of the wrong type, or an unreadable TOML file."""


class InputFileError(EdgePctError):
    """A missing, unreadable or corrupt input file (checkpoint, annotations, poses, video, model)."""


class MissingDependencyError(EdgePctError):
    """An optional extra (onnxruntime, tensorrt, PyQt6, mediapipe) is not installed."""


class SourceError(EdgePctError):
    """A camera or stream that cannot be opened, or that stopped delivering frames."""
