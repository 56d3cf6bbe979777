"""Closed-form yardsticks for the Monte Carlo tests (see docs: one-factor Gaussian copula,
Vasicek large pool, exact finite pool, Student-t copula).

Imported by the test modules as ``import mc_reference`` (pytest puts ``tests/`` on the path).
Everything here is plain NumPy/SciPy, independent of the package under test.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from scipy import integrate, special, stats

# --------------------------------------------------------------------------- quadrature


@functools.lru_cache(maxsize=8)
def factor_nodes(n: int = 4001, half_width: float = 9.0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights integrating against the standard normal density.

    Gauss–Legendre on ``[-half_width, half_width]`` times the density: the mass outside is
    below 1e-18, and many nodes resolve the sharp conditional distributions of large pools.
    The weights sum to 1 (to about 1e-15).
    """
    x, w = special.roots_legendre(n)
    z = half_width * x
    weights = half_width * w * stats.norm.pdf(z)
    z.flags.writeable = False
    weights.flags.writeable = False
    return z, weights


def conditional_pd(p: float, rho: float, z: np.ndarray | float) -> np.ndarray:
    """``P(default | Z = z) = Phi((Phi^-1(p) - sqrt(rho) z) / sqrt(1 - rho))``."""
    return stats.norm.cdf((stats.norm.ppf(p) - math.sqrt(rho) * np.asarray(z)) / math.sqrt(1.0 - rho))


# --------------------------------------------------------------------------- finite pool


def finite_pool_distribution(n: int, p: float, rho: float) -> np.ndarray:
    """``P(D = d)`` for ``d = 0..n`` defaults among ``n`` equal obligors (one-factor Gaussian
    copula): the conditional binomial integrated over the factor."""
    z, w = factor_nodes()
    pz = conditional_pd(p, rho, z)[:, None]
    d = np.arange(n + 1)[None, :]
    log_choose = special.gammaln(n + 1) - special.gammaln(d + 1) - special.gammaln(n - d + 1)
    with np.errstate(divide="ignore"):
        log_pmf = log_choose + special.xlogy(d, pz) + special.xlog1py(n - d, -pz)  # (nodes, n+1)
    return w @ np.exp(log_pmf)


def finite_pool_expectation(n: int, p: float, rho: float, f: Callable[[np.ndarray], np.ndarray]) -> float:
    """``E[f(D)]`` for the number of defaults ``D`` of the finite pool."""
    d = np.arange(n + 1)
    return float(finite_pool_distribution(n, p, rho) @ f(d))


def finite_pool_tranche_loss(
    n: int, p: float, rho: float, lgd_per_obligor: float, attach: float, detach: float
) -> float:
    """Exact expected loss (money) of the tranche ``[attach, detach]`` (money) of the pool."""

    def loss(d: np.ndarray) -> np.ndarray:
        pool = lgd_per_obligor * d
        return np.minimum(pool, detach) - np.minimum(pool, attach)

    return finite_pool_expectation(n, p, rho, loss)


# --------------------------------------------------------------------------- Vasicek large pool


def vasicek_cdf(x: float, p: float, rho: float, lgd: float = 1.0) -> float:
    """``P(L <= x)`` of the large-pool loss fraction ``L``."""
    if x >= lgd:
        return 1.0
    if x <= 0.0:
        return 0.0
    return float(
        stats.norm.cdf((math.sqrt(1.0 - rho) * stats.norm.ppf(x / lgd) - stats.norm.ppf(p)) / math.sqrt(rho))
    )


def vasicek_quantile(alpha: float, p: float, rho: float, lgd: float = 1.0) -> float:
    """Quantile of the large-pool loss fraction at level ``alpha``."""
    return float(
        lgd
        * stats.norm.cdf((stats.norm.ppf(p) + math.sqrt(rho) * stats.norm.ppf(alpha)) / math.sqrt(1.0 - rho))
    )


def bivariate_normal_cdf(a: float, b: float, r: float) -> float:
    """``Phi2(a, b; r)`` from SciPy (Genz's algorithm, absolute error about 1e-8 here)."""
    return float(
        stats.multivariate_normal.cdf(
            [a, b], mean=[0.0, 0.0], cov=[[1.0, r], [r, 1.0]], abseps=1e-10, releps=1e-10
        )
    )


def vasicek_expected_min(k: float, p: float, rho: float, lgd: float = 1.0) -> float:
    """``E[min(L, K)]`` of the large-pool loss fraction."""
    if k >= lgd:
        return p * lgd
    if k <= 0.0:
        return 0.0
    c = stats.norm.ppf(p)
    a = (c - math.sqrt(1.0 - rho) * stats.norm.ppf(k / lgd)) / math.sqrt(rho)
    return float(lgd * bivariate_normal_cdf(c, -a, -math.sqrt(rho)) + k * stats.norm.cdf(a))


def vasicek_tranche_loss(attach: float, detach: float, p: float, rho: float, lgd: float = 1.0) -> float:
    """Expected loss of the tranche ``[attach, detach]`` as a fraction of the pool."""
    return vasicek_expected_min(detach, p, rho, lgd) - vasicek_expected_min(attach, p, rho, lgd)


# --------------------------------------------------------------------------- joint defaults


def joint_default_gaussian(p1: float, p2: float, r: float) -> float:
    """``P(both default)`` for latent correlation ``r``: ``Phi2(Phi^-1(p1), Phi^-1(p2); r)``."""
    return bivariate_normal_cdf(float(stats.norm.ppf(p1)), float(stats.norm.ppf(p2)), r)


def joint_default_gaussian_integral(p1: float, p2: float, r: float) -> float:
    """The same through the one-factor representation (an independent check, ``r >= 0``)."""
    c1, c2 = stats.norm.ppf(p1), stats.norm.ppf(p2)
    s, e = math.sqrt(r), math.sqrt(1.0 - r)

    def f(z: float) -> float:
        return float(stats.norm.pdf(z) * stats.norm.cdf((c1 - s * z) / e) * stats.norm.cdf((c2 - s * z) / e))

    return float(integrate.quad(f, -12.0, 12.0, epsabs=1e-13, epsrel=1e-11, limit=200)[0])


def joint_default_student_t(p: float, r: float, dof: float) -> float:
    """``P(both default)`` under a Student-t copula with ``dof`` degrees of freedom: the
    bivariate t CDF at ``(t^-1(p), t^-1(p))``, as an integral over the mixing variable
    ``W ~ chi2(dof)``: ``E[Phi2(c s, c s; r)]`` with ``s = sqrt(W/dof)``, the inner ``Phi2``
    again through the one-factor representation (``r >= 0``)."""
    c = float(stats.t.ppf(p, dof))
    sq, e = math.sqrt(r), math.sqrt(1.0 - r)
    z, wz = factor_nodes(801)

    def f(w: float) -> float:
        a = c * math.sqrt(w / dof)
        return float(wz @ special.ndtr((a - sq * z) / e) ** 2) * float(stats.chi2.pdf(w, dof))

    upper = float(stats.chi2.ppf(1.0 - 1e-15, dof))
    return float(integrate.quad(f, 0.0, upper, epsabs=1e-13, epsrel=1e-10, limit=400)[0])


def joint_default_student_t_scipy(p: float, r: float, dof: float) -> float:
    """The same with SciPy's multivariate t CDF (quasi-Monte Carlo, about 1e-5 accurate)."""
    c = float(stats.t.ppf(p, dof))
    return float(
        stats.multivariate_t.cdf(
            [c, c], loc=[0.0, 0.0], shape=[[1.0, r], [r, 1.0]], df=dof, maxpts=2_000_000, random_state=12345
        )
    )


# --------------------------------------------------------------------------- recoveries


def lognormal_call(mean: float, sigma: float, strike: float) -> float:
    """``E[max(V - strike, 0)]`` for lognormal ``V`` with mean ``mean`` and sd of log ``sigma``."""
    if strike <= 0.0:
        return mean - strike
    d1 = (math.log(mean / strike) + 0.5 * sigma * sigma) / sigma
    return float(mean * stats.norm.cdf(d1) - strike * stats.norm.cdf(d1 - sigma))


# --------------------------------------------------------------------------- PD term structure


def cumulative_pd_annual(p: float, years: np.ndarray) -> np.ndarray:
    """Cumulative PD at ``years`` from an annual PD by the hazard rule ``1 - (1 - p)^t``."""
    return 1.0 - (1.0 - p) ** np.asarray(years, dtype=np.float64)


def cumulative_pd_curve(curve: list[float], years: np.ndarray) -> np.ndarray:
    """Cumulative PD at ``years`` from cumulative PDs at year ends, constant hazard within each
    year and the last year's hazard after the curve ends."""
    cum = [0.0, *curve]
    out = []
    for t in np.asarray(years, dtype=np.float64):
        k = min(math.floor(t), len(curve) - 1)
        hazard = -math.log((1.0 - cum[k + 1]) / (1.0 - cum[k]))
        out.append(1.0 - (1.0 - cum[k]) * math.exp(-hazard * (t - k)))
    return np.array(out)


def binomial_se(p: float, n: int) -> float:
    """Standard error of a frequency estimate of ``p`` from ``n`` independent trials."""
    return math.sqrt(p * (1.0 - p) / n)
