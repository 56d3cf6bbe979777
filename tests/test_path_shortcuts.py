"""Work a Monte Carlo path skips because it does not depend on the path's defaults: each
shortcut gives the numbers of the full computation, bit for bit, and is never taken for a
path whose inputs differ."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import compile_text

from ipabs.engine.compile import CompiledModel
from ipabs.engine.layout import TR_INTEREST_PAID, TR_PRINCIPAL_PAID, TR_RESIDUAL_PAID, allocate_tables
from ipabs.engine.metrics_numba_fns import weighted_average_life, yield_on_grid
from ipabs.risk.model import RiskArrays, compile_risk
from ipabs.risk.montecarlo_numba_fns import (
    O_WAL,
    O_YIELD,
    POOL_OUTCOMES,
    TRANCHE_OUTCOMES,
    allocate_scratch,
    path_outcomes,
    simulate_chunk,
    simulate_path,
)

SEED = 3
LOANS = "\n".join(
    f"      - {{obligor: O{i}, balance: {600 + 100 * i}k, rate: 5%, term_months: 24, amortisation: bullet}}"
    for i in range(8)
)
# Two annual periods; the senior notes are paid their scheduled cash unless many obligors
# default, the equity's cash changes with every default.
DEAL = f"""
deal: {{name: shortcuts, closing_date: 2025-01-15, first_payment_date: 2026-01-15,
       payment_frequency: annual, legal_final_date: 2027-01-15, day_count: 30/360}}
pools:
  - name: p
    loans:
{LOANS}
tranches:
  - {{name: a, balance: 4.5m, coupon: 3%}}
  - {{name: b, balance: 1.5m, coupon: 5%}}
  - {{name: c, balance: 1.6m}}
risk:
  correlation: 0.3
  default_pd: 10%
  recovery: {{model: constant, rate: 40%, lag_months: 0}}
waterfalls:
  normal:
    - pay_interest: a
    - pay_interest: b
    - pay_principal: {{tranches: [a, b, c]}}
    - pay_residual: c
"""


@pytest.fixture(scope="module")
def deal() -> tuple[CompiledModel, RiskArrays]:
    model = compile_text(DEAL)
    return model, compile_risk(model)


def cash_of(tranche: np.ndarray, k: int) -> np.ndarray:
    """A tranche's cash received per period, summed as the outcomes kernel sums it."""
    interest, principal = tranche[:, k, TR_INTEREST_PAID], tranche[:, k, TR_PRINCIPAL_PAID]
    return interest + principal + tranche[:, k, TR_RESIDUAL_PAID]


def fresh_yield(ra: RiskArrays, cash: np.ndarray, price: float, k: int) -> float:
    """The yield solved from scratch, remembering nothing."""
    factor = np.zeros(ra.gap_years.shape[0])
    return float(yield_on_grid(ra.gap_id, ra.gap_years, factor, ra.times, cash, price, ra.tr_yield_guess[k]))


def test_remembered_yields_equal_fresh_solves(deal: tuple[CompiledModel, RiskArrays]) -> None:
    """Each path's yields from a chunk (which remembers solved yields) equal the yields solved
    afresh from that path's cash, bit for bit, on paths with and without defaulters in any
    order; so do the WALs (summed in the outcomes' own pass) and weighted_average_life's."""
    model, ra = deal
    cd = model.cd
    n, n_tr = 300, cd.tr_balance.shape[0]
    tr = np.empty((n, n_tr, len(TRANCHE_OUTCOMES)))
    pool = np.empty((n, len(POOL_OUTCOMES)))
    factors = np.empty((n, ra.n_factors))
    groups = np.empty((n, 0))
    shift, tilt = np.zeros(ra.n_factors), np.zeros(ra.g_threshold.shape[0])
    simulate_chunk(cd, ra, SEED, 0, 0, shift, tilt, 0.0, 0.0, tr, pool, factors, groups)
    sc = allocate_scratch(cd, ra)
    tables = allocate_tables(cd)
    defaulters = np.empty(n, dtype=np.int64)
    for i in range(n):
        simulate_path(cd, ra, SEED, 0, i, sc, tables, False)
        defaulters[i] = sc.n_defaulters[0]
        for k in range(n_tr):
            expected = fresh_yield(ra, cash_of(tables.tranche, k), float(cd.tr_balance[k]), k)
            assert tr[i, k, O_YIELD].tobytes() == np.float64(expected).tobytes(), f"path {i}, tranche {k}"
            wal = weighted_average_life(ra.times, tables.tranche[:, k, TR_PRINCIPAL_PAID].copy())
            assert tr[i, k, O_WAL].tobytes() == np.float64(wal).tobytes(), f"WAL: path {i}, tranche {k}"
    # the paths exercise both remembered slots: no-default paths after paths with defaulters
    clean = defaulters == 0
    assert 0.1 < clean.mean() < 0.9
    assert np.any(clean[1:] & ~clean[:-1])
    assert len(np.unique(tr[:, 2, O_YIELD])) > 10, "the equity's yield should vary"


def test_a_remembered_yield_is_reused_only_for_the_same_cash(deal: tuple[CompiledModel, RiskArrays]) -> None:
    """After a path without defaulters fills the memory, cash that differs from it in any way
    (another total, the same total at other dates, one unit in the last place) is solved
    afresh, even on a path that has no defaulter either."""
    # ("tiny" is below a tolerance a comparison of cash might allow, yet moves a yield)
    model, ra = deal
    cd = model.cd
    n_tr = cd.tr_balance.shape[0]
    sc = allocate_scratch(cd, ra)
    tables = allocate_tables(cd)
    row = np.zeros((n_tr, len(TRANCHE_OUTCOMES)))
    pool = np.zeros(len(POOL_OUTCOMES))
    path = 0
    while True:  # a path without defaulters
        simulate_path(cd, ra, SEED, 0, path, sc, tables, False)
        if sc.n_defaulters[0] == 0:
            break
        path += 1
    scheduled = tables.tranche.copy()
    path_outcomes(cd, ra, sc, tables, row, pool)
    remembered = row[:, O_YIELD].copy()
    for k in range(n_tr):
        assert remembered[k] == fresh_yield(ra, cash_of(scheduled, k), float(cd.tr_balance[k]), k)

    def changed(edit: str) -> np.ndarray:
        t = scheduled.copy()
        if edit == "less":  # a unit short at maturity
            t[-1, :, TR_PRINCIPAL_PAID] -= 1.0
        elif edit == "earlier":  # the same total, part of it a period earlier
            t[0, :, TR_PRINCIPAL_PAID] += 1000.0
            t[-1, :, TR_PRINCIPAL_PAID] -= 1000.0
        elif edit == "first":  # a unit more in the first period only
            t[0, :, TR_INTEREST_PAID] += 1.0
        elif edit == "tiny":  # the cash at maturity 2^-42 (2e-13) larger
            t[-1, :, TR_PRINCIPAL_PAID] *= 1.0 + 2.0**-42
        else:  # one unit in the last place of the first period's interest (nothing before)
            t[0, :, TR_INTEREST_PAID] = np.nextafter(t[0, :, TR_INTEREST_PAID], np.inf)
        return t

    for edit in ("less", "earlier", "first", "tiny", "ulp", "less"):
        tables.tranche[:] = changed(edit)
        assert sc.n_defaulters[0] == 0
        path_outcomes(cd, ra, sc, tables, row, pool)
        for k in range(n_tr):
            expected = fresh_yield(ra, cash_of(tables.tranche, k), float(cd.tr_balance[k]), k)
            assert row[k, O_YIELD].tobytes() == np.float64(expected).tobytes(), f"{edit}, tranche {k}"
            if edit not in ("tiny", "ulp"):
                assert row[k, O_YIELD] != remembered[k], f"{edit}, tranche {k}: the remembered yield"
        if edit == "tiny":  # moves the yield of some tranche (the solve's tolerance hides it in others)
            assert np.any(row[:, O_YIELD] != remembered), "tiny: the remembered yields"
        # and the scheduled cash again: its remembered yield
        tables.tranche[:] = scheduled
        path_outcomes(cd, ra, sc, tables, row, pool)
        assert row[:, O_YIELD].tobytes() == remembered.tobytes()
