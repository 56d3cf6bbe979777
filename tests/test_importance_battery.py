"""The importance-sampling battery at CI sizes (full sizes: ``benchmarks/importance_battery.py``).

Heterogeneous pools with a group per obligor, ten and a hundred groups, a homogeneous pool and
a pool behind one guarantor; senior loss probabilities from 1e-3 down to 1e-6; exact values
from quadrature over the factor and exact convolution of the conditional loss distribution
(``is_reference``). For 30 seeds each: every estimate within 4 reported standard errors, and
the spread of the estimates across seeds consistent with the reported standard errors.
"""

from __future__ import annotations

import is_battery as battery
import is_reference as ir
import numpy as np
import pytest

SEEDS = range(30)
PATHS = 4_000


@pytest.mark.slow
@pytest.mark.parametrize("case", battery.SMALL, ids=str)
def test_battery_case_is_right_and_knows_its_error(case: battery.Case) -> None:
    outcome = battery.run_case(case, SEEDS, PATHS, "auto", threads=2)
    assert outcome.failures() == []
    assert set(outcome.methods) == {"importance"}  # every one of these is rare enough to need it
    # the diagnostics passed on (nearly) every seed: a flagged estimate is never a silent one
    assert outcome.reliable.mean() >= 0.9


def test_exact_reference_matches_the_conditional_binomial() -> None:
    """The convolution reference reproduces the homogeneous pool's binomial mixture."""
    import mc_reference as ref

    pf = ir.Portfolio(np.ones(50, dtype=np.int64), np.full(50, 0.01), np.full(50, 0.2**0.5), 12)
    p, el = ir.senior_tail(pf)
    assert p == pytest.approx(ref.finite_pool_distribution(50, 0.01, 0.2)[13:].sum(), rel=1e-9)
    assert el == pytest.approx(ref.finite_pool_tranche_loss(50, 0.01, 0.2, 1.0, 12, 50), rel=1e-9)
    # with a guarantor covering everything, the tail is thinned by the guarantor's default
    gp = ir.Portfolio(pf.exposure, pf.pd, pf.loading, 12, guarantor_pd=0.0, guarantor_loading=0.3)
    assert ir.senior_tail(gp)[0] == 0.0
