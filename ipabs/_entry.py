"""Start-up and shut-down of the ``ipabs`` command (not of ``import ipabs``).

Two costs of a short command that buy nothing:

- numba, when it first loads compiled code, probes for BLAS by importing ``scipy.linalg``
  (0.2-0.3 s of imports). No ipabs kernel calls BLAS, so the command answers that probe "not
  installed". Only the probe is refused, and only in the command's own process: any later
  import of ``scipy.linalg`` works.
- once compiled code is loaded, the interpreter's orderly shut-down frees thousands of objects
  and LLVM modules (0.3-0.5 s). By the time a command returns its output is written and every
  file it wrote is closed, so the process flushes its streams and leaves at once.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from typing import NoReturn

_PROBE = "numba.np.arraymath"  # the numba module whose import runs the BLAS probe


class SkipBlasProbe:
    """Import hook that refuses ``scipy.linalg`` while numba's array-maths module is loading
    (numba then records "no BLAS", which only matters to kernels using ``np.dot`` and
    ``np.linalg``: ipabs has none)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: object = None
    ) -> ModuleSpec | None:
        """Refuse ``scipy.linalg`` during the probe; defer to the other finders otherwise."""
        if name == "scipy.linalg":
            probe = sys.modules.get(_PROBE)
            if probe is not None and not hasattr(probe, "_HAVE_BLAS"):
                raise ModuleNotFoundError("not imported by the ipabs command", name=name)
        return None


def install_skip_blas_probe() -> None:
    """Put :class:`SkipBlasProbe` first on the import path, unless numba has already probed."""
    if _PROBE in sys.modules or any(isinstance(f, SkipBlasProbe) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, SkipBlasProbe())


def exit_code(exc: SystemExit) -> int:
    """The process exit status that ``SystemExit(exc.code)`` stands for."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def run_and_exit(main: Callable[[], int]) -> NoReturn:
    """Run ``main`` and end the process with its exit status without the interpreter's
    shut-down (streams are flushed first). Exceptions other than ``SystemExit`` propagate and
    end the process the usual way."""
    install_skip_blas_probe()
    try:
        code = main()
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exit_code(exc)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing left to deliver
            stream.flush()
    os._exit(code)
