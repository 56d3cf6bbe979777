"""Exact quantiles and expected shortfall of a column too long to hold in memory.

A Monte Carlo run that streams its paths keeps the few per-path columns its quantiles need on
disk (:class:`DiskColumns`). The estimators here read them in chunks and return the same numbers
as :mod:`ipabs.analytics.metrics` would on the whole column in memory: the same order statistics,
the same interpolation, the same intervals, only summed in another order (so equal to the last
few bits).

An order statistic is found by radix selection on the bits of the values: a float64 maps to a
64-bit key whose unsigned order is the order of the numbers, and each pass over the column
counts (or weighs) the keys that share the prefix found so far by their next 16 bits, until few
enough candidates remain to sort in memory (at most :data:`COLLECT` values) or the key is
complete. Memory stays bounded by a chunk, a 65,536-bin histogram and the candidates: it does
not grow with the number of paths.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ipabs.analytics.metrics import BATCHES, Z95, Estimate

CHUNK = 1 << 22  # values read at a time (32 MiB of float64)
COLLECT = 1 << 20  # candidates sorted in memory once a prefix narrows the column to so few
_SIGN = np.uint64(1 << 63)
_DIGIT = 16
_UNKNOWN = Estimate(math.nan, math.nan, math.nan, math.nan)


def _keys(x: np.ndarray) -> np.ndarray:
    """Unsigned keys in the order of the float64 values (-0.0 taken as 0.0; no nans)."""
    bits = (x + 0.0).view(np.uint64)
    negative = (bits & _SIGN) != 0
    return np.where(negative, ~bits, bits | _SIGN)


def _value(key: np.uint64) -> float:
    bits = key & ~_SIGN if key & _SIGN else ~key
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


class DiskColumns:
    """Per-path columns of a run, each a file of float64 in path order, in a temporary folder
    that :meth:`close` removes.

    Parameters
    ----------
    names : list of str
        The columns.
    paths : int
        Rows of each column.
    folder : str or Path, optional
        Where to make the temporary folder (default: the system's temporary folder).
    """

    def __init__(self, names: list[str], paths: int, folder: str | Path | None = None) -> None:
        self.paths = paths
        self.folder = Path(tempfile.mkdtemp(prefix="ipabs-columns-", dir=folder))
        self._fd: dict[str, int] = {}
        try:
            for name in names:
                fd = os.open(self.folder / f"{name}.f8", os.O_RDWR | os.O_CREAT, 0o600)
                self._fd[name] = fd
                os.ftruncate(fd, 8 * paths)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def bytes_needed(columns: int, paths: int) -> int:
        """Disk space the columns take."""
        return 8 * columns * paths

    def write(self, name: str, first: int, values: np.ndarray) -> None:
        """Write rows ``first .. first + len(values) - 1`` of column ``name`` (safe from
        several threads at once: each write has its own offset)."""
        data = np.ascontiguousarray(values, dtype="<f8").tobytes()
        offset = 8 * first
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd[name], view, offset)
            view = view[written:]
            offset += written

    def read(self, name: str, lo: int = 0, hi: int | None = None) -> Iterator[np.ndarray]:
        """Rows ``lo .. hi - 1`` of column ``name``, a chunk at a time."""
        hi = self.paths if hi is None else hi
        fd = self._fd[name]
        for a in range(lo, hi, CHUNK):
            b = min(a + CHUNK, hi)
            data = os.pread(fd, 8 * (b - a), 8 * a)
            yield np.frombuffer(data, dtype="<f8")

    def close(self) -> None:
        """Remove the files."""
        for fd in self._fd.values():
            os.close(fd)
        self._fd.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


class Sample:
    """The values of one column of :class:`DiskColumns` (with the paths' weights), optionally
    without its nans, optionally only positions ``lo .. hi - 1`` of what remains."""

    def __init__(
        self,
        columns: DiskColumns,
        name: str,
        weight: str | None,
        drop_nan: bool = False,
        lo: int = 0,
        hi: int | None = None,
    ) -> None:
        self.columns = columns
        self.name = name
        self.weight = weight
        self.drop_nan = drop_nan
        self.lo = lo
        self._hi = hi
        self._size: int | None = None
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def size(self) -> int:
        """Number of values."""
        if self._size is None:
            if self.drop_nan and self._hi is None:
                total = sum(int(np.count_nonzero(~np.isnan(x))) for x in self.columns.read(self.name))
            else:
                total = self.columns.paths if self._hi is None else self._hi
            self._size = total - self.lo
        return self._size

    def in_memory(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The values sorted, with their count and weight cumulated in that order, when there
        are at most :data:`COLLECT` of them (kept for the next call); else None."""
        if self._sorted is None and self.size <= COLLECT:
            parts = list(self.chunks())
            x = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
            order = np.argsort(x, kind="stable")
            x = x[order]
            counts = np.arange(1, len(x) + 1, dtype=np.float64)
            weights = (
                np.cumsum(np.concatenate([p[1] for p in parts])[order])
                if self.weight is not None and parts
                else counts
            )
            self._sorted = (x, counts, weights)
        return self._sorted

    def part(self, lo: int, hi: int) -> Sample:
        """Values ``lo .. hi - 1`` of this sample (a contiguous batch)."""
        return Sample(self.columns, self.name, self.weight, self.drop_nan, self.lo + lo, self.lo + hi)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(values, weights) a chunk at a time, in path order (weights None when unweighted)."""
        hi = self.lo + self.size
        xs = self.columns.read(self.name)
        ws = self.columns.read(self.weight) if self.weight is not None else None
        seen = 0  # values of the sample before this chunk
        for x in xs:
            w = next(ws) if ws is not None else None
            if self.drop_nan:
                ok = ~np.isnan(x)
                x = x[ok]
                w = w[ok] if w is not None else None
            a, b = max(self.lo - seen, 0), min(hi - seen, len(x))
            seen += len(x)
            if b > a:
                yield x[a:b], (w[a:b] if w is not None else None)
            if seen >= hi:
                break


def select(sample: Sample, targets: list[float], weighted: bool) -> list[float]:
    """For each target mass ``t``, the smallest value ``v`` of the sample whose cumulative
    mass (count, or weight when ``weighted``) up to and including ``v`` reaches ``t``; the
    largest value when no value's does (rounding of a weighted total)."""
    small = sample.in_memory()
    if small is not None:  # few values: sorted once, for every target
        x, counts, weights = small
        cum = weights if weighted else counts
        return [
            float(x[min(int(np.searchsorted(cum, t, side="left")), len(x) - 1)]) if len(x) else math.nan
            for t in targets
        ]
    out = []
    for t in targets:
        prefix, shift, below = np.uint64(0), 64, 0.0
        while True:
            # the candidates: values whose key starts with the prefix found so far
            cand_x, cand_w, count = [], [], 0
            hist = np.zeros(1 << _DIGIT)
            shift -= _DIGIT
            for x, w in sample.chunks():
                keys = _keys(x)
                if shift + _DIGIT < 64:
                    match = (keys >> np.uint64(shift + _DIGIT)) == prefix
                    keys = keys[match]
                    x = x[match]
                    w = w[match] if w is not None else None
                mass = w if weighted else None
                digits = ((keys >> np.uint64(shift)) & np.uint64((1 << _DIGIT) - 1)).astype(np.int64)
                hist += np.bincount(digits, weights=mass, minlength=1 << _DIGIT)
                count += len(x)
                if count <= COLLECT:
                    cand_x.append(x.copy())
                    cand_w.append(w.copy() if w is not None else None)
            if count == 0:
                out.append(math.nan)
                break
            if count <= COLLECT:  # few enough: sort them
                x = np.concatenate(cand_x)
                order = np.argsort(x, kind="stable")
                x = x[order]
                mass = np.concatenate(cand_w)[order] if weighted else np.ones(len(x))
                cum = below + np.cumsum(mass)
                i = int(np.searchsorted(cum, t, side="left"))
                out.append(float(x[min(i, len(x) - 1)]))
                break
            cum = below + np.cumsum(hist)
            d = int(np.searchsorted(cum, t, side="left"))
            if d >= len(hist):  # the target lies beyond the total: the largest candidate
                d = int(np.flatnonzero(hist)[-1]) if np.any(hist) else len(hist) - 1
                t = cum[-1]
            below = float(cum[d - 1]) if d > 0 else below
            prefix = (prefix << np.uint64(_DIGIT)) | np.uint64(d)
            if shift == 0:  # the whole key
                out.append(_value(prefix))
                break
    return out


def _weighted_quantile(sample: Sample, q: float) -> float:
    total = sum(float(w.sum()) for _, w in sample.chunks())
    return select(sample, [q * total], weighted=True)[0]


def _plain_ranks(n: int, q: float) -> tuple[float, int, int, int, int]:
    """numpy's linear interpolation: (gamma, previous, next) 0-based ranks, and the 0-based ranks
    of the order statistics bracketing the 95% interval."""
    virtual = (n - 1) * q
    previous = math.floor(virtual)
    gamma = virtual - previous
    prev_rank = min(previous, n - 1)
    next_rank = min(previous + 1, n - 1)
    half = Z95 * math.sqrt(n * q * (1.0 - q))
    lo = min(max(math.floor(n * q - half), 1), n) - 1
    hi = min(max(math.ceil(n * q + half), 1), n) - 1
    return gamma, prev_rank, next_rank, lo, hi


def _lerp(a: float, b: float, gamma: float) -> float:
    diff = b - a
    value = a + diff * gamma
    if gamma >= 0.5:
        value = b - diff * (1.0 - gamma)
    return a if a == b else value


def quantile(sample: Sample, q: float, weighted: bool) -> Estimate:
    """:func:`ipabs.analytics.metrics.quantile` of the sample."""
    n = sample.size
    if n == 0:
        return _UNKNOWN
    if not weighted:
        gamma, prev_rank, next_rank, lo, hi = _plain_ranks(n, q)
        a, b, s_lo, s_hi = select(sample, [r + 1.0 for r in (prev_rank, next_rank, lo, hi)], False)
        value = _lerp(a, b, gamma)
        return Estimate(value, (s_hi - s_lo) / (2 * Z95), min(s_lo, value), max(s_hi, value))
    value = _weighted_quantile(sample, q)
    return _batched(value, [_weighted_quantile(b, q) for b in _batches(sample)])


def _tail_sums(sample: Sample, threshold: float, strict: bool) -> tuple[int, float, float, float]:
    """Over the values above ``threshold`` (or at it too, unless ``strict``): their number,
    weight, weighted sum and the sum of their squared distances from the threshold."""
    count, weight, total, square = 0, 0.0, 0.0, 0.0
    for x, w in sample.chunks():
        tail = x > threshold if strict else x >= threshold
        xt = x[tail]
        count += len(xt)
        if w is not None:
            wt = w[tail]
            weight += float(wt.sum())
            total += float((wt * xt).sum())
        else:
            weight += len(xt)
            total += float(xt.sum())
        square += float(((xt - threshold) ** 2).sum())
    return count, weight, total, square


def expected_shortfall(sample: Sample, level: float, weighted: bool) -> Estimate:
    """:func:`ipabs.analytics.metrics.expected_shortfall` of the sample."""
    n = sample.size
    if n == 0:
        return _UNKNOWN
    if weighted:
        value = _weighted_shortfall(sample, level)
        return _batched(value, [_weighted_shortfall(b, level) for b in _batches(sample)])
    m = n * (1.0 - level)  # the tail holds m values, the last one fractionally
    whole = math.floor(m)
    # the whole-th and (whole+1)-th largest values (0-based ascending ranks n - whole, n - 1 - whole)
    ranks = [float(n - whole + 1), float(n - whole)] if whole > 0 else [float(n - whole)]
    found = select(sample, ranks, False)
    if whole > 0:
        top, after = found
        count, _, above, _ = _tail_sums(sample, top, strict=True)
        tail_sum = above + (whole - count) * top
    else:
        after, tail_sum = found[0], 0.0
    if whole < n:
        tail_sum += (m - whole) * after
    value = tail_sum / m if m > 0 else _max(sample)
    q = quantile(sample, level, False).value
    count, _, total, square = _tail_sums(sample, q, strict=False)
    var = 0.0
    if count > 1:
        mean_gap = (total - count * q) / count
        var = max(square / count - mean_gap * mean_gap, 0.0)
    se = math.sqrt((var + level * (q - value) ** 2) / (n * (1.0 - level))) if level < 1.0 else math.nan
    return Estimate.normal(value, se)


def _max(sample: Sample) -> float:
    return max(float(x.max()) for x, _ in sample.chunks() if len(x))


def _weighted_shortfall(sample: Sample, level: float) -> float:
    q = _weighted_quantile(sample, level)
    _, weight, total, _ = _tail_sums(sample, q, strict=False)
    return total / weight if weight > 0 else math.nan


def _batches(sample: Sample) -> list[Sample]:
    edges = np.linspace(0, sample.size, BATCHES + 1).astype(np.int64)
    return [sample.part(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _batched(value: float, per_batch: list[float]) -> Estimate:
    b = np.array([v for v in per_batch if not math.isnan(v)])
    if len(b) < 2:
        return Estimate(value, math.nan, math.nan, math.nan)
    return Estimate.normal(value, float(b.std(ddof=1) / math.sqrt(len(b))))
