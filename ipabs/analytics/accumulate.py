"""Summaries of a Monte Carlo run from mergeable sums: one pass over the paths, in blocks.

A run's per-path outcomes go through :class:`Accumulator` in blocks of :data:`BLOCK` paths
(aligned on path indices, so that the blocks, and the numbers, do not depend on how the run
was split between threads or cluster workers). Each block becomes shifted power sums (see
:mod:`ipabs.analytics.moments_numba_fns`); the blocks merge in path order into
:class:`RunSums`, from which every tranche and pool estimate of
:mod:`ipabs.analytics.metrics` follows exactly, formula for formula (means and their errors,
conditional means, the loss given loss ratio, the weight diagnostics of
:mod:`ipabs.analytics.weights`, the variance reduction and the default-count distribution).

Quantiles and expected shortfall need the values themselves: a :class:`QuantileSource` gives
them, either from the per-path arrays in memory (:class:`MemoryQuantiles`) or from the few
columns a streamed run keeps on disk (:class:`DiskQuantiles`, exact order statistics by
:mod:`ipabs.analytics.selection`). Memory then stays bounded whatever the number of paths.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ipabs.analytics import metrics as m
from ipabs.analytics import selection
from ipabs.analytics.importance import LOSS_EPS
from ipabs.analytics.moments_numba_fns import (
    E_CROSS,
    E_HIT_LARGEST,
    E_HIT_PATHS,
    E_LARGEST,
    E_LOSS_PATHS,
    N_EXTRAS,
    N_POOL_SERIES,
    N_SERIES,
    PS_DEFAULT_RATE,
    PS_DEFAULTS,
    PS_LOSS,
    PS_WEIGHT,
    S_DISCOUNTED_LOSS,
    S_DURATION,
    S_HIT,
    S_LOSS,
    S_LOSS_SQ,
    S_WAL,
    S_YIELD,
    block_sums,
)
from ipabs.analytics.tables import DISTRIBUTION_QUANTILES, LEVELS, diagnostic_rows, label, metric_row
from ipabs.analytics.weights import Diagnostics, WeightedSums, diagnose_sums
from ipabs.risk.montecarlo_numba_fns import O_WAL, O_YIELD, P_DEFAULTS, P_LOSS_RATE, P_WEIGHT

BLOCK = 1 << 16  # paths per block of sums: runs split on multiples of it
_UNKNOWN = m.Estimate(math.nan, math.nan, math.nan, math.nan)


# ---- sums


@dataclass
class RunSums:
    """The merged sums of a run's paths (see the module notes)."""

    paths: int
    sums: np.ndarray  # (T * N_SERIES + N_POOL_SERIES, 4): [sum u, reference, sum u d, sum u d^2]
    extras: np.ndarray  # (T, N_EXTRAS)
    unit_weights: bool  # every weight is exactly one (plain sampling)
    counts: dict[float, np.ndarray] = field(default_factory=dict)  # defaults -> [sum w, sum w^2]

    @classmethod
    def empty(cls, n_tranches: int) -> RunSums:
        """Sums of no path."""
        return cls(
            0, np.zeros((n_tranches * N_SERIES + N_POOL_SERIES, 4)), np.zeros((n_tranches, N_EXTRAS)), True
        )

    def merge(self, other: RunSums) -> None:
        """Add the paths of ``other`` (which come after these: merging is ordered)."""
        if other.paths == 0:
            return
        if self.paths == 0:
            self.paths, self.sums, self.extras = other.paths, other.sums.copy(), other.extras.copy()
            self.unit_weights = other.unit_weights
            self.counts = {k: v.copy() for k, v in other.counts.items()}
            return
        a, b = self.sums, other.sums
        n_tr = self.extras.shape[0]
        # the cross sums first: they shift with both series' references, before those merge
        for k in range(n_tr):
            r = k * N_SERIES
            d1 = b[r + S_LOSS, 1] - a[r + S_LOSS, 1]
            d2 = b[r + S_HIT, 1] - a[r + S_HIT, 1]
            self.extras[k, E_CROSS] += (
                other.extras[k, E_CROSS]
                + d2 * b[r + S_LOSS, 2]
                + d1 * b[r + S_HIT, 2]
                + other.paths * d1 * d2
            )
        take = a[:, 0] == 0.0  # a series none of these paths defines: the other's as it is
        shift = (a[:, 0] != 0.0) & (b[:, 0] != 0.0)
        d = b[:, 1] - a[:, 1]
        s1 = b[:, 2] + d * b[:, 0]
        s2 = b[:, 3] + 2.0 * d * b[:, 2] + d * d * b[:, 0]
        a[shift, 3] += s2[shift]
        a[shift, 2] += s1[shift]
        a[shift, 0] += b[shift, 0]
        a[take] = b[take]
        for k in range(n_tr):
            self.extras[k, E_LARGEST] = max(self.extras[k, E_LARGEST], other.extras[k, E_LARGEST])
            self.extras[k, E_HIT_LARGEST] = max(self.extras[k, E_HIT_LARGEST], other.extras[k, E_HIT_LARGEST])
            self.extras[k, E_LOSS_PATHS] += other.extras[k, E_LOSS_PATHS]
            self.extras[k, E_HIT_PATHS] += other.extras[k, E_HIT_PATHS]
        self.paths += other.paths
        self.unit_weights = self.unit_weights and other.unit_weights
        for key, v in other.counts.items():
            if key in self.counts:
                self.counts[key] = self.counts[key] + v
            else:
                self.counts[key] = v.copy()

    # ---- the estimates

    def _row(self, k: int | None, s: int) -> np.ndarray:
        return (
            self.sums[k * N_SERIES + s] if k is not None else self.sums[self.extras.shape[0] * N_SERIES + s]
        )

    def _moments(self, k: int | None, s: int) -> tuple[float, float, float]:
        """(n, mean, sum of squared deviations) of a series."""
        n, c, s1, s2 = self._row(k, s)
        if n == 0.0:
            return 0.0, math.nan, math.nan
        return n, c + s1 / n, max(s2 - s1 * s1 / n, 0.0)

    def mean(self, k: int | None, s: int) -> m.Estimate:
        """:func:`ipabs.analytics.metrics.mean` of a series of weight one."""
        n, mean, m2 = self._moments(k, s)
        if n == 0.0:
            return _UNKNOWN
        se = math.sqrt(m2 / (n - 1.0)) / math.sqrt(n) if n > 1.0 else math.nan
        return m.Estimate.normal(mean, se)

    def conditional_mean(self, k: int, s: int) -> m.Estimate:
        """:func:`ipabs.analytics.metrics.conditional_mean` of a WAL, yield or duration."""
        if self.unit_weights:
            return self.mean(k, s)
        n = self._row(k, s)[0]
        total, c1, s1, _ = self._row(k, s + 1)
        if n == 0.0 or not total > 0.0:
            return _UNKNOWN
        value = c1 + s1 / total
        u0, c2, t1, t2 = self._row(k, s + 2)
        d = c2 - value
        spread = max(t2 + 2.0 * d * t1 + d * d * u0, 0.0)
        return m.Estimate.normal(value, math.sqrt(spread) / total)

    def sum_sq(self, k: int | None, s: int) -> float:
        """``sum y^2`` of a series of weight one."""
        n, c, s1, s2 = self._row(k, s)
        return s2 + 2.0 * c * s1 + n * c * c

    def loss_given_loss(self, k: int) -> m.Estimate:
        """:func:`ipabs.analytics.metrics.ratio` of the loss share over the loss indicator."""
        n, num, m_num = self._moments(k, S_LOSS)
        _, den, m_den = self._moments(k, S_HIT)
        if n == 0.0 or not den > 0.0:
            return _UNKNOWN
        value = num / den
        # the co-moment about the means, from the cross sum about the references
        cross = self.extras[k, E_CROSS] - self._row(k, S_LOSS)[2] * self._row(k, S_HIT)[2] / n
        spread = max(m_num - 2.0 * value * cross + value * value * m_den, 0.0)
        se = math.sqrt(spread / (n - 1.0)) / (math.sqrt(n) * den) if n > 1.0 else math.nan
        return m.Estimate.normal(value, se)

    def diagnose(self, k: int, hit: bool, what: str) -> Diagnostics:
        """:func:`ipabs.analytics.weights.diagnose` of tranche ``k``'s loss share (or, with
        ``hit``, of its loss indicator)."""
        s = S_HIT if hit else S_LOSS
        est = self.mean(k, s)
        n, _, _ = self._moments(k, s)
        w_n, w_mean, _ = self._moments(None, PS_WEIGHT)
        plain_second = est.value if hit else self.mean(k, S_LOSS_SQ).value
        sums = WeightedSums(
            paths=int(n),
            hits=int(self.extras[k, E_HIT_PATHS if hit else E_LOSS_PATHS]),
            total=est.value * n,
            total_sq=self.sum_sq(k, s),
            largest=float(self.extras[k, E_HIT_LARGEST if hit else E_LARGEST]),
            se=est.se,
            weight_total=w_mean * w_n,
            weight_sq=self.sum_sq(None, PS_WEIGHT),
            weight_se=self.mean(None, PS_WEIGHT).se,
            plain_second=plain_second,
        )
        return diagnose_sums(sums, not self.unit_weights, what)

    def variance_reduction(self, k: int, balance: float) -> float:
        """:func:`ipabs.analytics.importance.variance_reduction` of tranche ``k``'s loss share."""
        if self.unit_weights:
            return 1.0
        if not balance > 0.0:
            return math.nan
        n, mean, _ = self._moments(k, S_LOSS)
        plain = self.mean(k, S_LOSS_SQ).value - mean * mean
        weighted = self.sum_sq(k, S_LOSS) / n - mean * mean
        return plain / weighted if weighted > 0.0 else math.nan

    def default_count_rows(self) -> list[dict[str, Any]]:
        """``P(N = k)`` for each number of defaults seen (rows of
        :func:`ipabs.analytics.tables.default_count_distribution`)."""
        n = float(self.paths)
        rows = []
        for key in sorted(self.counts):
            total, square = self.counts[key]
            value = total / n
            spread = max(square - total * total / n, 0.0)
            se = math.sqrt(spread / (n - 1.0)) / math.sqrt(n) if n > 1.0 else math.nan
            e = m.Estimate.normal(value, se)
            rows.append(
                {
                    "defaults": int(key),
                    "probability": e.value,
                    "se": e.se,
                    "ci_low": e.ci_low,
                    "ci_high": e.ci_high,
                }
            )
        return rows


def block_of_sums(tr: np.ndarray, pool: np.ndarray, scale: np.ndarray) -> RunSums:
    """The sums of one block of paths."""
    n_tr = scale.shape[0]
    sums = np.zeros((n_tr * N_SERIES + N_POOL_SERIES, 4))
    extras = np.zeros((n_tr, N_EXTRAS))
    block_sums(tr, pool, scale, LOSS_EPS, sums, extras)
    w = pool[:, P_WEIGHT]
    keys, index = np.unique(pool[:, P_DEFAULTS], return_inverse=True)
    total = np.bincount(index, weights=w, minlength=len(keys))
    square = np.bincount(index, weights=w * w, minlength=len(keys))
    counts = {float(key): np.array([total[i], square[i]]) for i, key in enumerate(keys)}
    return RunSums(len(w), sums, extras, bool(np.all(w == 1.0)), counts)


class Accumulator:
    """Takes a run's outcomes a block at a time (in any order, from any thread) and merges
    them in path order.

    Parameters
    ----------
    balances : ndarray
        Each tranche's original balance.
    """

    def __init__(self, balances: np.ndarray) -> None:
        balances = np.asarray(balances, dtype=np.float64)
        self.scale = np.where(balances > 0.0, 1.0 / np.where(balances > 0.0, balances, 1.0), 0.0)
        self.balances = balances
        self._blocks: dict[int, RunSums] = {}

    def add(self, first: int, tr: np.ndarray, pool: np.ndarray) -> None:
        """Paths ``first .. first + len(pool) - 1``; ``first`` is a multiple of :data:`BLOCK`
        and so is the number of paths, except at the end of the run."""
        if first % BLOCK:
            raise ValueError(f"blocks of sums start on multiples of {BLOCK}, not at {first}")
        for lo in range(0, len(pool), BLOCK):
            hi = min(lo + BLOCK, len(pool))
            self._blocks[(first + lo) // BLOCK] = block_of_sums(tr[lo:hi], pool[lo:hi], self.scale)

    def put(self, first: int, sums: RunSums) -> None:
        """The sums of the block of paths from ``first`` (a multiple of :data:`BLOCK`), reduced
        elsewhere (by :func:`block_of_sums`)."""
        if first % BLOCK:
            raise ValueError(f"blocks of sums start on multiples of {BLOCK}, not at {first}")
        self._blocks[first // BLOCK] = sums

    def result(self) -> RunSums:
        """Every block's sums merged, in path order."""
        out = RunSums.empty(len(self.scale))
        for i in sorted(self._blocks):
            out.merge(self._blocks[i])
        return out


# ---- quantiles


class QuantileSource(Protocol):
    """Quantiles and expected shortfall of a run's columns: ``loss_rate`` and ``defaults`` of
    the pool, ``wal.K`` and ``yield.K`` of tranche K (over the paths where they are defined)."""

    def quantile(self, column: str, q: float) -> m.Estimate: ...

    def shortfall(self, column: str, level: float) -> m.Estimate: ...


class _Quantiles(ABC):
    """Quantiles and shortfalls of a run's columns, each column's levels found together."""

    weighted: bool

    def __init__(self) -> None:
        self._quantiles: dict[str, dict[float, m.Estimate]] = {}
        self._shortfalls: dict[str, dict[float, m.Estimate]] = {}

    @abstractmethod
    def _sample(self, column: str) -> Any:
        """The values of ``column`` (with the weights when weighted), as selection reads them."""

    def quantile(self, column: str, q: float) -> m.Estimate:
        known = self._quantiles.setdefault(column, {})
        if q not in known:
            levels = sorted({q, *LEVELS, *DISTRIBUTION_QUANTILES} - set(known))
            known.update(
                zip(levels, selection.quantiles(self._sample(column), levels, self.weighted), strict=True)
            )
        return known[q]

    def shortfall(self, column: str, level: float) -> m.Estimate:
        known = self._shortfalls.setdefault(column, {})
        if level not in known:
            levels = sorted({level, *LEVELS} - set(known))
            qs = None if self.weighted else [self.quantile(column, a).value for a in levels]
            found = selection.expected_shortfalls(self._sample(column), levels, self.weighted, qs)
            known.update(zip(levels, found, strict=True))
        return known[level]


class MemoryQuantiles(_Quantiles):
    """:class:`QuantileSource` of the per-path arrays in memory."""

    def __init__(self, tr: np.ndarray, pool: np.ndarray) -> None:
        super().__init__()
        self.tr = tr
        self.pool = pool
        self.weighted = not bool(np.all(pool[:, P_WEIGHT] == 1.0))

    def _sample(self, column: str) -> selection.ArraySample:
        w = self.pool[:, P_WEIGHT]
        if column == "loss_rate":
            x = self.pool[:, P_LOSS_RATE]
        elif column == "defaults":
            x = self.pool[:, P_DEFAULTS]
        else:
            name, k = column.split(".")
            x = self.tr[:, int(k), O_WAL if name == "wal" else O_YIELD]
            ok = ~np.isnan(x)
            x, w = x[ok], w[ok]
        return selection.ArraySample(
            np.ascontiguousarray(x), np.ascontiguousarray(w) if self.weighted else None
        )


def quantile_columns(n_tranches: int) -> list[str]:
    """The columns a streamed run keeps for its quantiles (with ``weight``)."""
    return ["loss_rate", "defaults", "weight"] + [
        f"{c}.{k}" for k in range(n_tranches) for c in ("wal", "yield")
    ]


def quantile_column_values(tr: np.ndarray, pool: np.ndarray) -> dict[str, np.ndarray]:
    """Each quantile column's values for a block of paths (see :func:`quantile_columns`)."""
    out = {"loss_rate": pool[:, P_LOSS_RATE], "defaults": pool[:, P_DEFAULTS], "weight": pool[:, P_WEIGHT]}
    for k in range(tr.shape[1]):
        out[f"wal.{k}"] = tr[:, k, O_WAL]
        out[f"yield.{k}"] = tr[:, k, O_YIELD]
    return {name: np.ascontiguousarray(v) for name, v in out.items()}


def write_quantile_columns(
    columns: selection.DiskColumns, first: int, tr: np.ndarray, pool: np.ndarray
) -> None:
    """Write the rows of paths ``first ..`` of every quantile column."""
    for name, values in quantile_column_values(tr, pool).items():
        columns.write(name, first, values)


class DiskQuantiles(_Quantiles):
    """:class:`QuantileSource` of the columns a streamed run kept on disk (a column's quantiles
    at every level the tables ask for come from the same few passes over it)."""

    def __init__(self, columns: selection.DiskColumns, weighted: bool) -> None:
        super().__init__()
        self.columns = columns
        self.weighted = weighted

    def _sample(self, column: str) -> selection.Sample:
        weight = "weight" if self.weighted else None
        return selection.Sample(
            self.columns, column, weight, drop_nan=column not in ("loss_rate", "defaults")
        )


# ---- the tables


def _diagnostic_columns(el: Diagnostics, pl: Diagnostics) -> dict[str, Any]:
    problems = list(dict.fromkeys(el.problems + pl.problems))
    return {
        "loss_paths": el.hits,
        "hit_ess": el.hit_ess,
        "max_weight_share": el.max_share,
        "se_vs_plain": el.se_vs_plain,
        "reliable": not problems,
        "diagnostics": "; ".join(problems),
    }


def _loss_mean(sums: RunSums, k: int, s: int, balance: float) -> m.Estimate:
    # a tranche of no balance has no loss share: nan, as the per-path division gives
    return sums.mean(k, s) if balance > 0.0 else m.Estimate.normal(math.nan, math.nan)


def tranche_summary(sums: RunSums, names: list[str], balances: np.ndarray) -> list[dict[str, Any]]:
    """Per tranche: expected loss, probability of loss, expected WAL and mean yield with their
    errors, the variance reduction and the diagnostics (``SimulationResult.tranche_summary``)."""
    rows = []
    for k, name in enumerate(names):
        balance = float(balances[k])
        el = _loss_mean(sums, k, S_LOSS, balance)
        pl = sums.mean(k, S_HIT)
        ew = sums.conditional_mean(k, S_WAL)
        my = sums.conditional_mean(k, S_YIELD)
        rows.append(
            {
                "tranche": name,
                "original_balance": balance,
                "expected_loss": el.value,
                "expected_loss_se": el.se,
                "probability_of_loss": pl.value,
                "probability_of_loss_se": pl.se,
                "expected_wal_years": ew.value,
                "expected_wal_se": ew.se,
                "mean_yield": my.value,
                "mean_yield_se": my.se,
                "expected_loss_vrf": sums.variance_reduction(k, balance),
                **_diagnostic_columns(
                    sums.diagnose(k, False, "its expected loss"),
                    sums.diagnose(k, True, "its loss probability"),
                ),
            }
        )
    return rows


def pool_summary(sums: RunSums, source: QuantileSource) -> dict[str, Any]:
    """Expected loss, loss quantiles and expected shortfall, the mean weight, expected default
    rate and number of defaults (``SimulationResult.pool_summary``)."""
    el = sums.mean(None, PS_LOSS)
    row: dict[str, Any] = {"expected_loss": el.value, "expected_loss_se": el.se}
    for q in LEVELS:
        row[f"loss_q{label(q)}"] = source.quantile("loss_rate", q).value
    for q in LEVELS:
        row[f"expected_shortfall_{label(q)}"] = source.shortfall("loss_rate", q).value
    mw = sums.mean(None, PS_WEIGHT)
    dr = sums.mean(None, PS_DEFAULT_RATE)
    nd = sums.mean(None, PS_DEFAULTS)
    row.update(
        {
            "mean_weight": mw.value,
            "mean_weight_se": mw.se,
            "expected_default_rate": dr.value,
            "expected_default_rate_se": dr.se,
            "expected_defaults": nd.value,
            "expected_defaults_se": nd.se,
        }
    )
    return row


def metric_rows(
    sums: RunSums, source: QuantileSource, names: list[str], balances: np.ndarray
) -> list[dict[str, Any]]:
    """Every tranche and pool metric (the rows of :func:`ipabs.analytics.tables.risk_metrics`,
    in its order)."""
    rows: list[dict[str, Any]] = []
    for k, name in enumerate(names):
        balance = float(balances[k])
        part = [
            metric_row(name, "expected_loss", _loss_mean(sums, k, S_LOSS, balance)),
            metric_row(name, "discounted_expected_loss", _loss_mean(sums, k, S_DISCOUNTED_LOSS, balance)),
            metric_row(name, "probability_of_loss", sums.mean(k, S_HIT)),
            metric_row(name, "loss_given_loss", sums.loss_given_loss(k) if balance > 0.0 else _UNKNOWN),
            metric_row(name, "expected_wal_years", sums.conditional_mean(k, S_WAL)),
        ]
        part += [
            metric_row(name, f"wal_years_q{label(q)}", source.quantile(f"wal.{k}", q))
            for q in DISTRIBUTION_QUANTILES
        ]
        part.append(metric_row(name, "mean_yield", sums.conditional_mean(k, S_YIELD)))
        part += [
            metric_row(name, f"yield_q{label(q)}", source.quantile(f"yield.{k}", q))
            for q in DISTRIBUTION_QUANTILES
        ]
        part.append(metric_row(name, "mean_duration_years", sums.conditional_mean(k, S_DURATION)))
        el = sums.diagnose(k, False, "its expected loss")
        pl = sums.diagnose(k, True, "its loss probability")
        part += diagnostic_rows(name, part, el, pl)
        rows += part
    rows.append(metric_row("pool", "expected_loss", sums.mean(None, PS_LOSS)))
    rows += [metric_row("pool", f"loss_q{label(a)}", source.quantile("loss_rate", a)) for a in LEVELS]
    rows += [
        metric_row("pool", f"expected_shortfall_{label(a)}", source.shortfall("loss_rate", a)) for a in LEVELS
    ]
    rows.append(metric_row("pool", "expected_default_rate", sums.mean(None, PS_DEFAULT_RATE)))
    rows.append(metric_row("pool", "expected_defaults", sums.mean(None, PS_DEFAULTS)))
    rows += [metric_row("pool", f"defaults_q{label(q)}", source.quantile("defaults", q)) for q in LEVELS]
    return rows
