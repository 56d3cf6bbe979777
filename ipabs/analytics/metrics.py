"""Monte Carlo estimators with their uncertainty: means, ratios, quantiles, expected shortfall.

Every estimator takes optional likelihood-ratio weights ``w`` (importance sampling; ``None`` or
all ones for plain sampling) and returns its estimate with a standard error; 95% intervals are
``estimate +/- 1.96 se`` except for quantiles of plain samples, whose interval comes from order
statistics (distribution-free).

- means ``E[x]``: ``mean(w x)``, standard error ``sd(w x) / sqrt(n)``;
- conditional means ``E[x | x defined]`` (WAL, yield, duration): the self-normalised ratio
  ``sum(w x) / sum(w)`` over the paths where ``x`` is defined, with its delta-method error.
  Under importance sampling this is a different estimator from the means above: where ``x``
  equals a loss path by path, the two figures differ by the factor ``mean(w)``, whose distance
  from one is within its standard error (reported as ``mean_weight`` with the run). It is used
  because a constant ``x`` (a duration every path shares, say) then comes out exactly;
- quantiles: plain samples use the linear interpolation of :func:`numpy.quantile` with the
  binomial order-statistic interval; weighted samples invert the weighted empirical
  distribution, with an error from batch means over :data:`BATCHES` contiguous batches;
- expected shortfall at level ``a``: the mean of the worst ``1 - a`` share of the
  distribution; plain samples use the asymptotic error
  ``sqrt((Var(L | L >= q) + a (q - ES)^2) / (n (1 - a)))``, weighted samples batch means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
BATCHES = 20  # batches for batch-means errors of weighted quantiles and shortfalls


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate with its standard error and 95% interval."""

    value: float
    se: float
    ci_low: float
    ci_high: float

    @classmethod
    def normal(cls, value: float, se: float) -> Estimate:
        """Estimate with the normal-approximation interval ``value +/- 1.96 se``."""
        return cls(value, se, value - Z95 * se, value + Z95 * se)


_UNKNOWN = Estimate(math.nan, math.nan, math.nan, math.nan)  # nothing to estimate from


def _weights(x: np.ndarray, w: np.ndarray | None) -> np.ndarray | None:
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    if w.shape != x.shape:
        raise ValueError(f"weights of shape {w.shape} for values of shape {x.shape}")
    return None if np.all(w == 1.0) else w


def mean(x: np.ndarray, w: np.ndarray | None = None) -> Estimate:
    """Unbiased estimate of ``E[x]`` (nan for an empty sample).

    Parameters
    ----------
    x : ndarray
        One value per path.
    w : ndarray, optional
        Likelihood-ratio weight of each path.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return _UNKNOWN
    w = _weights(x, w)
    y = x if w is None else w * x
    value = float(y.mean())
    se = float(y.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return Estimate.normal(value, se)


def conditional_mean(x: np.ndarray, w: np.ndarray | None = None) -> Estimate:
    """``E[x | x is not nan]``: the mean over the paths where ``x`` is defined (a WAL needs
    principal, a yield a price). Plain samples: the sample mean of those paths; weighted:
    the self-normalised ratio with its delta-method error."""
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    w = _weights(x, w)
    if w is None:
        return mean(x[ok])
    x, w = x[ok], w[ok]
    total = w.sum()
    if len(x) == 0 or not total > 0.0:
        return _UNKNOWN
    value = float((w * x).sum() / total)
    se = float(math.sqrt(((w * (x - value)) ** 2).sum()) / total)
    return Estimate.normal(value, se)


def ratio(num: np.ndarray, den: np.ndarray, w: np.ndarray | None = None) -> Estimate:
    """``E[num] / E[den]`` with its delta-method error (e.g. loss given loss:
    ``E[L] / P(L > 0)``); nan when ``E[den]`` is zero."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    n = len(num)
    w = _weights(num, w)
    if w is not None:
        num, den = w * num, w * den
    d = den.mean() if n else 0.0
    if not d > 0.0:
        return _UNKNOWN
    value = float(num.mean() / d)
    resid = num - value * den
    se = float(resid.std(ddof=1) / (math.sqrt(n) * d)) if n > 1 else math.nan
    return Estimate.normal(value, se)


def _weighted_quantile(x: np.ndarray, q: float, w: np.ndarray) -> float:
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order])
    total = cum[-1]
    i = int(np.searchsorted(cum, q * total, side="left"))
    return float(x[order[min(i, len(x) - 1)]])


def quantile(x: np.ndarray, q: float, w: np.ndarray | None = None) -> Estimate:
    """Quantile of level ``q`` in (0, 1) with its interval (see the module notes)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return _UNKNOWN
    w = _weights(x, w)
    if w is None:
        value = float(np.quantile(x, q))
        s = np.sort(x)
        half = Z95 * math.sqrt(n * q * (1.0 - q))
        # 1-based order statistics j and k bracket the quantile with 95% confidence
        lo = s[min(max(math.floor(n * q - half), 1), n) - 1]
        hi = s[min(max(math.ceil(n * q + half), 1), n) - 1]
        return Estimate(value, float(hi - lo) / (2 * Z95), float(min(lo, value)), float(max(hi, value)))
    value = _weighted_quantile(x, q, w)
    return _batched(value, [_weighted_quantile(xb, q, wb) for xb, wb in _batches(x, w)])


def expected_shortfall(x: np.ndarray, level: float, w: np.ndarray | None = None) -> Estimate:
    """Mean of the worst ``1 - level`` share of the distribution of ``x`` (large is bad)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return _UNKNOWN
    w = _weights(x, w)
    if w is None:
        s = np.sort(x)[::-1]
        m = n * (1.0 - level)  # the tail holds m paths, the last one fractionally
        whole = math.floor(m)
        tail_sum = s[:whole].sum() + (m - whole) * (s[whole] if whole < n else 0.0)
        value = float(tail_sum / m) if m > 0 else float(s[0])
        q = float(np.quantile(x, level))
        tail = x[x >= q]
        var = float(tail.var()) if len(tail) > 1 else 0.0
        se = math.sqrt((var + level * (q - value) ** 2) / (n * (1.0 - level))) if level < 1.0 else math.nan
        return Estimate.normal(value, se)
    value = _weighted_shortfall(x, level, w)
    return _batched(value, [_weighted_shortfall(xb, level, wb) for xb, wb in _batches(x, w)])


def _weighted_shortfall(x: np.ndarray, level: float, w: np.ndarray) -> float:
    q = _weighted_quantile(x, level, w)
    tail = x >= q
    total = w[tail].sum()
    return float((w[tail] * x[tail]).sum() / total) if total > 0 else math.nan


def _batches(x: np.ndarray, w: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    edges = np.linspace(0, len(x), BATCHES + 1).astype(np.int64)
    return [(x[a:b], w[a:b]) for a, b in pairwise(edges) if b > a]


def _batched(value: float, per_batch: list[float]) -> Estimate:
    b = np.array([v for v in per_batch if not math.isnan(v)])
    if len(b) < 2:
        return Estimate(value, math.nan, math.nan, math.nan)
    return Estimate.normal(value, float(b.std(ddof=1) / math.sqrt(len(b))))
