"""Kernels: a defaulter's period from its latent variable, by a bucketed search of its group's
default thresholds (tables built by :func:`ipabs.risk.model.period_search`).

A group's thresholds rise with its cumulative PD, and a defaulter's period is the number of
them at or below its latent variable ``y``. The range of the thresholds is cut into equal
buckets; ``y``'s bucket gives how many thresholds are surely at or below it, and a
bisection of a few fixed steps counts the rest among the thresholds that share its bucket.
Every step is arithmetic on a comparison, not a branch.
"""

from __future__ import annotations

import numpy as np

from ipabs._jit import njit


@njit(leaf=True, inline="always")
def bucket_of(y: float, lo: float, inv: float, n_buckets: float) -> np.int64:
    """The bucket of ``y``: ``floor((y - lo) * inv)`` kept within ``[0, n_buckets)`` (NaN and
    everything below ``lo`` in bucket 0). Non-decreasing in ``y``, which the tables rely on."""
    v = (y - lo) * inv
    v = v if v >= 0.0 else 0.0
    v = v if v < n_buckets else n_buckets - 1.0
    return np.int64(v)


@njit
def buckets_of(y: np.ndarray, lo: float, inv: float, n_buckets: int) -> np.ndarray:
    """:func:`bucket_of` of every element: the tables are built with the kernel's own
    arithmetic, so that no rounding can put a value in another bucket than the kernel does."""
    out = np.empty(y.shape[0], dtype=np.int64)
    for i in range(y.shape[0]):
        out[i] = bucket_of(y[i], lo, inv, float(n_buckets))
    return out


@njit(leaf=True, inline="always")
def search_period(row, start, bucket, extra, y, last):  # type: ignore[no-untyped-def]
    """The number of a group's thresholds at or below ``y``, at most ``last``.

    ``row``: the group's thresholds padded with +inf; ``start``: per bucket, the thresholds
    in earlier buckets (all below any ``y`` of the bucket); ``bucket``: (lo, inv) of
    :func:`bucket_of`; ``extra``: bisection steps beyond three, for buckets crowded by
    ties or very close thresholds (:func:`extra_steps`).
    """
    s = start[np.uint64(bucket_of(y, bucket[0], bucket[1], float(start.shape[0])))]
    count = 0
    for k in range(extra + 2, 2, -1):  # none unless a bucket holds over 7 thresholds
        # unsigned index: numba checks a signed one for wraparound
        count += np.int64(row[np.uint64(s + count + (1 << k) - 1)] <= y) << k
    # the last three steps written out: as a loop they were not unrolled and cost more; each
    # adds its power of two by arithmetic on the comparison, not by a mispredicted branch
    count += 4 if row[np.uint64(s + count + 3)] <= y else 0
    count += 2 if row[np.uint64(s + count + 1)] <= y else 0
    count += 1 if row[np.uint64(s + count)] <= y else 0
    return min(s + count, last)  # y = +inf passes the padding


@njit(leaf=True)
def extra_steps(row_width: int, n_periods: int) -> int:
    """Bisection steps beyond three that rows of ``row_width`` entries for ``n_periods``
    periods were padded for (the padding is 2^(3 + extra) entries)."""
    pad = row_width - (n_periods - 1)
    extra = 0
    while pad > 8:
        pad >>= 1
        extra += 1
    return extra
