"""Contractual asset schedules against closed forms.

Each test compiles a one-pool deal and compares ``sched_interest`` / ``sched_principal`` /
``sched_balance`` (or, for royalty streams, the collected royalties with no defaults) with
amounts computed here from the textbook formulas.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from helpers import collections_of, compile_text

QUARTER_DAYS_2025 = [90, 91, 92, 92]  # 2025-01-01 -> 04-01 -> 07-01 -> 10-01 -> 2026-01-01


def deal(
    collateral: str,
    *,
    frequency: str = "quarterly",
    closing: str = "2025-01-01",
    first: str = "2025-04-01",
    final: str = "2026-01-01",
    extra: str = "",
) -> str:
    """A deal around ``collateral`` (the YAML of one pool's asset lists)."""
    return f"""
deal:
  name: schedule test
  closing_date: {closing}
  first_payment_date: {first}
  payment_frequency: {frequency}
  legal_final_date: {final}
  collateral_shortfall_reason: royalty streams are valued by appraisal
{extra}
pools:
  - name: pool
{collateral}
tranches:
  - {{name: senior, balance: 1000}}
waterfalls:
  normal:
    - pay_principal: senior
"""


def flows(text: str, asset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = compile_text(text)
    return m.sched_interest[asset], m.sched_principal[asset], m.sched_balance[asset]


def close(actual: np.ndarray, expected: list[float] | np.ndarray, rel: float = 1e-10) -> None:
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=float), rtol=rel, atol=1e-6)


# --------------------------------------------------------------------------- annuity


@pytest.mark.parametrize(
    ("frequency", "months", "first", "n"),
    [
        ("monthly", 1, "2025-02-15", 36),
        ("quarterly", 3, "2025-04-15", 12),
        ("semi-annual", 6, "2025-07-15", 6),
    ],
)
def test_level_annuity_30_360(frequency: str, months: int, first: str, n: int) -> None:
    b, rate = 1_000_000.0, 0.06
    text = deal(
        f"    loans:\n      - {{obligor: A, balance: {b}, rate: {rate}, term_months: {n * months},"
        f" amortisation: annuity, payment_frequency: {frequency}, day_count: 30/360}}",
        frequency=frequency,
        closing="2025-01-15",
        first=first,
        final="2028-01-15",
    )
    interest, principal, balance = flows(text)
    r = rate * months / 12
    payment = b * r / (1 - (1 + r) ** -n)  # B r / (1 - (1+r)^-n)
    k = np.arange(1, n + 1)
    bal = b * (1 + r) ** k - payment * ((1 + r) ** k - 1) / r  # balance after k payments
    bal_before = np.concatenate([[b], bal[:-1]])
    close(interest, bal_before * r)
    close(principal, payment - bal_before * r)
    close(interest + principal, np.full(n, payment))
    close(balance, np.maximum(bal, 0.0))
    assert principal.sum() == pytest.approx(b, rel=1e-12)


def test_annuity_after_interest_only_months() -> None:
    b, rate, io, n = 2_000_000.0, 0.048, 6, 30
    text = deal(
        f"    loans:\n      - {{obligor: A, balance: {b}, rate: {rate}, term_months: {io + n},"
        f" amortisation: annuity, payment_frequency: monthly, day_count: 30/360,"
        f" interest_only_months: {io}}}",
        frequency="monthly",
        closing="2025-01-15",
        first="2025-02-15",
        final="2028-01-15",
    )
    interest, principal, _ = flows(text)
    r = rate / 12
    payment = b * r / (1 - (1 + r) ** -n)
    close(interest[:io], np.full(io, b * r))
    close(principal[:io], np.zeros(io))
    close(interest[io : io + n] + principal[io : io + n], np.full(n, payment))
    assert principal.sum() == pytest.approx(b, rel=1e-12)


# --------------------------------------------------------------------------- other amortisations


def test_equal_principal_act_365() -> None:
    b, rate = 4_000_000.0, 0.05
    text = deal(
        f"    loans:\n      - {{obligor: A, balance: {b}, rate: {rate}, term_months: 12,"
        f" amortisation: equal_principal}}"
    )
    interest, principal, balance = flows(text)
    close(principal, [1_000_000] * 4)
    before = [4e6, 3e6, 2e6, 1e6]
    close(interest, [before[i] * rate * QUARTER_DAYS_2025[i] / 365 for i in range(4)])
    close(balance, [3e6, 2e6, 1e6, 0])


@pytest.mark.parametrize(
    ("day_count", "fractions"),
    [
        ("ACT/365", [d / 365 for d in QUARTER_DAYS_2025]),
        ("ACT/360", [d / 360 for d in QUARTER_DAYS_2025]),
        ("30/360", [0.25] * 4),
        ("ACT/ACT", [d / 365 for d in QUARTER_DAYS_2025]),
    ],
)
def test_interest_only_then_bullet(day_count: str, fractions: list[float]) -> None:
    b, rate = 3_000_000.0, 0.07
    text = deal(
        f"    loans:\n      - {{obligor: A, balance: {b}, rate: {rate}, term_months: 12,"
        f" day_count: {day_count}}}"
    )
    interest, principal, balance = flows(text)
    close(interest, [b * rate * f for f in fractions])
    close(principal, [0, 0, 0, b])
    close(balance, [b, b, b, 0])


def test_bullet_accrues_all_interest_to_maturity() -> None:
    # Matures 2025-11-20, inside the fourth period (10-01, 2026-01-01]: principal and the
    # interest from closing, 323 days, arrive there.
    b, rate = 5_000_000.0, 0.06
    text = deal(
        f"    loans:\n      - {{obligor: A, balance: {b}, rate: {rate},"
        f" maturity_date: 2025-11-20, amortisation: bullet}}"
    )
    interest, principal, balance = flows(text)
    days = (dt.date(2025, 11, 20) - dt.date(2025, 1, 1)).days
    assert days == 323
    close(interest, [0, 0, 0, b * rate * days / 365])
    close(principal, [0, 0, 0, b])
    close(balance, [b, b, b, 0])


def test_custom_schedule() -> None:
    b, rate = 5_000_000.0, 0.04
    text = deal(
        f"    loans:\n      - {{obligor: A, balance: {b}, rate: {rate}, maturity_date: 2026-01-01,"
        " amortisation: custom, schedule: [{date: 2025-04-01, principal: 1m},"
        " {date: 2025-10-01, principal: 2m}]}"
    )
    interest, principal, balance = flows(text)
    # interest on each schedule date for the time since the last: 90, 183 and 92 days
    close(interest, [5e6 * rate * 90 / 365, 0, 4e6 * rate * 183 / 365, 2e6 * rate * 92 / 365])
    close(principal, [1e6, 0, 2e6, 2e6])
    close(balance, [4e6, 4e6, 2e6, 0])


# --------------------------------------------------------------------------- floating rates


FLOATING_INDEX = """
indices:
  IDX: [{from: 2020-01-01, rate: 2%}, {from: 2025-07-01, rate: 3%}, {from: 2025-08-15, rate: 1%}]
"""


def test_floating_rate_resets_with_spread_and_floor() -> None:
    # The rate is set at the start of each accrual period from the step curve:
    #   2025-01-01: 2%, 04-01: 2%, 07-01: 3% (reset on the step date), 10-01: 1%.
    # Loan A: index + 1.5%, floor 4%:  4%, 4%, 4.5%, 4%.  Loan B: index + 0.5%, no floor.
    text = deal(
        "    loans:\n"
        "      - {obligor: A, balance: 2m, rate: {index: IDX, spread: 1.5%, floor: 4%}, term_months: 12}\n"
        "      - {obligor: B, balance: 1m, rate: {index: IDX, spread: 0.5%}, term_months: 12}",
        extra=FLOATING_INDEX,
    )
    m = compile_text(text)
    d = QUARTER_DAYS_2025
    close(m.sched_interest[0], [2e6 * r * d[i] / 365 for i, r in enumerate([0.04, 0.04, 0.045, 0.04])])
    close(m.sched_interest[1], [1e6 * r * d[i] / 365 for i, r in enumerate([0.025, 0.025, 0.035, 0.015])])


def test_floating_tranche_coupon_resets_each_period() -> None:
    text = deal(
        "    loans:\n      - {obligor: A, balance: 2m, rate: 5%, term_months: 12}",
        extra=FLOATING_INDEX,
    ).replace(
        "  - {name: senior, balance: 1000}",
        "  - {name: senior, balance: 1000, coupon: {index: IDX, spread: 1%, floor: 3.2%}}",
    )
    m = compile_text(text)
    close(m.cd.tr_rate[0], [0.032, 0.032, 0.04, 0.032])


# --------------------------------------------------------------------------- bucketing


def test_monthly_payments_bucket_into_quarterly_periods() -> None:
    b, rate, n = 1_200_000.0, 0.06, 24
    text = deal(
        f"    loans:\n      - {{obligor: A, balance: {b}, rate: {rate}, term_months: {n},"
        f" amortisation: annuity, payment_frequency: monthly, day_count: 30/360}}",
        closing="2025-01-15",
        first="2025-04-15",
        final="2027-01-15",
    )
    interest, principal, balance = flows(text)
    r = rate / 12
    payment = b * r / (1 - (1 + r) ** -n)
    k = np.arange(0, n + 1)
    bal = b * (1 + r) ** k - payment * ((1 + r) ** k - 1) / r
    month_interest = bal[:-1] * r
    month_principal = payment - month_interest
    close(interest, month_interest.reshape(8, 3).sum(axis=1))
    close(principal, month_principal.reshape(8, 3).sum(axis=1))
    close(balance, np.maximum(bal[3::3], 0.0))


def test_off_grid_payment_dates_fall_in_the_period_that_contains_them() -> None:
    # Monthly interest on the 20th, maturity 2025-12-20, quarterly periods ending on the 15th:
    # payment dates 01-20 (5-day stub), 02-20, ..., 12-20. A period (prev, end] collects
    # 01-20/02-20/03-20, then 04-20/05-20/06-20, 07-20/08-20/09-20, 10-20/11-20/12-20.
    b, rate = 3_600_000.0, 0.06
    text = deal(
        f"    loans:\n      - {{obligor: A, balance: {b}, rate: {rate}, maturity_date: 2025-12-20,"
        " payment_frequency: monthly, day_count: 30/360}",
        closing="2025-01-15",
        first="2025-04-15",
        final="2026-01-15",
    )
    interest, principal, _ = flows(text)
    month = b * rate / 12
    stub = b * rate * 5 / 360
    close(interest, [stub + 2 * month, 3 * month, 3 * month, 3 * month])
    close(principal, [0, 0, 0, b])


# --------------------------------------------------------------------------- leases, licences


LEASE_RENTS = {
    "level": ([1.1e6] * 4, 0.0),
    "rising": ([0.5e6, 1.0e6, 1.5e6, 1.6e6], 0.0),
    "residual": ([1.0e6] * 4, 0.5e6),
    "rent_holiday": ([0.0, 1.4e6, 1.4e6, 1.6e6], 0.0),
}


@pytest.mark.parametrize("case", list(LEASE_RENTS))
def test_lease_with_explicit_rents_reproduces_the_rents(case: str) -> None:
    rents, residual = LEASE_RENTS[case]
    text = deal(f"    leases:\n      - {{obligor: L, balance: 4m, rents: {rents}, residual: {residual}}}")
    interest, principal, balance = flows(text)
    expected = list(rents)
    expected[-1] += residual
    close(interest + principal, expected, rel=1e-9)
    assert principal.sum() == pytest.approx(4e6, rel=1e-12)
    assert balance[-1] == pytest.approx(0.0, abs=1e-6)


def test_monthly_rents_from_a_month_end_closing_are_reproduced() -> None:
    # Rent dates 02-28, 03-31, 04-30, ..., 2026-01-31: the rent schedule must still be
    # reproduced exactly. The deal's periods end on month ends from 03-31 (the first period,
    # (01-31, 03-31], collects the first two rents).
    rents = [260_000.0] * 12
    text = deal(
        f"    leases:\n      - {{obligor: L, balance: 3m, payment_frequency: monthly, rents: {rents}}}",
        frequency="monthly",
        closing="2025-01-31",
        first="2025-03-31",
        final="2026-01-31",
    )
    interest, principal, _ = flows(text)
    close(interest + principal, [2 * rents[0], *rents[2:]], rel=1e-9)


def test_level_rent_lease_amortises_to_the_residual() -> None:
    b, rate, n, residual = 4_000_000.0, 0.08, 8, 600_000.0
    text = deal(
        f"    leases:\n      - {{obligor: L, balance: {b}, rate: {rate}, term_months: {3 * n},"
        f" residual: {residual}}}",
        final="2027-01-01",
    )
    interest, principal, balance = flows(text)
    r = rate / 4
    v = (1 + r) ** -n
    payment = (b - residual * v) * r / (1 - v)  # level rent with a balloon
    expected = [payment] * n
    expected[-1] += residual
    close(interest + principal, expected)
    close(balance[-2:], [(payment + residual) / (1 + r), 0.0])  # before and after the last rent


def test_fixed_licence_instalments() -> None:
    instalments = [1.0e6, 1.0e6, 1.2e6]
    text = deal(
        "    royalties:\n"
        f"      - {{obligor: L, kind: fixed, balance: 3m, instalments: {instalments}}}\n"
        f"      - {{obligor: M, kind: fixed, instalments: {instalments}}}"
    )
    m = compile_text(text)
    # priced at 3m: an implicit rate reproduces every instalment, principal sums to the price
    close(m.sched_interest[0, :3] + m.sched_principal[0, :3], instalments, rel=1e-9)
    assert m.sched_principal[0].sum() == pytest.approx(3e6, rel=1e-12)
    assert m.sched_interest[0].sum() == pytest.approx(sum(instalments) - 3e6, rel=1e-9)
    # no price: valued at face, so no interest
    close(m.sched_principal[1, :3], instalments)
    close(m.sched_interest[1], [0, 0, 0, 0])


# --------------------------------------------------------------------------- royalty streams


ROYALTY_DEAL = dict(final="2027-01-01")
QUARTER_DAYS_2026 = [90, 91, 92, 92]


def test_running_royalty_tiers_cap_and_patent_expiry() -> None:
    # Sales 25m a year (no growth); 5% to 10m, 8% from 10m to 20m, 10% above 20m:
    # 500,000 + 800,000 + 500,000 = 1.8m a year, capped at 1.5m. The patent expires on
    # 2026-05-16: the period (04-01, 07-01] accrues 45 days, paid on 07-01; nothing after.
    text = deal(
        "    royalties:\n"
        "      - {obligor: L, kind: running, rate: 5%, sales: {initial: 25m},"
        " tiers: [{above: 10m, rate: 8%}, {above: 20m, rate: 10%}], cap: 1.5m,"
        " patent_expiry: 2026-05-16, valuation: 5m}",
        **ROYALTY_DEAL,
    )
    royalty = collections_of(compile_text(text))["royalty"]
    days = [*QUARTER_DAYS_2025, 90, 45, 0, 0]
    close(royalty, [1.5e6 * d / 365 for d in days])


def test_running_royalty_tiers_below_the_cap() -> None:
    # Sales 15m: 5% x 10m + 8% x 5m = 900,000 a year.
    text = deal(
        "    royalties:\n"
        "      - {obligor: L, kind: running, rate: 5%, sales: {initial: 15m},"
        " tiers: [{above: 10m, rate: 8%}, {above: 20m, rate: 10%}], cap: 1.5m, valuation: 5m}",
        **ROYALTY_DEAL,
    )
    royalty = collections_of(compile_text(text))["royalty"]
    close(royalty, [900_000 * d / 365 for d in QUARTER_DAYS_2025 + QUARTER_DAYS_2026])


def test_running_royalty_growth_minimum_and_payment_lag() -> None:
    # Sales 2.8m growing 10% a year, measured at the middle of each accrual period; 5% royalty
    # with a 150,000 minimum a year. Paid three months late: the last accrual falls after
    # legal final and is lost.
    text = deal(
        "    royalties:\n"
        "      - {obligor: L, kind: running, rate: 5%, sales: {initial: 2.8m, growth: 10%},"
        " minimum: 150k, payment_lag_months: 3, valuation: 5m}",
        **ROYALTY_DEAL,
    )
    royalty = collections_of(compile_text(text))["royalty"]
    days = QUARTER_DAYS_2025 + QUARTER_DAYS_2026
    starts = np.concatenate([[0], np.cumsum(days)[:-1]])
    accrued = []
    for s, d in zip(starts, days, strict=True):
        sales = 2.8e6 * 1.1 ** ((s + d / 2) / 365)
        accrued.append(max(0.05 * sales, 150_000) * d / 365)
    assert accrued[0] == pytest.approx(150_000 * 90 / 365)  # the minimum binds at first
    assert 0.05 * 2.8e6 * 1.1 ** ((starts[-1] + 46) / 365) > 150_000  # and not at the end
    close(royalty, [0.0, *accrued[:-1]])


def test_income_share_semi_annual_payments() -> None:
    # 70% of an income of 3m a year falling 5% a year, accrued each quarter, paid semi-annually
    # on 07-01 and 01-01: quarters 1-2 are paid in period 2, quarters 3-4 in period 4.
    text = deal(
        "    royalties:\n"
        "      - {obligor: H, kind: income_share, share: 70%, income: {initial: 3m, growth: -5%},"
        " payment_frequency: semi-annual, valuation: 5m}",
    )
    royalty = collections_of(compile_text(text))["royalty"]
    starts = [0, 90, 181, 273]
    accrued = [
        0.7 * 3e6 * 0.95 ** ((s + d / 2) / 365) * d / 365
        for s, d in zip(starts, QUARTER_DAYS_2025, strict=True)
    ]
    close(royalty, [0.0, accrued[0] + accrued[1], 0.0, accrued[2] + accrued[3]])
