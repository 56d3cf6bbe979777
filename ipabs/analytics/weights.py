"""Diagnostics of weighted Monte Carlo estimates: when an importance-sampled (or a plain)
estimate of an expectation can be trusted, and when it cannot.

A weighted estimate ``mean(w x)`` of ``E[x]`` (``x >= 0``, e.g. a tranche's loss) is only as
good as the paths that carry it. Importance sampling fails silently when its proposal misses
part of the region that matters: every path drawn there is rare, so the sample variance (and
the printed standard error) underestimates the true error while the estimate sits far below the
truth. No diagnostic sees the paths that were never drawn, but the symptoms of a proposal that
misses are visible in the paths that were (Kong, 1992; Owen, *Monte Carlo theory, methods and
examples*, ch. 9):

- ``hit_ess``: the effective number of paths among those with ``x > 0``,
  ``(sum w x)^2 / sum (w x)^2`` -- how many equally weighted paths the estimate is worth. It is
  also ``1 / relative_se^2`` up to the factor ``1 - 1/n``, so a low figure is a loud one;
- ``max_share``: the largest share of ``sum(w x)`` carried by one path;
- ``ess``: Kish's effective sample size of all the weights, ``(sum w)^2 / sum w^2``;
- ``weight_z``: the mean weight's distance from one (its expectation under any valid
  proposal) in standard errors;
- ``se_vs_plain``: the standard error divided by the one plain sampling would give with as many
  paths (estimated from the same weighted sample): above one, the weights made it worse.

:func:`diagnose` computes them and lists every problem in words; an estimate with a problem is
reported with it, never as a confident number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_HIT_ESS = 30.0  # effective paths among the hits before a weighted estimate is trusted
MIN_PLAIN_HITS = 10  # plain hits below which the normal interval of a proportion is rough
MAX_WEIGHT_SHARE = 0.2  # largest share of a weighted estimate one path may carry
WEIGHT_Z = 4.0  # the mean weight must lie within this many standard errors of one
SE_RATIO_LIMIT = 1.5  # a standard error this many times plain sampling's is flagged


@dataclass(frozen=True)
class Diagnostics:
    """How far a weighted estimate of ``E[x]`` can be trusted (see the module notes).

    Attributes
    ----------
    paths, hits : int
        Paths in all, and paths with ``x > 0``.
    weighted : bool
        False for plain sampling (all weights one).
    ess, hit_ess, max_share, weight_z, se_vs_plain, relative_se : float
    problems : tuple of str
        Every failed check, in words (empty when the estimate can be trusted).
    """

    paths: int
    hits: int
    weighted: bool
    ess: float
    hit_ess: float
    max_share: float
    weight_z: float
    se_vs_plain: float
    relative_se: float
    problems: tuple[str, ...]

    @property
    def degenerate(self) -> bool:
        """True when the weights themselves failed, not merely the number of paths: a weighted
        run with many paths that show the outcome but weights that leave few effective ones (or
        one dominant), or weights that do not average one. More paths do not mend a degenerate
        sampling; a simpler one does. (A weighted run with no path that shows the outcome is
        degenerate only if its sampling was expected to show some: the caller knows.)"""
        if not self.weighted:
            return False
        if abs(self.weight_z) > WEIGHT_Z:
            return True
        return self.hits >= MIN_HIT_ESS and (self.hit_ess < MIN_HIT_ESS or self.max_share > MAX_WEIGHT_SHARE)

    @property
    def reliable(self) -> bool:
        """True when no check failed."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "paths": self.paths,
            "loss_paths": self.hits,
            "weighted": self.weighted,
            "ess": _finite(self.ess),
            "hit_ess": _finite(self.hit_ess),
            "max_weight_share": _finite(self.max_share),
            "weight_z": _finite(self.weight_z),
            "se_vs_plain": _finite(self.se_vs_plain),
            "relative_se": _finite(self.relative_se),
            "reliable": self.reliable,
            "problems": list(self.problems),
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def kish_ess(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 for no positive weight)."""
    w = np.asarray(w, dtype=np.float64)
    s2 = float((w * w).sum())
    return float(w.sum()) ** 2 / s2 if s2 > 0.0 else 0.0


def diagnose(x: np.ndarray, w: np.ndarray | None, what: str = "the estimate") -> Diagnostics:
    """Diagnostics of the estimate ``mean(w x)`` of ``E[x]`` for ``x >= 0``.

    Parameters
    ----------
    x : ndarray
        One non-negative outcome per path (a loss, an indicator).
    w : ndarray or None
        Likelihood-ratio weights (None or all ones: plain sampling).
    what : str
        How to name the estimate in the problems listed.

    Returns
    -------
    Diagnostics
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    weighted = w is not None and not np.all(np.asarray(w) == 1.0)
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    y = w * x
    sums = WeightedSums(
        paths=n,
        hits=int((x > 0.0).sum()),
        total=float(y.sum()),
        total_sq=float((y * y).sum()),
        largest=float(y.max()) if n else math.nan,
        se=float(y.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        weight_total=float(w.sum()),
        weight_sq=float((w * w).sum()),
        weight_se=float(w.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        plain_second=float((w * x * x).mean()) if n else math.nan,
    )
    return diagnose_sums(sums, weighted, what)


@dataclass(frozen=True)
class WeightedSums:
    """What :func:`diagnose_sums` needs of a weighted sample ``y = w x``, as sums a run can
    accumulate path by path: the number of paths and of those with ``x > 0``, ``sum y``,
    ``sum y^2``, ``max y``, the standard error of ``mean y``, ``sum w``, ``sum w^2``, the
    standard error of ``mean w``, and ``mean(w x^2)``."""

    paths: int
    hits: int
    total: float
    total_sq: float
    largest: float
    se: float
    weight_total: float
    weight_sq: float
    weight_se: float
    plain_second: float


def diagnose_sums(sums: WeightedSums, weighted: bool, what: str = "the estimate") -> Diagnostics:
    """:func:`diagnose` from a sample's sums (a streamed run keeps no per-path values).

    Parameters
    ----------
    sums : WeightedSums
    weighted : bool
        False for plain sampling (all weights one).
    what : str
        How to name the estimate in the problems listed.

    Returns
    -------
    Diagnostics
    """
    n = sums.paths
    hits = sums.hits
    total = sums.total
    mean = total / n if n else math.nan
    se = sums.se
    # y = w x vanishes where x does: its sums over the hits are its sums over all paths
    hit_ess = total**2 / sums.total_sq if sums.total_sq > 0.0 else 0.0
    max_share = float(sums.largest / total) if total > 0.0 else math.nan
    ess = sums.weight_total**2 / sums.weight_sq if sums.weight_sq > 0.0 else 0.0
    w_se = sums.weight_se
    weight_z = (sums.weight_total / n - 1.0) / w_se if w_se > 0.0 else 0.0
    # plain sampling's variance of x, estimated from the weighted sample: E_w[x^2] - E[x]^2
    plain_var = sums.plain_second - mean * mean if n else math.nan
    plain_se = math.sqrt(plain_var / n) if plain_var > 0.0 else math.nan
    se_vs_plain = se / plain_se if plain_se > 0.0 else (1.0 if not weighted else math.nan)
    relative_se = se / mean if mean > 0.0 else math.nan
    problems: list[str] = []
    if hits == 0:
        bound = 3.0 / n if n else math.nan
        problems.append(
            f"no path shows {what}: the weighted estimate 0 cannot be trusted"
            if weighted
            else f"no path shows {what}: its probability may still be up to about {bound:.2g} "
            f"(95% bound from {n:,} paths, the rule of three)"
        )
    elif weighted:
        if hit_ess < MIN_HIT_ESS:
            problems.append(
                f"{what} rests on {hit_ess:.1f} effective paths (of {hits:,} that show it; "
                f"at least {MIN_HIT_ESS:g} needed)"
            )
        if max_share > MAX_WEIGHT_SHARE:
            problems.append(f"one path carries {100 * max_share:.0f}% of {what}")
    elif hits < MIN_PLAIN_HITS:
        problems.append(f"only {hits} paths show {what}: its standard error is rough")
    if weighted and abs(weight_z) > WEIGHT_Z:
        problems.append(
            f"the weights average {sums.weight_total / n:.4g}, {abs(weight_z):.1f} standard errors from 1"
        )
    if weighted and se_vs_plain > SE_RATIO_LIMIT:
        problems.append(
            f"the weights make {what} less precise: its standard error is {se_vs_plain:.1f}x "
            f"plain sampling's at the same number of paths"
        )
    return Diagnostics(
        paths=n,
        hits=hits,
        weighted=weighted,
        ess=ess,
        hit_ess=hit_ess,
        max_share=max_share,
        weight_z=weight_z,
        se_vs_plain=se_vs_plain,
        relative_se=relative_se,
        problems=tuple(problems),
    )
