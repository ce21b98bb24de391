"""The server's own Python: finding, checking and making the Python 3.12 environment PyTriton's server needs, and
starting the server in it.

Why a second environment: `nvidia-pytriton` 0.7.0 bundles a Triton server whose Python-backend stub is built for
Python 3.12; under another Python a bound model fails to load, and under 3.12 the stub needs `libpython3.12.so.1.0`
(a Python built with --enable-shared) on LD_LIBRARY_PATH. The server side needs only numpy, OpenCV, ONNX Runtime and
PyTriton (no torch), so the environment installs this package with --no-deps plus `SERVER_PACKAGES`, at setup time
only (`edge-pct serve --setup`); nothing is downloaded when serving.
Where: $EDGE_PCT_SERVE_VENV, else `.venv-serve` beside pyproject.toml in a source checkout, else in the user cache.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_pct.core.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

SERVE_VENV_ENV = "EDGE_PCT_SERVE_VENV"
PYTHON312_ENV = "EDGE_PCT_PYTHON312"
# The server environment's packages besides edge-pct itself (the `serve` extra of pyproject.toml, plus the core
# dependencies the server path imports; torch is not one of them).
SERVER_PACKAGES = ("nvidia-pytriton==0.7.0", "onnxruntime>=1.18", "tritonclient[grpc]>=2.40", "numpy>=1.24,<2.6",
                   "opencv-contrib-python>=4.8", "tomli-w>=1.0", "tqdm>=4.66")
SETUP_FIX = "run `edge-pct serve --setup`"
_PROBE = ("import json, sys, sysconfig, importlib.util as u; d = sysconfig.get_config_var('LIBDIR') or ''; "
          "print(json.dumps({'version': list(sys.version_info[:2]), 'shared': bool(sysconfig.get_config_var("
          "'Py_ENABLE_SHARED')), 'libdir': d, 'pytriton': u.find_spec('pytriton') is not None, "
          "'edge_pct': u.find_spec('edge_pct') is not None, 'onnxruntime': u.find_spec('onnxruntime') is not None}))")
LIBPYTHON = "libpython3.12.so.1.0"


@dataclass(frozen=True)
class ServePython:
    """A checked server interpreter: `python` runs `edge_pct.serve.server` with `libdir` on LD_LIBRARY_PATH."""

    python: Path
    libdir: Path

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: os.environ) with libdir first on LD_LIBRARY_PATH."""
        env = dict(os.environ if base is None else base)
        env["LD_LIBRARY_PATH"] = os.pathsep.join([str(self.libdir), *filter(None, [env.get("LD_LIBRARY_PATH")])])
        return env


def source_root() -> Path | None:
    """The checkout holding this package (pyproject.toml beside edge_pct/), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "edge_pct").is_dir() else None


def default_venv() -> Path:
    """Where the server environment lives (module doc)."""
    if os.environ.get(SERVE_VENV_ENV):
        return Path(os.environ[SERVE_VENV_ENV])
    root = source_root()
    if root is not None:
        return root / ".venv-serve"
    from edge_pct.engines.model_files import cache_dir

    return cache_dir() / "venv-serve"


def _probe(python: Path) -> dict | None:
    try:
        out = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=30, check=True)
        return json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _has_libpython(info: dict) -> bool:
    return info["version"] == [3, 12] and info["shared"] and (Path(info["libdir"]) / LIBPYTHON).is_file()


def find_python312() -> Path | None:
    """A Python 3.12 built with a shared libpython: $EDGE_PCT_PYTHON312, python3.12 on PATH, pyenv's, /usr's."""
    candidates = [os.environ.get(PYTHON312_ENV), shutil.which("python3.12"),
                  *sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.12*/bin/python3.12")), reverse=True),
                  "/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    for c in filter(None, candidates):
        info = _probe(Path(c)) if Path(c).is_file() else None
        if info is not None and _has_libpython(info):
            return Path(c)
    return None


def check_serve_python(python: str | Path | None = None) -> ServePython:
    """The server interpreter (`python`, else the default environment's), checked; MissingDependencyError in one
    line naming the fix otherwise."""
    py = Path(python) if python is not None else default_venv() / "bin" / "python"
    info = _probe(py) if py.is_file() else None
    if info is None:
        raise MissingDependencyError(f"No server environment at '{py.parent.parent}' (PyTriton's server needs Python "
                                     f"3.12 with a shared libpython): {SETUP_FIX}")
    if not _has_libpython(info):
        v = ".".join(map(str, info["version"]))
        raise MissingDependencyError(f"'{py}' is Python {v} (shared libpython: {info['shared']}); PyTriton's server "
                                     f"needs 3.12 with {LIBPYTHON}: {SETUP_FIX} with such a Python (pyenv: "
                                     "PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.12)")
    missing = [m for m in ("pytriton", "edge_pct", "onnxruntime") if not info[m]]
    if missing:
        raise MissingDependencyError(f"'{py}' lacks {', '.join(missing)}: {SETUP_FIX}")
    return ServePython(py, Path(info["libdir"]))


def setup_serve_env(venv: str | Path | None = None, python: str | Path | None = None) -> dict:
    """Create (or complete) the server environment at `venv` (default: `default_venv()`) from `python` (default:
    `find_python312()`), installing this package (--no-deps, editable in a checkout) and SERVER_PACKAGES with pip.
    Returns venv, python, libdir. A failed first install removes the half-made folder."""
    base = Path(python) if python is not None else find_python312()
    if base is None:
        raise MissingDependencyError("No Python 3.12 with a shared libpython found (PyTriton's server needs one): "
                                     "install one (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.12) "
                                     f"or point ${PYTHON312_ENV} at it")
    venv = Path(venv) if venv is not None else default_venv()
    fresh = not (venv / "bin" / "python").is_file()
    root = source_root()
    from edge_pct.core.package import __version__

    this = ["-e", str(root)] if root is not None else [f"edge-pct=={__version__}"]
    try:
        if fresh:
            _run([str(base), "-m", "venv", str(venv)])
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        _run([*pip, "--no-deps", *this])
        _run([*pip, *SERVER_PACKAGES])
    except BaseException:
        if fresh:
            shutil.rmtree(venv, ignore_errors=True)
        raise
    checked = check_serve_python(venv / "bin" / "python")
    return {"venv": str(venv), "python": str(checked.python), "libdir": str(checked.libdir)}


def _run(cmd: Sequence[str]) -> None:
    log.info("%s", " ".join(cmd))
    res = subprocess.run(list(cmd), capture_output=True, text=True)
    if res.returncode:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise MissingDependencyError(f"`{' '.join(cmd)}` failed ({last}): fix that, then {SETUP_FIX} again")


def server_command(serve: ServePython, repo: str | Path, host: str, ports: dict[str, int],
                   threads: int | None = None) -> list[str]:
    """The argv that serves `repo` with `serve`'s interpreter."""
    cmd = [str(serve.python), "-m", "edge_pct.serve.server", "--repo", str(repo), "--host", host]
    for kind, port in ports.items():
        cmd += [f"--{kind}-port", str(port)]
    return cmd + (["--threads", str(threads)] if threads else [])


class ServerProcess:
    """`edge_pct.serve.server` in a child process: started, waited on until every model is ready, stopped.

    Args:
        repo: the model repository.
        serve: the checked interpreter (`check_serve_python()`).
        host, ports: where it binds (grpc, http, metrics).
        log_path: the server's stdout and stderr (default: `<repo>.serve.log` beside the repository).
        threads: ONNX Runtime threads per model.
    """

    def __init__(self, repo: str | Path, serve: ServePython, host: str = "127.0.0.1",
                 ports: dict[str, int] | None = None, log_path: str | Path | None = None,
                 threads: int | None = None) -> None:
        from edge_pct.serve.server import DEFAULT_PORTS

        self.repo, self.serve, self.host = Path(repo), serve, host
        self.ports = dict(ports or DEFAULT_PORTS)
        self.log_path = Path(log_path) if log_path else self.repo.with_name(self.repo.name + ".serve.log")
        self.threads = threads
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"grpc://{self.host}:{self.ports['grpc']}"

    def start(self, timeout_s: float = 120.0) -> ServerProcess:
        """Start the server and wait until it and its four models are ready; ConfigError with the log's last line
        when it exits or is not ready in `timeout_s`."""
        from edge_pct.serve.client import wait_until_ready

        cmd = server_command(self.serve, self.repo, self.host, self.ports, self.threads)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.serve.env(),
                                     cwd=str(self.repo.parent))
        try:
            wait_until_ready(self.url, timeout_s, alive=lambda: self.proc is not None and self.proc.poll() is None)
        except Exception as e:
            self.stop()
            raise ConfigError(f"The server did not start ({e}); last log line: {self.last_log_line()} (log: "
                              f"{self.log_path})") from e
        return self

    def last_log_line(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines() if self.log_path.is_file() else []
        return lines[-1] if lines else "(empty)"

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGINT (Triton stops cleanly), then SIGKILL after `timeout_s`; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            t0 = time.monotonic()
            while self.proc.poll() is None and time.monotonic() - t0 < timeout_s:
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
        code = self.proc.wait()
        self._log.close()
        self.proc = None
        return code

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_serve(repo: str | Path | None, model: str | Path | None, detector: str | Path | None, host: str,
              ports: dict[str, int], threads: int | None = None) -> int:
    """`edge-pct serve`: the repository (`repo`, else the cached one of `model` and `detector`, written in this
    environment, which needs onnx), then this process becomes the server in the server environment (exec: signals and
    the exit code are the server's). Returns only on an error."""
    if repo is None:
        from edge_pct.serve.triton_repo import default_repository

        try:
            repo = default_repository(model, detector)
        except MissingDependencyError as e:
            raise MissingDependencyError(f"{e}; or pass --repo DIR written by `edge-pct export --triton DIR`") from e
    elif not (Path(repo) / "pose_pipeline" / "config.pbtxt").is_file():
        raise ConfigError(f"'{repo}' is not a model repository: write one with `edge-pct export --triton {repo}`")
    here = Path(sys.executable)
    serve = check_serve_python(here if _probe_ok(here) else None)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: every machine reaching it can send frames (Triton has no login on inference)", host)
    cmd = server_command(serve, Path(repo).resolve(), host, ports, threads)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, serve.env())
    return 1  # not reached


def _probe_ok(python: Path) -> bool:
    """Whether `python` itself is a usable server interpreter (e.g. `edge-pct serve` run from the server env)."""
    info = _probe(python)
    return info is not None and _has_libpython(info) and info["pytriton"] and info["onnxruntime"]
