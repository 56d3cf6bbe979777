"""Exact tail probabilities of heterogeneous credit pools, the yardstick of the importance-sampling
battery (``tests/test_importance_battery.py``, ``benchmarks/importance_battery.py``).

Obligor *i* has exposure ``c_i`` (a whole number of units), an annual default probability
``p_i`` and defaults by the horizon when ``a_i Z + sqrt(1 - a_i^2) e_i < Phi^-1(p_i)``, one
Gaussian factor ``Z``. Given ``Z`` the defaults are independent, so the conditional distribution
of the pool loss ``L = sum c_i 1{default_i}`` is an exact convolution of two-point laws; the
factor is integrated by Gauss-Legendre quadrature against the normal density. An optional
guarantor covers every loss unless it defaults itself.

Plain NumPy/SciPy, independent of the package under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats


@dataclass(frozen=True)
class Portfolio:
    """A one-factor pool: exposures in units, annual PDs, factor loadings; ``attach`` is the
    senior's attachment in units (the senior loses when ``L > attach``)."""

    exposure: np.ndarray  # (N,) positive integers
    pd: np.ndarray  # (N,)
    loading: np.ndarray  # (N,)
    attach: int
    guarantor_pd: float | None = None
    guarantor_loading: float = 0.0

    @property
    def total(self) -> int:
        return int(self.exposure.sum())

    @property
    def expected_loss(self) -> float:
        """Unconditional expected pool loss (units), guarantees ignored."""
        return float(self.exposure @ self.pd)


def _nodes(n: int, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    x, w = special.roots_legendre(n)
    z = half_width * x
    return z, half_width * w * stats.norm.pdf(z)


def conditional_pd(p: np.ndarray, a: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(nodes, N) conditional default probabilities."""
    with np.errstate(divide="ignore"):
        threshold = stats.norm.ppf(p)
    return stats.norm.cdf((threshold[None, :] - a[None, :] * z[:, None]) / np.sqrt(1.0 - a * a)[None, :])


def tail_table(portfolio: Portfolio, top: int, nodes: int = 401, half_width: float = 9.0) -> np.ndarray:
    """Exact ``P(L > a)`` and ``E[(L - a)+]`` (units) for every attachment ``a = 0 .. top``,
    guarantor included: shape ``(top + 1, 2)``.

    The conditional distribution is tracked on ``0 .. top`` only (everything above lumped),
    which is all both figures need: ``E[(L - a)+] = E[L] - a + E[(a - L)+]``.
    """
    z, w = _nodes(nodes, half_width)
    c = portfolio.exposure.astype(np.int64)
    pz = conditional_pd(portfolio.pd, portfolio.loading, z)  # (nodes, N)
    dist = np.zeros((len(z), top + 1))
    dist[:, 0] = 1.0
    moved = np.empty_like(dist)
    for i in range(len(c)):
        p = pz[:, i : i + 1]
        moved[:] = 0.0
        if c[i] <= top:
            moved[:, c[i] :] = dist[:, : top + 1 - c[i]]
        dist *= 1.0 - p
        dist += moved * p
    cdf = np.cumsum(dist, axis=1)  # P(L <= a | z)
    tail = np.clip(1.0 - cdf, 0.0, 1.0)
    mean_loss = pz @ c.astype(np.float64)
    a = np.arange(top + 1, dtype=np.float64)
    # E[(a - L)+ | z] = sum_{l <= a} (a - l) P(L = l | z) = sum_{l < a} P(L <= l | z)
    shortfall = np.concatenate([np.zeros((len(z), 1)), np.cumsum(cdf, axis=1)[:, :-1]], axis=1)
    excess = np.maximum(mean_loss[:, None] - a[None, :] + shortfall, 0.0)
    if portfolio.guarantor_pd is not None:
        g = conditional_pd(np.array([portfolio.guarantor_pd]), np.array([portfolio.guarantor_loading]), z)
        tail, excess = tail * g, excess * g
    return np.stack([w @ tail, w @ excess], axis=1)


def senior_tail(portfolio: Portfolio, nodes: int = 401) -> tuple[float, float]:
    """Exact ``P(L > attach)`` and ``E[(L - attach)+]`` (units)."""
    row = tail_table(portfolio, portfolio.attach, nodes)[-1]
    return float(row[0]), float(row[1])


def make_portfolio(
    n: int,
    groups: int | None,
    target: float,
    *,
    max_pd: float = 0.02,
    max_exposure: int = 25,
    loading: float = 0.3,
    guarantor_pd: float | None = None,
    seed: int = 0,
) -> tuple[Portfolio, float, float]:
    """A pool of ``n`` obligors with PDs in (0, max_pd] and exposures 1..max_exposure.

    ``groups``: how many distinct PD values the obligors take (None: one per obligor; 1: a
    homogeneous pool, every exposure equal). The senior attachment is the smallest whole number
    of units whose exact tail probability is at most ``target``; returns the portfolio, its
    exact senior loss probability and its exact senior expected loss (units).
    """
    rng = np.random.default_rng(seed)
    if groups == 1:
        pd = np.full(n, max_pd / 2)
        exposure = np.full(n, max(1, max_exposure // 2), dtype=np.int64)
    else:
        k = n if groups is None else groups
        levels = np.round(max_pd * rng.uniform(0.05, 1.0, size=k), 6)
        pd = levels[np.arange(n) % k]
        exposure = rng.integers(1, max_exposure + 1, size=n)
    a = np.full(n, loading)
    total = int(exposure.sum())
    # senior attachments of interest lie far below the whole pool: track only that far
    top = min(total - 1, int(40 * float(exposure @ pd)) + 4 * max_exposure)
    base = Portfolio(exposure, pd, a, top, guarantor_pd, loading)
    table = tail_table(base, top)
    ok = np.nonzero(table[:, 0] <= target)[0]
    if len(ok) == 0:
        raise ValueError("no attachment has a tail probability this small")
    attach = int(ok[0])
    return (
        Portfolio(exposure, pd, a, attach, guarantor_pd, loading),
        float(table[attach, 0]),
        float(table[attach, 1]),
    )


def deal_yaml(portfolio: Portfolio, unit: float = 1_000_000.0) -> str:
    """The portfolio as an ipabs deal: zero-rate one-year bullet loans (one annual period on
    ACT/365, so each annual PD is the PD to the horizon), recovery 0, a senior and a junior
    zero-coupon note paid sequentially: the senior loses ``(L - attach)+`` units."""
    loans = "\n".join(
        f"      - {{obligor: B{i}, balance: {int(c) * unit:.0f}, rate: 0, term_months: 12, "
        f"amortisation: bullet, payment_frequency: annual, pd: {float(p)!r}"
        + (", guarantee: {guarantor: G, share: 1.0, lag_months: 0}" if portfolio.guarantor_pd else "")
        + "}"
        for i, (c, p) in enumerate(zip(portfolio.exposure, portfolio.pd, strict=True))
    )
    obligors = ""
    if portfolio.guarantor_pd is not None:
        obligors = f"obligors:\n  - {{name: G, pd: {portfolio.guarantor_pd!r}}}\n"
    junior = portfolio.attach * unit
    senior = portfolio.total * unit - junior
    rho = float(portfolio.loading[0]) ** 2
    return f"""deal:
  name: importance battery
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2026-01-01
{obligors}pools:
  - name: pool
    loans:
{loans}
tranches:
  - name: senior
    balance: {senior:.0f}
  - name: junior
    balance: {junior:.0f}
risk:
  correlation: {rho!r}
  recovery: {{model: constant, rate: 0, lag_months: 0}}
waterfalls:
  normal:
    - pay_principal: senior
    - pay_principal: junior
"""


def z_score(value: float, exact: float, se: float) -> float:
    return (value - exact) / se if se > 0 else (0.0 if value == exact else math.inf)
