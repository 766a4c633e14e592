"""Small C kernels of the library, built at first use with the machine's C compiler and loaded with ctypes.

Why C at all: some CPU loops (softmax splatting's scatter of four bilinear corners per source) have no
fast expression in torch's ops — every formulation pays for index tensors, expanded sources and separate
passes per corner and channel. A ~100-line C loop does it in one pass. It is plain C99 (no intrinsics, no
OpenMP, no ``-march``, no ``-ffast-math``: the library runs on any CPU of the platform), compiled with ``-O3`` the first time it
is needed, so the pack ships no binary and needs no build step at install.

Where it goes: a per-user cache directory (``VID4D_CACHE_DIR``; else ``$XDG_CACHE_HOME/vid4d`` or
``~/.cache/vid4d``), one file per source, compiler and flags (their hash is in the name), written to a
temporary name and renamed into place, so concurrent processes never load a half-written file. Which
compiler: ``CC`` (a command line), else Python's own build compiler, else ``cc``, ``gcc`` or ``clang`` on the
PATH. Every caller has a torch path for when there is none: :func:`load` returns None (the reason in
:func:`status`) and never raises. ``VID4D_NATIVE=0`` turns the kernels off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

NATIVE_ENV = "VID4D_NATIVE"
CACHE_ENV = "VID4D_CACHE_DIR"
SOURCES = Path(__file__).resolve().parent / "csrc"
# -fno-trapping-math: no code here reads floating-point exception flags, and without it gcc will not
# if-convert (hence vectorise) loops with float comparisons.
FLAGS = ("-O3", "-fno-trapping-math", "-fPIC", "-shared", "-std=c99")
BUILD_TIMEOUT_S = 120

_LOCK = threading.Lock()
_LOADED: dict[str, ctypes.CDLL | None] = {}
_STATUS: dict[str, str] = {}


def load(name: str) -> ctypes.CDLL | None:
    """The shared library built from ``csrc/<name>.c`` (built now if not cached), or None when native
    kernels are off, no C compiler is found or the build fails (:func:`status` says which). Once per
    process and name; thread-safe."""
    with _LOCK:
        if name not in _LOADED:
            try:
                lib, why = _build_and_load(name)
            except Exception as exc:  # never let an optional speed-up take a caller down
                lib, why = None, f"failed: {type(exc).__name__}: {exc}"
            _LOADED[name], _STATUS[name] = lib, why
        return _LOADED[name]


def status(name: str) -> str:
    """``untried``, ``loaded <path>``, ``disabled (...)``, ``no C compiler (...)`` or ``failed: ...``."""
    return _STATUS.get(name, "untried")


def enabled() -> bool:
    return os.environ.get(NATIVE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def compiler() -> list[str] | None:
    """The C compiler's command line (see the module docstring), or None."""
    env = os.environ.get("CC", "").strip()
    if env:
        cmd = shlex.split(env)
        return cmd if shutil.which(cmd[0]) else None
    candidates = []
    built_with = (sysconfig.get_config_var("CC") or "").strip()
    if built_with:
        candidates.append(shlex.split(built_with)[0])
    candidates += ["cc", "gcc", "clang"]
    for cand in candidates:
        if shutil.which(cand):
            return [cand]
    return None


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "vid4d"


def _build_and_load(name: str) -> tuple[ctypes.CDLL | None, str]:
    if not enabled():
        return None, f"disabled ({NATIVE_ENV}={os.environ.get(NATIVE_ENV)})"
    source = SOURCES / f"{name}.c"
    cc = compiler()
    if cc is None:
        return None, "no C compiler (set CC, or install cc/gcc/clang)"
    text = source.read_bytes()
    resolved = shutil.which(cc[0]) or cc[0]
    key = hashlib.sha256(b"\0".join([text, " ".join([resolved, *cc[1:], *FLAGS]).encode(), sys.platform.encode(), platform.machine().encode()])).hexdigest()[:16]
    suffix = ".dll" if sys.platform == "win32" else ".so"
    target = _writable_cache() / f"{name}-{key}{suffix}"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=suffix, dir=target.parent)
        os.close(fd)
        try:
            proc = subprocess.run([*cc, *FLAGS, "-o", tmp, str(source), "-lm"], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            if proc.returncode != 0:
                return None, f"failed: {' '.join(cc)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-400:]}"
            os.replace(tmp, target)  # atomic: another process sees the old state or the whole file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return ctypes.CDLL(str(target)), f"loaded {target}"


def _writable_cache() -> Path:
    """The cache directory (created private to the user), or a fresh private temporary one when it cannot
    be written or others could write to it (a library loaded from there runs as this user)."""
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = path.stat()
        if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
            raise PermissionError(f"{path} is not private to this user")
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe-")
        probe.close()
        return path
    except OSError:
        return Path(tempfile.mkdtemp(prefix="vid4d-native-"))
