"""SIFMA (Bond Market Association) standard-formula conventions on a monthly level-pay pool.

The anchors are the published numerical examples of The Bond Market Association's Uniform
Practices, chapter SF "Standard Formulas for the Analysis of Mortgage-Backed Securities and Other
Related Securities" (02/01/99), section C "Defaults": the cumulative-default matrix of C.4
(SF-21: new 30-year 8% mortgages, 12 months to liquidation, % SDA by % PSA) and the sample cash
flows of C.6 (SF-22 to SF-38: Cash Flow A, 1% SMM with 1% MDR; Cash Flow B, 150% PSA with
100% SDA; 12-month recovery period, 20% loss severity). Their figures are copied below as
published and are the test; nothing in them is computed by ipabs.

The month-by-month helper ``sifma_cash_flows`` writes down the formulas of C.3 (SF-18, SF-19)
for one level-pay loan: new defaults are MDR x the previous performing balance; actual
amortisation is the scheduled amortisation of the previous performing balance less new
defaults; voluntary prepayments are SMM x the previous performing balance less its *expected*
amortisation (``PERF BAL(i-1) x SCH AM(i)/SCH AM(i-1) x SMM(i)``), so new defaults do not
shrink the prepayment base; ``(1 - severity) x defaults`` is recovered ``lag`` months later
(lost when that falls after legal final; the pool's servicer does not advance). The helper
itself is checked against the published Cash Flow A and B before it is used as a yardstick.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import collections_of, compile_text

from ipabs.engine.layout import COLLECTION_COLUMNS as COLUMNS
from ipabs.risk.deterministic import psa_cpr, sda_cdr
from ipabs.risk.scenario import scenario_inputs

BALANCE = 10_000_000.0
RATE = 0.06
TERM = 48  # months: 2025-01-15 -> 2029-01-15
PERIODS = 54  # legal final 2029-07-15 leaves room for lagged recoveries


def pool_deal(
    scenarios: str,
    term: int = TERM,
    extra_loans: str = "",
    frequency: str = "monthly",
    first_payment: str = "2025-02-15",
) -> str:
    """A monthly level-pay (annuity) pool, 30/360 so that interest is balance x rate / 12."""
    return f"""
deal:
  name: sifma pool
  closing_date: 2025-01-15
  first_payment_date: {first_payment}
  payment_frequency: {frequency}
  legal_final_date: 2029-07-15
pools:
  - name: pool
    loans:
      - {{obligor: A, balance: {BALANCE}, rate: {RATE}, term_months: {term}, amortisation: annuity,
         payment_frequency: monthly, day_count: 30/360,
         pledged_ip: {{appraised_value: 4m}}}}
{extra_loans}
scenarios:
{scenarios}
tranches:
  - {{name: senior, balance: 9m, coupon: 3%}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: senior
"""


# --------------------------------------------------------------------------- the formulas


def smm_of(cpr: float | np.ndarray) -> np.ndarray:
    """Single monthly mortality from an annual rate: 1 - (1 - CPR)^(1/12)."""
    return 1.0 - (1.0 - np.asarray(cpr, dtype=float)) ** (1.0 / 12.0)


def psa_formula(month: int, psa: float) -> float:
    """PSA: CPR = PSA/100 x 0.2% x min(max(month, 1), 30)."""
    return psa / 100.0 * 0.002 * min(max(month, 1), 30)


def sda_formula(month: int, sda: float) -> float:
    """SDA: 0.02% x m to month 30, 0.6% to 60, down 0.0095% a month to 0.03% at 120, flat after."""
    if month <= 30:
        cdr = 0.0002 * month
    elif month <= 60:
        cdr = 0.006
    elif month <= 120:
        cdr = 0.006 - 0.000095 * (month - 60)
    else:
        cdr = 0.0003
    return sda / 100.0 * cdr


def sifma_cash_flows(
    mdr: np.ndarray,
    smm: np.ndarray,
    severity: float,
    lag: int,
    balance: float = BALANCE,
    rate: float = RATE,
    term: int = TERM,
    periods: int = PERIODS,
    appraisal_cap: float | None = None,
) -> dict[str, np.ndarray]:
    """Month-by-month SIFMA cash flows of one level-pay loan (rates per month, 1-based months).

    ``appraisal_cap``: recovery of a whole-loan default is ``min(cap, balance)``; a fraction f
    of the loan defaulting recovers ``f x`` that (expected value).
    """
    r = rate / 12.0
    out = {
        k: np.zeros(periods)
        for k in (
            "interest",
            "scheduled_principal",
            "prepayment",
            "defaults",
            "recovery",
            "balance_start",
            "balance_end",
        )
    }
    perf = balance  # PERF BAL: performing balance
    sched = balance  # SCH AM: contractual balance of the loan (no default, no prepayment)
    for m in range(1, periods + 1):
        i = m - 1
        out["balance_start"][i] = perf
        remaining = term - m + 1
        if remaining >= 1:
            sched_payment = sched * r / (1.0 - (1.0 + r) ** -remaining)
            sched_next = max(sched - (sched_payment - sched * r), 0.0)
        else:
            sched_next = 0.0
        ratio = sched_next / sched if sched > 0 else 0.0  # SCH AM(i) / SCH AM(i-1)
        defaulted = mdr[i] * perf  # NEW DEF
        share_defaulting = defaulted / sched if sched > 0 else 0.0
        survivors = perf - defaulted
        scheduled = survivors * (1.0 - ratio)  # ACT AM
        prepaid = min(perf * ratio * smm[i], survivors - scheduled)  # VOL PREPAY, capped (C.2.e)
        perf = survivors - scheduled - prepaid
        sched = sched_next
        out["defaults"][i] = defaulted
        out["interest"][i] = survivors * r  # ACT INT
        out["scheduled_principal"][i] = scheduled
        out["prepayment"][i] = prepaid
        out["balance_end"][i] = perf
        if m + lag <= periods:
            rec = (1.0 - severity) * defaulted
            if appraisal_cap is not None:
                rec = min(defaulted, share_defaulting * appraisal_cap)
            out["recovery"][i + lag] += rec
    return out


def _compare(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    scale = BALANCE * 1e-9  # values that should be zero
    for k, e in expected.items():
        a = actual[k]
        assert a.shape == e.shape, k
        bad = np.nonzero(np.abs(a - e) > np.maximum(1e-6 * np.abs(e), scale))[0]
        assert len(bad) == 0, f"{k}: months {(bad + 1).tolist()[:8]} got {a[bad][:4]} expected {e[bad][:4]}"


# --------------------------------------------------------------------------- rate conversions


@pytest.mark.parametrize("annual", [0.0, 0.01, 0.06, 0.2, 0.5, 0.9])
def test_smm_and_mdr_from_annual_rates(annual: float) -> None:
    text = pool_deal(f"  base: {{defaults: {{cdr: {annual}}}, prepayment: {{cpr: {annual}}}}}")
    inp = scenario_inputs(compile_text(text), "base")
    expected = 1.0 - (1.0 - annual) ** (1.0 / 12.0)
    np.testing.assert_allclose(inp.smm[0], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(inp.mdr[0], expected, rtol=1e-12, atol=1e-15)
    # twelve months of SMM compound back to the CPR
    assert 1.0 - (1.0 - inp.smm[0, 0]) ** 12 == pytest.approx(annual, abs=1e-12)


def test_quarterly_period_rates_compound_the_monthly_ones() -> None:
    text = pool_deal(
        "  base: {defaults: {cdr: 0.1}, prepayment: {cpr: 0.2}}\n"
        "  ramp: {defaults: {sda: 100}, prepayment: {psa: 100}}",
        frequency="quarterly",
        first_payment="2025-04-15",
    )
    model = compile_text(text)
    inp = scenario_inputs(model, "base")
    np.testing.assert_allclose(inp.smm[0], 1.0 - 0.8**0.25, rtol=1e-12)
    np.testing.assert_allclose(inp.mdr[0], 1.0 - 0.9**0.25, rtol=1e-12)
    ramp = scenario_inputs(model, "ramp")
    for q in range(3):
        months = range(3 * q + 1, 3 * q + 4)
        smm = 1.0 - np.prod([1.0 - smm_of(psa_formula(m, 100)) for m in months])
        mdr = 1.0 - np.prod([1.0 - smm_of(sda_formula(m, 100)) for m in months])
        assert ramp.smm[0, q] == pytest.approx(smm, rel=1e-12)
        assert ramp.mdr[0, q] == pytest.approx(mdr, rel=1e-12)


@pytest.mark.parametrize("psa", [50.0, 100.0, 165.0, 300.0])
def test_psa_ramp(psa: float) -> None:
    months = np.array([0, 1, 2, 15, 29, 30, 31, 60, 360])
    expected = [psa_formula(int(m), psa) for m in months]
    np.testing.assert_allclose(psa_cpr(months, psa), expected, rtol=1e-12, atol=0)
    # 100% PSA: 0.2% in month 1, 6% from month 30
    assert psa_cpr(np.array([1, 30, 100]), 100.0) == pytest.approx([0.002, 0.06, 0.06])


@pytest.mark.parametrize("sda", [100.0, 200.0, 50.0])
def test_sda_curve(sda: float) -> None:
    months = np.array([1, 10, 30, 31, 45, 60, 61, 90, 119, 120, 121, 240])
    expected = [sda_formula(int(m), sda) for m in months]
    np.testing.assert_allclose(sda_cdr(months, sda), expected, rtol=1e-12, atol=1e-15)
    # 100% SDA anchors: 0.6% peak on months 30-60, 0.03% at and after month 120
    assert sda_cdr(np.array([30, 60, 120, 200]), 100.0) == pytest.approx([0.006, 0.006, 0.0003, 0.0003])


# --------------------------------------------------------------------------- the pool


@pytest.mark.parametrize(
    ("cdr", "cpr", "severity", "lag"),
    [
        (0.05, 0.10, 0.60, 6),
        (0.0, 0.20, 0.40, 0),
        (0.30, 0.0, 0.25, 0),
        (0.10, 0.15, 1.0, 12),
        (0.02, 0.06, 0.35, 3),
    ],
)
def test_level_pay_pool_matches_month_by_month_sifma(
    cdr: float, cpr: float, severity: float, lag: int
) -> None:
    text = pool_deal(
        f"  base: {{defaults: {{cdr: {cdr}}}, prepayment: {{cpr: {cpr}}}, "
        f"recovery: {{rate: {1 - severity}, lag_months: {lag}}}}}"
    )
    actual = collections_of(compile_text(text), "base")
    mdr = np.full(PERIODS, smm_of(cdr))
    smm = np.full(PERIODS, smm_of(cpr))
    expected = sifma_cash_flows(mdr, smm, severity, lag)
    _compare(actual, expected)
    # the ledger closes: start - defaults - scheduled - prepaid = end
    np.testing.assert_allclose(
        actual["balance_start"] - actual["defaults"] - actual["scheduled_principal"] - actual["prepayment"],
        actual["balance_end"],
        atol=1e-6,
    )


def test_no_default_no_prepayment_is_the_level_annuity() -> None:
    actual = collections_of(compile_text(pool_deal("  base: {}")), "base")
    r = RATE / 12
    payment = BALANCE * r / (1 - (1 + r) ** -TERM)
    total = actual["interest"] + actual["scheduled_principal"]
    np.testing.assert_allclose(total[:TERM], payment, rtol=1e-10)
    np.testing.assert_allclose(total[TERM:], 0.0, atol=1e-9)


@pytest.mark.parametrize(("sda", "psa", "lag"), [(100.0, 100.0, 6), (300.0, 150.0, 12), (200.0, 0.0, 0)])
def test_sda_psa_pool_with_zero_defaults_in_the_last_lag_months(sda: float, psa: float, lag: int) -> None:
    text = pool_deal(
        f"  base: {{defaults: {{sda: {sda}}}, prepayment: {{psa: {psa}}}, "
        f"recovery: {{rate: 0.5, lag_months: {lag}}}}}"
    )
    model = compile_text(text)
    months = np.arange(1, PERIODS + 1)
    # SDA: no new defaults in the asset's last `lag` months (months TERM - lag + 1 .. TERM)
    # nor after it matures
    cdr = np.array([0.0 if m > TERM - lag else sda_formula(int(m), sda) for m in months])
    mdr = smm_of(cdr)
    smm = smm_of([psa_formula(int(m), psa) for m in months])
    inp = scenario_inputs(model, "base")
    np.testing.assert_allclose(inp.mdr[0], mdr, rtol=1e-12, atol=1e-16)
    assert np.all(inp.mdr[0, TERM - lag :] == 0.0)
    assert np.all(inp.mdr[0, : TERM - lag] > 0.0)
    _compare(collections_of(model, "base"), sifma_cash_flows(mdr, smm, 0.5, lag))


def test_sda_lag_rule_uses_each_assets_own_maturity() -> None:
    second = (
        "      - {obligor: B, balance: 5m, rate: 0.06, term_months: 36, amortisation: annuity,\n"
        "         payment_frequency: monthly, day_count: 30/360}"
    )
    text = pool_deal(
        "  base: {defaults: {sda: 100}, recovery: {rate: 0.4, lag_months: 6}}", extra_loans=second
    )
    mdr = scenario_inputs(compile_text(text), "base").mdr
    # loan A matures in month 48: zero from month 43; loan B in month 36: zero from month 31
    assert np.all(mdr[0, 42:] == 0.0)
    assert mdr[0, 41] == pytest.approx(smm_of(sda_formula(42, 100)))
    assert np.all(mdr[1, 30:] == 0.0)
    assert mdr[1, 29] == pytest.approx(smm_of(sda_formula(30, 100)))


def test_appraisal_recovery_scales_with_the_surviving_share() -> None:
    # Recovery basis appraisal: a whole-loan default recovers 30% x 4m appraisal = 1.2m (capped
    # at the balance). In expected-value terms, month m's defaults are a fraction
    # f = defaulted / scheduled balance of the loan, which recovers f x 1.2m: the cap must
    # shrink with the share of the loan that is still performing, not only with the MDR.
    text = pool_deal(
        "  base: {defaults: {cdr: 0.3}, prepayment: {cpr: 0.1}, "
        "recovery: {rate: 0.3, basis: appraisal, lag_months: 0}}"
    )
    actual = collections_of(compile_text(text), "base")
    mdr = np.full(PERIODS, smm_of(0.3))
    smm = np.full(PERIODS, smm_of(0.1))
    expected = sifma_cash_flows(mdr, smm, 0.0, 0, appraisal_cap=0.3 * 4_000_000)
    # month 1: nothing has defaulted or prepaid yet, so the two conventions agree
    assert actual["recovery"][0] == pytest.approx(expected["recovery"][0], rel=1e-9)
    _compare({"recovery": actual["recovery"]}, {"recovery": expected["recovery"]})


# --------------------------------------------------------------------------- published examples

MBS_BALANCE = 100_000_000.0
MBS_RATE = 0.08
MBS_TERM = 360
MBS_PERIODS = 372  # legal final a year after the loans mature: every recovery arrives
SEVERITY = 0.20
LIQUIDATION_LAG = 12

# Chapter SF, C.4 (SF-21): cumulative defaults (% of original balance) over the life of a pool
# of new 8% 30-year mortgages, 12 months to liquidation; rows % PSA, columns % SDA.
SDA_COLUMNS = (50, 100, 150, 200, 250, 300)
SDA_MATRIX = {
    100: (1.56, 3.09, 4.59, 6.08, 7.53, 8.97),
    125: (1.47, 2.92, 4.35, 5.76, 7.14, 8.51),
    150: (1.40, 2.78, 4.13, 5.47, 6.79, 8.08),
    175: (1.33, 2.64, 3.93, 5.20, 6.45, 7.69),
    200: (1.26, 2.51, 3.74, 4.95, 6.14, 7.32),
    250: (1.15, 2.28, 3.40, 4.50, 5.59, 6.66),
    300: (1.05, 2.08, 3.10, 4.11, 5.10, 6.08),
    400: (0.88, 1.74, 2.60, 3.45, 4.29, 5.12),
    500: (0.74, 1.48, 2.21, 2.93, 3.64, 4.35),
}

# Chapter SF, C.6 (SF-22 to SF-38), whole dollars as published. Rows: {month: value}; totals
# over the 360 months.
CASH_FLOW_A = {  # 1% SMM, 1% MDR (0% in the last 12 months, C.3.j)
    "balance_end": {1: 97_934_244, 2: 95_910_689, 12: 77_816_148, 48: 36_484_857, 348: 7_461, 349: 6_793},
    "defaults": {1: 1_000_000, 2: 979_342, 48: 372_649, 337: 183, 348: 82, 349: 0},
    "prepayment": {1: 999_329, 2: 978_680},
    "scheduled_principal": {1: 66_427},
    "totals": {"defaults": 47_576_640, "prepayment": 47_527_662, "scheduled_principal": 4_895_697},
}
CASH_FLOW_B = {  # 150% PSA, 100% SDA
    "balance_end": {
        1: 99_906_219,
        2: 99_785_306,
        12: 97_098_818,
        24: 90_529_791,
        29: 86_846_340,
        30: 86_051_329,
        48: 72_841_712,
        337: 1_185_672,
        348: 587_917,
        359: 46_596,
    },
    "defaults": {1: 1_667, 2: 3_331, 30: 43_543, 31: 43_144, 48: 36_863, 337: 31, 348: 16, 349: 0},
    "prepayment": {1: 25_018, 2: 50_057, 30: 679_304, 31: 673_082, 48: 575_025},
    "scheduled_principal": {1: 67_097, 2: 67_525, 30: 72_163, 48: 69_963},
    "totals": {"defaults": 2_776_019, "prepayment": 76_052_023, "scheduled_principal": 21_171_958},
}


def mbs_deal(scenarios: str) -> str:
    """The chapter's pool: one new 30-year level-pay 8% loan of 100m, monthly, 30/360."""
    return f"""
deal:
  name: sifma chapter SF pool
  closing_date: 2000-01-01
  first_payment_date: 2000-02-01
  payment_frequency: monthly
  legal_final_date: 2031-01-01
pools:
  - name: pool
    loans:
      - {{obligor: A, balance: {MBS_BALANCE}, rate: {MBS_RATE}, term_months: {MBS_TERM},
         amortisation: annuity, payment_frequency: monthly, day_count: 30/360}}
scenarios:
{scenarios}
tranches:
  - {{name: senior, balance: 90m, coupon: 3%}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: senior
"""


CASH_FLOW_A_SCENARIO = (
    f"  a: {{defaults: {{cdr_vector: [{', '.join(['0.11361512828387077'] * 348)}, 0.0]}}, "
    f"prepayment: {{cpr: 0.11361512828387077}}, "
    f"recovery: {{rate: {1 - SEVERITY}, lag_months: {LIQUIDATION_LAG}}}}}"
)
CASH_FLOW_B_SCENARIO = (
    f"  b: {{defaults: {{sda: 100}}, prepayment: {{psa: 150}}, "
    f"recovery: {{rate: {1 - SEVERITY}, lag_months: {LIQUIDATION_LAG}}}}}"
)


def _check_published(actual: dict[str, np.ndarray], published: dict[str, dict]) -> None:
    for column, rows in published.items():
        if column == "totals":
            for name, total in rows.items():
                # a published total is the rounded sum of the unrounded months
                assert abs(actual[name].sum() - total) <= 0.5, (name, actual[name].sum(), total)
            continue
        for month, value in rows.items():
            got = actual[column][month - 1]
            assert abs(got - value) <= 0.5, f"{column} month {month}: {got:,.2f}, published {value:,}"


def test_cash_flow_a_mdr_cdr_match_the_chapter() -> None:
    # 1% a month, annualised: 1 - 0.99^12
    assert float(smm_of(0.11361512828387077)) == pytest.approx(0.01, rel=1e-15)


@pytest.mark.parametrize(
    ("scenario", "published"),
    [(CASH_FLOW_A_SCENARIO, CASH_FLOW_A), (CASH_FLOW_B_SCENARIO, CASH_FLOW_B)],
    ids=["cash_flow_a", "cash_flow_b"],
)
def test_sample_cash_flows_of_chapter_sf(scenario: str, published: dict[str, dict]) -> None:
    """SIFMA / Bond Market Association Uniform Practices, chapter SF, section C.6 "Numerical
    Examples of SDA", Cash Flow A (1% SMM, 1% MDR) and Cash Flow B (150% PSA, 100% SDA): new
    30-year 8% loans, 12-month recovery period, 20% loss severity."""
    actual = collections_of(compile_text(mbs_deal(scenario)))
    _check_published(actual, published)
    # the loan is repaid or defaulted by its maturity: the three add up to the original balance
    total = actual["defaults"].sum() + actual["prepayment"].sum() + actual["scheduled_principal"].sum()
    assert total == pytest.approx(MBS_BALANCE, rel=1e-12)
    # no new defaults in the last 12 months (C.3.j), so every liquidation falls inside the life;
    # loss = 20% of the defaulted balance (C.2.g); without servicer advances the recovery is
    # the rest, 12 months after the default
    assert np.all(actual["defaults"][MBS_TERM - LIQUIDATION_LAG :] == 0.0)
    np.testing.assert_allclose(actual["loss"], SEVERITY * actual["defaults"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(
        actual["recovery"][LIQUIDATION_LAG:],
        (1 - SEVERITY) * actual["defaults"][:-LIQUIDATION_LAG],
        rtol=1e-12,
    )


def test_reference_helper_reproduces_the_published_cash_flows() -> None:
    """The month-by-month helper written from C.3 (SF-18, SF-19) reproduces Cash Flow A and B
    before the pool tests below use it as their yardstick."""
    months = np.arange(1, MBS_PERIODS + 1)
    common = {"balance": MBS_BALANCE, "rate": MBS_RATE, "term": MBS_TERM, "periods": MBS_PERIODS}
    mdr_a = np.where(months <= MBS_TERM - LIQUIDATION_LAG, 0.01, 0.0)
    a = sifma_cash_flows(mdr_a, np.full(MBS_PERIODS, 0.01), SEVERITY, LIQUIDATION_LAG, **common)
    _check_published(a, CASH_FLOW_A)
    cdr_b = [0.0 if m > MBS_TERM - LIQUIDATION_LAG else sda_formula(int(m), 100) for m in months]
    smm_b = smm_of([psa_formula(int(m), 150) for m in months])
    b = sifma_cash_flows(smm_of(cdr_b), smm_b, SEVERITY, LIQUIDATION_LAG, **common)
    _check_published(b, CASH_FLOW_B)


def test_cumulative_default_matrix_of_chapter_sf() -> None:
    """SIFMA / Bond Market Association Uniform Practices, chapter SF, section C.4 "The Standard
    Default Assumption" (SF-21): the cumulative default matrix, new 8% 30-year mortgages,
    12 months to liquidation. E.g. 200% PSA with 250% SDA defaults 6.14% of the original
    balance (applying the SMM after removing new defaults gives 6.1469%, i.e. 6.15%)."""
    lines = [
        f"  p{psa}_s{sda}: {{defaults: {{sda: {sda}}}, prepayment: {{psa: {psa}}}, "
        f"recovery: {{rate: {1 - SEVERITY}, lag_months: {LIQUIDATION_LAG}}}}}"
        for psa in SDA_MATRIX
        for sda in SDA_COLUMNS
    ]
    model = compile_text(mbs_deal("\n".join(lines)))
    wrong = []
    for psa, row in SDA_MATRIX.items():
        for sda, published in zip(SDA_COLUMNS, row, strict=True):
            cum = 100.0 * collections_of(model, f"p{psa}_s{sda}")["defaults"].sum() / MBS_BALANCE
            if round(cum, 2) != published:
                wrong.append(f"{psa}% PSA, {sda}% SDA: {cum:.4f}% (published {published:.2f}%)")
    assert not wrong, "; ".join(wrong)


# --------------------------------------------------------------------------- Monte Carlo


def test_monte_carlo_surviving_flows_follow_the_same_rule_in_expectation() -> None:
    """The Monte Carlo takes a defaulting obligor's assets out of its flows while the others
    keep paying; weighted by each obligor's survival, those flows must be the deterministic
    SIFMA flows at the obligor's own default hazard (prepayments on the start balance less its
    expected amortisation), not prepayments on what survives the period's defaults."""
    import dataclasses

    from scipy.stats import norm

    from ipabs import api
    from ipabs.risk.model import (
        A_BALANCE_START,
        A_COLLATERAL_VALUE,
        A_INTEREST,
        A_PREPAYMENT,
        A_SCHED_PRINCIPAL,
        compile_risk,
    )

    second = (
        "      - {obligor: B, balance: 5m, rate: 0.06, term_months: 36, amortisation: annuity,\n"
        "         payment_frequency: monthly, day_count: 30/360, pd_curve: [0.1, 0.25, 0.4]}"
    )
    text = pool_deal("  base: {prepayment: {cpr: 0.3}}", extra_loans=second).replace(
        "pledged_ip: {appraised_value: 4m}}", "pledged_ip: {appraised_value: 4m}, pd: 0.2}"
    )
    text += "risk:\n  correlation: 0.2\n  prepayment: {cpr: 0.3}\n"
    model = compile_text(text)
    ra = compile_risk(model)
    # cumulative PD by each period end, read back from the compiled latent-variable thresholds
    cum = norm.cdf(ra.g_threshold)[ra.ob_group[ra.a_obligor]]
    alive_before = np.concatenate([np.ones((cum.shape[0], 1)), 1.0 - cum[:, :-1]], axis=1)
    hazard = 1.0 - (1.0 - cum) / alive_before
    assert np.all(hazard[:, :30] > 0.005)
    inputs = dataclasses.replace(scenario_inputs(model, "base"), mdr=hazard)
    expected = api.collections(model, inputs=inputs)[0]
    flows = ra.a_flows
    for column, a_col, weight in (
        ("prepayment", A_PREPAYMENT, 1.0 - cum),  # paid by obligors alive at the period end
        ("interest", A_INTEREST, 1.0 - cum),
        ("scheduled_principal", A_SCHED_PRINCIPAL, 1.0 - cum),
        ("balance_start", A_BALANCE_START, alive_before),
        ("collateral_value", A_COLLATERAL_VALUE, alive_before),  # a defaulter's pledge counts in its period
    ):
        index = COLUMNS.index(column)
        np.testing.assert_allclose(
            (weight * flows[:, :, a_col]).sum(axis=0),
            expected[:, index],
            rtol=1e-9,
            atol=1e-6,
            err_msg=column,
        )
