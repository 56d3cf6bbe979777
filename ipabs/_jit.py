"""One place that decides how kernels are compiled.

Kernels are compiled with numba (``cache=True`` so a warm run does not recompile). With the
environment variable ``NUMBA_DISABLE_JIT=1`` numba returns the plain Python functions: the
pure-Python twin that the tests compare against the compiled kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])


def njit(func: F | None = None, **options: Any) -> Any:
    """``numba.njit`` with the project's defaults (``cache=True``, no fastmath)."""
    options.setdefault("cache", True)
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)


def jit_enabled() -> bool:
    """Whether kernels are compiled (False when running the pure-Python twin)."""
    return not numba.config.DISABLE_JIT
