"""One place that decides how kernels are compiled.

Kernels are compiled with numba and cached on disk (``cache=True``), so a warm run does not
recompile. numba invalidates a cached function only when its own file changes, not when a
kernel it calls changes; so the cache lives in a folder keyed by a hash of the kernel sources,
and any change to any kernel starts a fresh cache. The folder is
``$IPABS_CACHE_DIR`` or ``~/.cache/ipabs``.

With the environment variable ``NUMBA_DISABLE_JIT=1`` numba returns the plain Python functions:
the pure-Python twin that the tests compare against the compiled kernels.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

_PACKAGE = Path(__file__).resolve().parent


def source_hash() -> str:
    """Hash of the package's kernel sources: every file that compiles a kernel or defines a
    type a kernel receives (names and contents)."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        text = path.read_bytes()
        if b"njit" in text or b"NamedTuple" in text:
            h.update(str(path.relative_to(_PACKAGE)).encode())
            h.update(text)
    return h.hexdigest()[:16]


def _cache_dir() -> str:
    root = os.environ.get("IPABS_CACHE_DIR") or os.path.join(Path.home(), ".cache", "ipabs")
    target = os.path.join(root, f"numba-{numba.__version__}-{source_hash()}")
    try:
        os.makedirs(target, exist_ok=True)
        probe = os.path.join(target, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError:  # read-only home: fall back to a per-user temporary folder
        target = os.path.join(
            tempfile.gettempdir(),
            f"ipabs-{os.getuid() if hasattr(os, 'getuid') else 0}",
            f"numba-{numba.__version__}-{source_hash()}",
        )
        os.makedirs(target, exist_ok=True)
    return target


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = _cache_dir()


def njit(func: F | None = None, *, leaf: bool = False, **options: Any) -> Any:
    """``numba.njit`` with the project's defaults: ``cache=True``, no fastmath, and
    ``error_model="numpy"`` (kernels guard their divisions; numba's zero-divisor check on every
    float division is a branch per operation for an error that cannot happen).

    ``leaf=True`` marks a kernel that allocates nothing: it only reads and writes the arrays
    it is given. Such a kernel is compiled without numba's reference counting, so a call that
    passes it many arrays costs no atomic counter updates; with reference counting those
    updates were most of the cost of a waterfall period. A leaf kernel may call only leaf
    kernels and must not create arrays (views are fine).
    """
    options.setdefault("cache", True)
    options.setdefault("error_model", "numpy")
    if leaf:
        options["_nrt"] = False
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)
