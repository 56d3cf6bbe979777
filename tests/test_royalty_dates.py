"""Royalty streams whose own payment dates differ from the note payment dates.

A stream pays, on each of its own payment dates (``start + k x frequency``, plus the payment
lag), what it accrued since its previous date; that cash is collected in the note period in
which the payment day falls. Nothing may vanish: the total collected is the sum of the stream's
own accruals whose payment day is on or before legal final.

The expected amounts are built here from the calendar alone (a flat royalty accrues
``annual x days / 365``), not from the engine's slots.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from helpers import CENT, assert_cents, col, compile_text

from ipabs import api
from ipabs.dates import add_months
from ipabs.deal.risk import RiskModel
from ipabs.montecarlo import simulate
from ipabs.risk.montecarlo_numba_fns import P_ROYALTY

ANNUAL = 120_000.0  # 10% of 1.2m of sales a year, flat
MONTHS = {"monthly": 1, "quarterly": 3, "semi-annual": 6, "annual": 12}


def royalty_deal(
    *,
    closing: dt.date,
    first: dt.date,
    frequency: str,
    final: dt.date,
    stream_frequency: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    lag: int = 0,
) -> str:
    """One flat running royalty and a zero-coupon note that takes all cash."""
    extra = ""
    if start is not None:
        extra += f", start_date: {start}"
    if end is not None:
        extra += f", end_date: {end}"
    return f"""deal:
  name: royalty dates
  closing_date: {closing}
  first_payment_date: {first}
  payment_frequency: {frequency}
  legal_final_date: {final}
  collateral_shortfall_reason: the stream is valued by appraisal
pools:
  - name: pool
    royalties:
      - {{obligor: Licensee, kind: running, rate: 10%, sales: {{initial: 1.2m, growth: 0}},
         payment_frequency: {stream_frequency}, payment_lag_months: {lag}{extra}}}
tranches:
  - {{name: notes, balance: 1m}}
waterfalls:
  normal:
    - pay_principal: notes
    - pay_residual: notes
"""


def note_dates(first: dt.date, months: int, final: dt.date) -> list[dt.date]:
    out = []
    k = 0
    while add_months(first, k * months) < final:
        out.append(add_months(first, k * months))
        k += 1
    return [*out, final]


def expected_by_period(
    *,
    closing: dt.date,
    first: dt.date,
    frequency: str,
    final: dt.date,
    stream_frequency: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    lag: int = 0,
) -> tuple[np.ndarray, float]:
    """Royalty collected in each note period, and the total of the stream's own accruals paid
    on or before legal final, from the stream's own calendar."""
    dates = note_dates(first, MONTHS[frequency], final)
    begin = start or closing
    stop = min(end or final, final)
    out = np.zeros(len(dates))
    total = 0.0
    k = 1
    prev = begin
    while prev < stop:
        own = add_months(begin, k * MONTHS[stream_frequency])
        accrued = ANNUAL * ((min(own, stop) - max(prev, closing)).days / 365.0)
        pay_day = add_months(own, lag)
        if pay_day <= final and accrued > 0:
            total += accrued
            period = next(i for i, d in enumerate(dates) if pay_day <= d)
            out[period] += accrued
        prev = own
        k += 1
    return out, total


ZERO_RISK = RiskModel.model_validate(
    {"default_pd": 0.0, "royalty": {"volatility": 0.0, "invalidation_hazard": 0.0}}
)


def test_closing_on_the_15th_notes_on_the_20th_collects_five_monthly_payments() -> None:
    # The licensee pays on Feb 15, Mar 15, ..., Jun 15 what accrued since the previous 15th:
    # each payment falls in the note period ending on the following 20th.
    text = royalty_deal(
        closing=dt.date(2024, 1, 15),
        first=dt.date(2024, 2, 20),
        frequency="monthly",
        final=dt.date(2024, 6, 20),
        stream_frequency="monthly",
        end=dt.date(2024, 6, 15),
    )
    royalty = col(api.run(compile_text(text)), "pool.royalty")
    days = [31, 29, 31, 30, 31]  # Jan 15 -> Feb 15 -> ... -> Jun 15 (2024 is a leap year)
    assert_cents(royalty, [ANNUAL * d / 365 for d in days], "royalty per note period")


def test_accrual_paid_after_legal_final_is_not_collected() -> None:
    # The licence runs to legal final (Jun 20): the stub Jun 15 -> Jun 20 is paid on Jul 15,
    # after legal final, and belongs to the stream's owner after the deal; the five payments on
    # the 15th are all collected.
    text = royalty_deal(
        closing=dt.date(2024, 1, 15),
        first=dt.date(2024, 2, 20),
        frequency="monthly",
        final=dt.date(2024, 6, 20),
        stream_frequency="monthly",
    )
    royalty = col(api.run(compile_text(text)), "pool.royalty")
    assert_cents(royalty, [ANNUAL * d / 365 for d in [31, 29, 31, 30, 31]], "royalty per note period")


def test_payment_between_the_last_note_date_and_an_off_grid_legal_final_is_collected() -> None:
    # Notes on the 20th, legal final on Jun 25 (a five-day last period); the stream pays on the
    # 22nd, so its Jun 22 payment falls after the last regular note date and is collected at
    # legal final.
    text = royalty_deal(
        closing=dt.date(2024, 1, 22),
        first=dt.date(2024, 2, 20),
        frequency="monthly",
        final=dt.date(2024, 6, 25),
        stream_frequency="monthly",
        end=dt.date(2024, 6, 22),
    )
    royalty = col(api.run(compile_text(text)), "pool.royalty")
    assert len(royalty) == 6
    days = [0, 31, 29, 31, 30, 31]  # paid Feb 22 (period 2) ... Jun 22 (the short last period)
    assert_cents(royalty, [ANNUAL * d / 365 for d in days], "royalty per note period")


CASES = {
    # name: (closing, first note date, note frequency, legal final, stream frequency, start, lag)
    "notes 20th, stream 15th, monthly": (
        "2024-01-15",
        "2024-02-20",
        "monthly",
        "2025-01-20",
        "monthly",
        None,
        0,
    ),
    "notes 1st, stream 28th, monthly": (
        "2024-01-28",
        "2024-03-01",
        "monthly",
        "2025-03-01",
        "monthly",
        None,
        0,
    ),
    "quarterly notes, monthly stream, offset": (
        "2024-01-15",
        "2024-04-20",
        "quarterly",
        "2025-04-20",
        "monthly",
        None,
        0,
    ),
    "monthly notes, quarterly stream, offset": (
        "2024-01-15",
        "2024-02-25",
        "monthly",
        "2025-01-25",
        "quarterly",
        None,
        0,
    ),
    "quarterly notes, quarterly stream started later, lag": (
        "2024-01-15",
        "2024-04-15",
        "quarterly",
        "2026-01-15",
        "quarterly",
        "2024-02-03",
        1,
    ),
    "semi-annual notes, quarterly stream started before closing": (
        "2024-03-31",
        "2024-09-30",
        "semi-annual",
        "2026-09-30",
        "quarterly",
        "2024-01-10",
        0,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_royalty_collected_equals_the_streams_own_accruals(case: str) -> None:
    closing, first, freq, final, stream_freq, start, lag = CASES[case]
    kw = {
        "closing": dt.date.fromisoformat(closing),
        "first": dt.date.fromisoformat(first),
        "frequency": freq,
        "final": dt.date.fromisoformat(final),
        "stream_frequency": stream_freq,
        "start": None if start is None else dt.date.fromisoformat(start),
        "lag": lag,
    }
    expected, total = expected_by_period(**kw)
    model = compile_text(royalty_deal(**kw))
    det = api.run(model)
    royalty = col(det, "pool.royalty")
    assert_cents(royalty, expected, "royalty per note period")
    assert royalty.sum() == pytest.approx(total, abs=CENT)
    # zero-risk Monte Carlo paths collect exactly the same cash
    result = simulate(model, paths=4, seed=3, threads=1, keep=[2], risk=ZERO_RISK)
    assert np.allclose(result.pool_outcomes[:, P_ROYALTY], total, rtol=0, atol=CENT)
    assert_cents(col_of(result.kept[2].periods, "pool.royalty"), expected, "path royalty per period")


def col_of(periods: object, name: str) -> np.ndarray:
    return periods[name].to_numpy(dtype=np.float64)  # type: ignore[index]
