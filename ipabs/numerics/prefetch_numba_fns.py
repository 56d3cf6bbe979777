"""A software prefetch hint for kernels that read scattered rows of a large table.

The Monte Carlo takes each defaulted asset's remaining flows out of the pool's totals: rows of
a table far larger than the caches, one run per defaulter. Asking for the next defaulters'
rows while the current one is taken out overlaps their memory latency. A hint changes no
number; in Python (``NUMBA_DISABLE_JIT=1``) it does nothing.

Kernels (njit) compile this hint in: it counts among the kernel sources whose hash keys the
compiled cache (see :func:`ipabs._jit.source_hash`).
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload


def prefetch_row(table: Any, i: int, j: int) -> None:
    """Hint that ``table[i, j, :]`` (a 3-D array) is about to be read.

    Parameters
    ----------
    table : numpy.ndarray
        A 3-D array.
    i, j : int
        The row's first two indices (in range).
    """


@intrinsic
def _prefetch_row(typingctx: Any, table: Any, i: Any, j: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        idx = [
            context.cast(builder, args[1], signature.args[1], types.intp),
            context.cast(builder, args[2], signature.args[2], types.intp),
            zero,
        ]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read (0), keep in all cache levels (3), data cache (1)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    if isinstance(table, types.Array) and table.ndim == 3:
        return types.void(table, i, j), codegen
    return None


@overload(prefetch_row, inline="always")
def _prefetch_row_overload(table: Any, i: Any, j: Any) -> Any:
    def impl(table: Any, i: Any, j: Any) -> None:  # the overload's own parameters, as numba requires
        _prefetch_row(table, i, j)

    return impl
