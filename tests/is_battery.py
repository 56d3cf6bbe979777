"""The importance-sampling battery: portfolios whose senior loss probability and expected loss
are known exactly (``is_reference``), run over many seeds under the default sampling choice.

Each case must give, for every seed, an estimate within 4 reported standard errors of the exact
value, and a spread of the estimates across seeds that agrees with the mean reported standard
error (ratio within 0.7-1.5): an estimator that is right on average but prints errors that are
too small fails the second check. Used by ``tests/test_importance_battery.py`` at small sizes and
by ``benchmarks/importance_battery.py`` in full.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import is_reference as ir
import numpy as np
from helpers import compile_text

from ipabs.montecarlo import simulate
from ipabs.risk.montecarlo_numba_fns import O_LOSS

UNIT = 1_000_000.0  # money per exposure unit in the deals


@dataclass(frozen=True)
class Case:
    """A battery case: ``n`` obligors, ``groups`` distinct PDs (None: one per obligor; 1:
    homogeneous), exposures 1..``max_exposure``, an optional guarantor, and the senior's exact
    loss probability aimed at."""

    label: str
    n: int
    groups: int | None
    target: float
    max_exposure: int = 25
    guarantor_pd: float | None = None

    def __str__(self) -> str:
        return f"{self.label} (n={self.n}, P~{self.target:g})"


@dataclass(frozen=True)
class Outcome:
    case: Case
    exact_p: float
    exact_el: float  # units
    p: np.ndarray  # per seed
    p_se: np.ndarray
    el: np.ndarray  # units
    el_se: np.ndarray
    methods: tuple[str, ...]
    reliable: np.ndarray  # per seed: no diagnostic problem on the senior

    def z(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.p - self.exact_p) / self.p_se, (self.el - self.exact_el) / self.el_se

    def spread_ratio(self) -> tuple[float, float]:
        """Standard deviation of the estimates across seeds over their mean standard error."""
        return (
            float(self.p.std(ddof=1) / self.p_se.mean()),
            float(self.el.std(ddof=1) / self.el_se.mean()),
        )

    def failures(self, k: float = 4.0, lo: float = 0.7, hi: float = 1.5) -> list[str]:
        out = []
        for what, z in zip(("P(loss)", "EL"), self.z(), strict=True):
            bad = np.nonzero(~(np.abs(z) <= k))[0]
            if len(bad):
                out.append(
                    f"{self.case}: {what} |z| > {k} at seeds {bad.tolist()} (z {z[bad].round(2).tolist()})"
                )
        for what, r in zip(("P(loss)", "EL"), self.spread_ratio(), strict=True):
            if not lo <= r <= hi:
                out.append(
                    f"{self.case}: {what} spread across seeds / mean se = {r:.2f}, not in [{lo}, {hi}]"
                )
        return out


@functools.lru_cache(maxsize=32)
def portfolio(case: Case) -> tuple[ir.Portfolio, float, float]:
    return ir.make_portfolio(
        case.n,
        case.groups,
        case.target,
        max_exposure=case.max_exposure,
        guarantor_pd=case.guarantor_pd,
        seed=7,
    )


def run_case(
    case: Case, seeds: range, paths: int, mode: bool | str = "auto", threads: int | None = None
) -> Outcome:
    """Run ``case`` once per seed under importance sampling ``mode``; estimates in units."""
    pf, exact_p, exact_el = portfolio(case)
    model = compile_text(ir.deal_yaml(pf, UNIT))
    rows = []
    methods = []
    for seed in seeds:
        r = simulate(model, paths=paths, seed=seed, importance_sampling=mode, threads=threads)
        row = r.tranches.loc["senior"]
        senior = float(r.original_balances[0])
        rows.append(
            (
                row["probability_of_loss"],
                row["probability_of_loss_se"],
                row["expected_loss"] * senior / UNIT,
                row["expected_loss_se"] * senior / UNIT,
                bool(row["reliable"]),
            )
        )
        methods.append(r.sampling.method)
        # the summary is the weighted mean of the path losses (no other normalisation)
        w = r.weights
        assert abs(float((w * r.tranche_outcomes[:, 0, O_LOSS]).mean()) / UNIT - rows[-1][2]) <= 1e-9 * (
            1.0 + rows[-1][2]
        )
    a = np.array(rows, dtype=np.float64)
    return Outcome(case, exact_p, exact_el, a[:, 0], a[:, 1], a[:, 2], a[:, 3], tuple(methods), a[:, 4] > 0)


SMALL = (
    Case("one group per obligor", 200, None, 1e-3, 10),
    Case("one group per obligor", 200, None, 1e-6, 10),
    Case("ten groups", 200, 10, 1e-5, 10),
    Case("a hundred groups", 200, 100, 1e-4, 10),
    Case("homogeneous", 200, 1, 1e-6, 10),
    Case("one guarantor", 200, None, 1e-5, 10, guarantor_pd=0.01),
)

FULL = tuple(
    Case(label, 1000, groups, target, 25, gpd)
    for label, groups, gpd in (
        ("one group per obligor", None, None),
        ("ten groups", 10, None),
        ("a hundred groups", 100, None),
        ("homogeneous", 1, None),
        ("one guarantor", None, 0.01),
    )
    for target in (1e-3, 1e-4, 1e-6, 1e-8)
)
