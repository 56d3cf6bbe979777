"""Kernels: the standard normal distribution function and its inverse."""

from __future__ import annotations

import math

import numpy as np

from ipabs._jit import njit

_SQRT1_2 = 1.0 / math.sqrt(2.0)

# Acklam's rational approximation to the inverse normal distribution function
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
# below this probability (and above one minus it) Acklam's tail formula applies
ACKLAM_TAIL = 0.02425


@njit(leaf=True)
def norm_cdf(x: float) -> float:
    """Standard normal distribution function Phi(x)."""
    return 0.5 * math.erfc(-x * _SQRT1_2)


@njit(leaf=True)
def norm_ppf(p: float) -> float:
    """Inverse of Phi: Acklam's approximation refined by one Halley step (about 1e-15 relative;
    about 1e-9 for subnormal ``p`` below 2.2e-308, where the refinement cannot be evaluated).

    Returns -inf for p <= 0 and +inf for p >= 1. The upper half uses the symmetry
    ``ppf(p) = -ppf(1 - p)``, where ``1 - p`` is exact, so the tail keeps full precision.
    """
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    if p > 0.5:
        return -_lower_ppf(1.0 - p)
    return _lower_ppf(p)


@njit(leaf=True)
def norm_ppf_fast(p: float) -> float:
    """Acklam's approximation to the inverse of Phi without refinement (1.2e-9 relative):
    for placing a sampled latent variable, where that error is far below sampling noise.

    The Monte Carlo kernel takes it region by region (:func:`norm_ppf_tails`,
    :func:`acklam_centre`), which the tests hold equal to it bit for bit."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    if p > 0.5:
        return -_acklam(1.0 - p)
    return _acklam(p)


@njit(leaf=True, inline="always")
def norm_ppf_tails(p: float) -> float:
    """:func:`norm_ppf_fast` for ``p`` in either tail (below ``ACKLAM_TAIL`` or above
    ``1 - ACKLAM_TAIL``), without a branch between the two: equal to it bit for bit."""
    x = acklam_tail(min(p, 1.0 - p))
    x = x if p < 0.5 else -x
    x = -math.inf if p <= 0.0 else x
    return math.inf if p >= 1.0 else x


@njit(leaf=True)
def _lower_ppf(p: float) -> float:
    # 0 < p <= 0.5
    x = _acklam(p)
    # Halley refinement; skipped where the density underflows (subnormal p)
    e = norm_cdf(x) - p
    u = e * math.sqrt(2.0 * math.pi) * math.exp(0.5 * x * x)
    if not math.isfinite(u):
        return x
    return x - u / (1.0 + 0.5 * x * u)


@njit(leaf=True)
def _acklam(p: float) -> float:
    # 0 < p <= 0.5
    if p < ACKLAM_TAIL:
        return acklam_tail(p)
    return acklam_centre(p - 0.5)


@njit(leaf=True, inline="always")
def acklam_tail(p: float) -> float:
    """Acklam's approximation to the inverse of Phi in the lower tail, 0 < p < ``ACKLAM_TAIL``
    (the upper tail is ``-acklam_tail(1 - p)``)."""
    c, d = _C, _D
    q = math.sqrt(-2.0 * math.log(p))
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
        (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
    )


@njit(leaf=True, inline="always")
def acklam_centre(q: float) -> float:
    """Acklam's approximation to the inverse of Phi at ``p = 0.5 + q`` in the centre,
    ``ACKLAM_TAIL <= p <= 1 - ACKLAM_TAIL``."""
    a, b = _A, _B
    r = q * q
    return (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    )


@njit
def norm_ppf_array(p: np.ndarray) -> np.ndarray:
    """:func:`norm_ppf` of every element."""
    out = np.empty(p.shape)
    flat_p = p.ravel()
    flat_out = out.ravel()
    for i in range(flat_p.shape[0]):
        flat_out[i] = norm_ppf(flat_p[i])
    return out
