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
from typing import Any

import numpy as np

from ipabs.analytics.metrics import BATCHES, Z95, Estimate

CHUNK = 1 << 20  # values read at a time (8 MiB of float64; a pass holds a few such temporaries)
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


class ArraySample:
    """A :class:`Sample` of values already in memory (with their weights, or None): sorted once
    for all the order statistics asked of it."""

    def __init__(self, x: np.ndarray, w: np.ndarray | None = None) -> None:
        self.x = x
        self.w = w
        self.weight = None if w is None else "weight"
        self.size = len(x)
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def in_memory(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The values sorted, with their count and weight cumulated in that order."""
        if self._sorted is None:
            if self.w is None:
                x = np.sort(self.x)
                counts = np.arange(1, len(x) + 1, dtype=np.float64)
                self._sorted = (x, counts, counts)
            else:
                order = np.argsort(self.x, kind="stable")
                counts = np.arange(1, len(order) + 1, dtype=np.float64)
                self._sorted = (self.x[order], counts, np.cumsum(self.w[order]))
        return self._sorted

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """The values and weights, in one chunk."""
        yield self.x, self.w

    def part(self, lo: int, hi: int) -> ArraySample:
        """Values ``lo .. hi - 1`` (a contiguous batch)."""
        return ArraySample(self.x[lo:hi], None if self.w is None else self.w[lo:hi])


def select(sample: Sample | ArraySample, targets: list[float], weighted: bool) -> list[float]:
    """For each target mass ``t``, the smallest value ``v`` of the sample whose cumulative
    mass (count, or weight when ``weighted``) up to and including ``v`` reaches ``t``; the
    largest value when no value's does (rounding of a weighted total).

    Every target advances in the same passes over the sample: a pass histograms the next 16
    bits of the keys under each prefix still open, and collects the values under a prefix
    while they are few enough to sort."""
    small = sample.in_memory()
    if small is not None:  # few values: sorted once, for every target
        x, counts, weights = small
        cum = weights if weighted else counts
        return [
            float(x[min(int(np.searchsorted(cum, t, side="left")), len(x) - 1)]) if len(x) else math.nan
            for t in targets
        ]
    out = [math.nan] * len(targets)
    goal = list(targets)
    prefix = [np.uint64(0)] * len(targets)
    below = [0.0] * len(targets)
    active = list(range(len(targets)))
    shift = 64
    while active:
        shift -= _DIGIT
        open_prefixes = np.array(sorted({int(prefix[i]) for i in active}), dtype=np.uint64)
        n_open = len(open_prefixes)
        hist = np.zeros(n_open << _DIGIT)
        count = np.zeros(n_open, dtype=np.int64)
        budget = max(COLLECT // n_open, 1)
        cand: list[list[tuple[np.ndarray, np.ndarray | None]] | None] = [[] for _ in range(n_open)]
        low = np.full(n_open, np.iinfo(np.uint64).max, dtype=np.uint64)  # each prefix's smallest key
        high = np.zeros(n_open, dtype=np.uint64)  # and largest
        for x, w in sample.chunks():
            keys = _keys(x)
            if shift + _DIGIT < 64:  # the values under an open prefix, and which one
                head = keys >> np.uint64(shift + _DIGIT)
                where = np.minimum(np.searchsorted(open_prefixes, head), n_open - 1)
                match = open_prefixes[where] == head
                keys, x, where = keys[match], x[match], where[match]
                w = w[match] if w is not None else None
            else:
                where = np.zeros(len(x), dtype=np.int64)
            digits = ((keys >> np.uint64(shift)) & np.uint64((1 << _DIGIT) - 1)).astype(np.int64)
            flat = (where.astype(np.int64) << _DIGIT) + digits
            hist += np.bincount(flat, weights=w if weighted else None, minlength=n_open << _DIGIT)
            count += np.bincount(where, minlength=n_open)
            for j in range(n_open):
                mine = where == j if n_open > 1 else slice(None)
                keys_j = keys[mine]
                if len(keys_j):
                    low[j] = min(low[j], keys_j.min())
                    high[j] = max(high[j], keys_j.max())
                bucket = cand[j]
                if bucket is None:
                    continue
                if count[j] > budget:  # too many to sort: narrow the prefix instead
                    cand[j] = None
                    continue
                bucket.append((x[mine].copy(), w[mine].copy() if w is not None else None))
        hist = hist.reshape(n_open, 1 << _DIGIT)
        still = []
        for i in active:
            j = int(np.searchsorted(open_prefixes, prefix[i]))
            bucket = cand[j]
            if count[j] == 0:
                continue
            if low[j] == high[j]:  # one value under the prefix (ties, a few distinct values)
                out[i] = _value(low[j])
                continue
            if bucket is not None:  # few enough: sort them
                x = np.concatenate([b[0] for b in bucket])
                order = np.argsort(x, kind="stable")
                x = x[order]
                mass = np.concatenate([b[1] for b in bucket])[order] if weighted else np.ones(len(x))
                cum = below[i] + np.cumsum(mass)
                out[i] = float(x[min(int(np.searchsorted(cum, goal[i], side="left")), len(x) - 1)])
                continue
            cum = below[i] + np.cumsum(hist[j])
            d = int(np.searchsorted(cum, goal[i], side="left"))
            if d >= len(cum):  # the target lies beyond the total: the largest candidate
                d = int(np.flatnonzero(hist[j])[-1]) if np.any(hist[j]) else len(cum) - 1
                goal[i] = float(cum[-1])
            below[i] = float(cum[d - 1]) if d > 0 else below[i]
            prefix[i] = (prefix[i] << np.uint64(_DIGIT)) | np.uint64(d)
            if shift == 0:  # the whole key
                out[i] = _value(prefix[i])
            else:
                still.append(i)
        active = still
    return out


def _weighted_quantiles(sample: Sample | ArraySample, qs: list[float]) -> list[float]:
    total = sum(float(w.sum()) for _, w in sample.chunks())
    return select(sample, [q * total for q in qs], weighted=True)


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


def quantiles(sample: Sample | ArraySample, qs: list[float], weighted: bool) -> list[Estimate]:
    """:func:`ipabs.analytics.metrics.quantile` of the sample at each level of ``qs``, from the
    same passes over it."""
    n = sample.size
    if n == 0:
        return [_UNKNOWN] * len(qs)
    if not weighted:
        ranks = [_plain_ranks(n, q) for q in qs]
        found = select(sample, [r + 1.0 for g in ranks for r in g[1:]], False)
        out = []
        for i, (gamma, *_) in enumerate(ranks):
            a, b, s_lo, s_hi = found[4 * i : 4 * i + 4]
            value = _lerp(a, b, gamma)
            out.append(Estimate(value, (s_hi - s_lo) / (2 * Z95), min(s_lo, value), max(s_hi, value)))
        return out
    values = _weighted_quantiles(sample, qs)
    per_batch = [_weighted_quantiles(b, qs) for b in _batches(sample)]
    return [_batched(v, [b[i] for b in per_batch]) for i, v in enumerate(values)]


def quantile(sample: Sample | ArraySample, q: float, weighted: bool) -> Estimate:
    """:func:`ipabs.analytics.metrics.quantile` of the sample."""
    return quantiles(sample, [q], weighted)[0]


def _tail_sums(
    sample: Sample | ArraySample, cuts: list[tuple[float, bool]]
) -> list[tuple[int, float, float, float]]:
    """For each (threshold, strict): over the values above the threshold (or at it too, unless
    strict), their number, weight, weighted sum and the sum of their squared distances from the
    threshold; all from one pass."""
    sums = [[0, 0.0, 0.0, 0.0] for _ in cuts]
    for x, w in sample.chunks():
        for acc, (threshold, strict) in zip(sums, cuts, strict=True):
            tail = x > threshold if strict else x >= threshold
            xt = x[tail]
            acc[0] += len(xt)
            if w is not None:
                wt = w[tail]
                acc[1] += float(wt.sum())
                acc[2] += float((wt * xt).sum())
            else:
                acc[1] += len(xt)
                acc[2] += float(xt.sum())
            acc[3] += float(((xt - threshold) ** 2).sum())
    return [(int(a[0]), float(a[1]), float(a[2]), float(a[3])) for a in sums]


def expected_shortfalls(
    sample: Sample | ArraySample, levels: list[float], weighted: bool, known: list[float] | None = None
) -> list[Estimate]:
    """:func:`ipabs.analytics.metrics.expected_shortfall` of the sample at each level, from the
    same passes over it (``known``: the plain quantiles at those levels, when already found)."""
    n = sample.size
    if n == 0:
        return [_UNKNOWN] * len(levels)
    if weighted:
        values = _weighted_shortfalls(sample, levels)
        per_batch = [_weighted_shortfalls(b, levels) for b in _batches(sample)]
        return [_batched(v, [b[i] for b in per_batch]) for i, v in enumerate(values)]
    # per level, the tail holds m values, the last one fractionally: the whole-th and
    # (whole+1)-th largest values (0-based ascending ranks n - whole, n - 1 - whole)
    tails = [(n * (1.0 - a), math.floor(n * (1.0 - a))) for a in levels]
    found = select(sample, [float(n - whole + r) for _, whole in tails for r in (1, 0)], False)
    qs = known if known is not None else [e.value for e in quantiles(sample, levels, False)]
    cuts = [(found[2 * i], True) for i in range(len(levels))] + [(q, False) for q in qs]
    sums = _tail_sums(sample, cuts)
    top_value = max(found) if found else math.nan
    out = []
    for i, (level, (m, whole)) in enumerate(zip(levels, tails, strict=True)):
        top, after = found[2 * i], found[2 * i + 1]
        tail_sum = 0.0
        if whole > 0:
            count, _, above, _ = sums[i]
            tail_sum = above + (whole - count) * top
        if whole < n:
            tail_sum += (m - whole) * after
        value = tail_sum / m if m > 0 else top_value
        q = qs[i]
        count, _, total, square = sums[len(levels) + i]
        var = 0.0
        if count > 1:
            mean_gap = (total - count * q) / count
            var = max(square / count - mean_gap * mean_gap, 0.0)
        se = math.sqrt((var + level * (q - value) ** 2) / (n * (1.0 - level))) if level < 1.0 else math.nan
        out.append(Estimate.normal(value, se))
    return out


def expected_shortfall(sample: Sample | ArraySample, level: float, weighted: bool) -> Estimate:
    """:func:`ipabs.analytics.metrics.expected_shortfall` of the sample."""
    return expected_shortfalls(sample, [level], weighted)[0]


def _weighted_shortfalls(sample: Sample | ArraySample, levels: list[float]) -> list[float]:
    qs = _weighted_quantiles(sample, levels)
    sums = _tail_sums(sample, [(q, False) for q in qs])
    return [total / weight if weight > 0 else math.nan for _, weight, total, _ in sums]


def _batches(sample: Sample | ArraySample) -> list[Any]:
    edges = np.linspace(0, sample.size, BATCHES + 1).astype(np.int64)
    return [sample.part(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _batched(value: float, per_batch: list[float]) -> Estimate:
    b = np.array([v for v in per_batch if not math.isnan(v)])
    if len(b) < 2:
        return Estimate(value, math.nan, math.nan, math.nan)
    return Estimate.normal(value, float(b.std(ddof=1) / math.sqrt(len(b))))
