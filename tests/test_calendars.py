"""Calendars: the Chinese exchange holiday calendar, business-day adjustment, determination and
payment dates, note interest on the adjusted dates, and day counts — cross-checked against the
Shanghai Stock Exchange's published closures and against QuantLib (a test extra)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, compile_text, run_text
from test_montecarlo import assert_periods_equal

from ipabs.calendars import BusinessDays, add_months_eom, business_days
from ipabs.cli import EXIT_OK, main
from ipabs.dates import DAY_COUNTS, to_day, year_fraction
from ipabs.deal.load import parse_deal
from ipabs.errors import DealError
from ipabs.montecarlo import simulate

# The Shanghai Stock Exchange's 2025 trading-calendar notice: closed 1 Jan; 28 Jan - 4 Feb
# (Spring Festival); 4 Apr (Qingming); 1-5 May; 31 May - 2 Jun (Dragon Boat); 1-8 Oct
# (National Day and Mid-Autumn), and on every weekend, including the State Council's makeup
# working days 26 Jan, 8 Feb, 27 Apr, 28 Sep and 11 Oct 2025.
SSE_2025_WEEKDAY_CLOSURES = [
    "2025-01-01",
    "2025-01-28",
    "2025-01-29",
    "2025-01-30",
    "2025-01-31",
    "2025-02-03",
    "2025-02-04",
    "2025-04-04",
    "2025-05-01",
    "2025-05-02",
    "2025-05-05",
    "2025-06-02",
    "2025-10-01",
    "2025-10-02",
    "2025-10-03",
    "2025-10-06",
    "2025-10-07",
    "2025-10-08",
]
MAKEUP_DAYS_2025 = ["2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11"]


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# --------------------------------------------------------------------------- the exchange calendar


def test_exchange_calendar_matches_the_published_2025_closures() -> None:
    cal = business_days("china_exchange")
    closed = [x for x in (d("2025-01-01") + dt.timedelta(k) for k in range(365)) if x.weekday() < 5]
    closed = [x.isoformat() for x in closed if not cal.is_business_day(x)]
    assert closed == SSE_2025_WEEKDAY_CLOSURES


def test_makeup_working_days_are_not_exchange_business_days() -> None:
    cal = business_days("china_exchange")
    for x in MAKEUP_DAYS_2025:
        assert not cal.is_business_day(d(x)), x


def test_past_the_known_years_only_weekends_and_own_holidays_close() -> None:
    cal = business_days("china_exchange", [d("2035-10-01")])
    assert cal.known_until is not None and cal.known_until < 2035
    assert cal.is_business_day(d("2035-10-02"))  # a Tuesday: no published holiday yet
    assert not cal.is_business_day(d("2035-10-01"))  # the deal's own holiday
    assert not cal.is_business_day(d("2035-10-06"))  # a Saturday


def test_conventions_by_hand() -> None:
    cal = business_days("china_exchange")
    # 2026-10-01 (Thursday) starts the National Day closure to 10-07; 10-08 is a Thursday
    assert cal.adjust(d("2026-10-01"), "following") == d("2026-10-08")
    assert cal.adjust(d("2026-10-01"), "modified_following") == d("2026-10-08")
    assert cal.adjust(d("2026-10-01"), "preceding") == d("2026-09-30")
    assert cal.adjust(d("2026-10-01"), "unadjusted") == d("2026-10-01")
    # 2026-01-31 is a Saturday: following leaves the month, modified following does not
    assert cal.adjust(d("2026-01-31"), "following") == d("2026-02-02")
    assert cal.adjust(d("2026-01-31"), "modified_following") == d("2026-01-30")
    assert cal.add_business_days(d("2026-09-30"), 5) == d("2026-10-14")


def test_month_end_determination_dates_stay_on_month_ends() -> None:
    assert [add_months_eom(d("2026-06-30"), 3 * k) for k in range(4)] == [
        d("2026-06-30"),
        d("2026-09-30"),
        d("2026-12-31"),
        d("2027-03-31"),
    ]
    assert add_months_eom(d("2026-06-15"), 3) == d("2026-09-15")


# --------------------------------------------------------------------------- QuantLib cross-checks


def test_adjustment_and_business_day_counts_agree_with_quantlib() -> None:
    ql = pytest.importorskip("QuantLib")
    sse = ql.China(ql.China.SSE)
    ours = business_days("china_exchange")
    conventions = {
        "following": ql.Following,
        "modified_following": ql.ModifiedFollowing,
        "preceding": ql.Preceding,
        "unadjusted": ql.Unadjusted,
    }
    start = d("2015-01-01")
    for k in range(0, (d("2026-12-20") - start).days, 3):
        x = start + dt.timedelta(k)
        q = ql.Date(x.day, x.month, x.year)
        assert ours.is_business_day(x) == sse.isBusinessDay(q), x
        for name, code in conventions.items():
            a = sse.adjust(q, code)
            assert ours.adjust(x, name) == dt.date(a.year(), a.month(), a.dayOfMonth()), (x, name)
        if k % 9 == 0:
            a = sse.advance(q, 5, ql.Days)
            assert ours.add_business_days(x, 5) == dt.date(a.year(), a.month(), a.dayOfMonth()), x


def test_user_holidays_agree_with_a_quantlib_bespoke_calendar() -> None:
    ql = pytest.importorskip("QuantLib")
    extra = [d("2031-01-01"), d("2031-02-03"), d("2031-02-04"), d("2031-05-30")]
    ours = BusinessDays(frozenset(extra))
    theirs = ql.WeekendsOnly()
    for x in extra:
        theirs.addHoliday(ql.Date(x.day, x.month, x.year))
    for k in range(200):
        x = d("2031-01-01") + dt.timedelta(k)
        q = ql.Date(x.day, x.month, x.year)
        a = theirs.adjust(q, ql.ModifiedFollowing)
        assert ours.adjust(x, "modified_following") == dt.date(a.year(), a.month(), a.dayOfMonth()), x


@pytest.mark.parametrize("name", ["ACT/365", "ACT/360", "30/360", "ACT/ACT"])
def test_day_counts_agree_with_quantlib(name: str) -> None:
    ql = pytest.importorskip("QuantLib")
    counter = {
        "ACT/365": ql.Actual365Fixed(),
        "ACT/360": ql.Actual360(),
        "30/360": ql.Thirty360(ql.Thirty360.BondBasis),
        "ACT/ACT": ql.ActualActual(ql.ActualActual.ISDA),
    }[name]
    rng = np.random.default_rng(7)
    base = d("2023-01-01")
    for _ in range(400):
        a = base + dt.timedelta(int(rng.integers(0, 3000)))
        b = a + dt.timedelta(int(rng.integers(1, 800)))
        # month ends and the 30th/31st, where 30/360 rules bite
        if rng.random() < 0.3:
            a = a.replace(day=min(a.day + 30, 28) if a.month == 2 else 30 if a.day < 15 else a.day)
        expected = counter.yearFraction(ql.Date(a.day, a.month, a.year), ql.Date(b.day, b.month, b.year))
        got = year_fraction(to_day(a), to_day(b), DAY_COUNTS[name])
        assert got == pytest.approx(expected, abs=1e-14), (name, a, b)


# --------------------------------------------------------------------------- a deal with a calendar

DEAL = """
deal:
  name: calendar
  cut_off_date: 2026-03-31
  closing_date: 2026-04-20
  first_payment_date: 2026-07-07
  payment_frequency: quarterly
  legal_final_date: 2027-07-07
  day_count: ACT/365
  calendar:
    holidays: china_exchange
    extra_holidays: [2027-01-01]
    business_day: modified_following
    determination_dates: {first: 2026-06-30, payment_delay_business_days: 5}
pools:
  - name: pool
    loans:
      - {obligor: A, balance: 1000000, rate: 6%, maturity_date: 2027-06-15, payment_frequency: monthly,
         day_count: 30/360, age_months: 3, pd: 0}
scenarios:
  base: {}
tranches:
  - {name: senior, balance: 900000, coupon: 3%}
  - {name: sub, balance: 100000}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_residual: sub
RISK
"""


def test_payment_dates_follow_the_determination_dates() -> None:
    model = compile_text(DEAL.replace("RISK", ""))
    # determination dates are month ends; payment dates 5 exchange business days later
    # (2026-10-01..07 closed; 2027-01-01 the deal's own holiday); the last is the legal final date
    assert model.payment_dates == [
        d(x) for x in ("2026-07-07", "2026-10-14", "2027-01-08", "2027-04-07", "2027-07-07")
    ]
    ends = [dt.date.fromordinal(int(x) + 719163) for x in model.collection_grid]
    assert ends == [
        d(x) for x in ("2026-03-31", "2026-06-30", "2026-09-30", "2026-12-31", "2027-03-31", "2027-06-30")
    ]
    # a legal final date off the regular dates ends a short last period collecting up to it
    late = compile_text(
        DEAL.replace("RISK", "").replace("legal_final_date: 2027-07-07", "legal_final_date: 2027-07-14")
    )
    assert late.payment_dates[-2:] == [d("2027-07-07"), d("2027-07-14")]
    assert int(late.collection_grid[-2]) == to_day(d("2027-06-30"))
    assert int(late.collection_grid[-1]) == to_day(d("2027-07-14"))


def test_collections_by_determination_date_and_interest_by_payment_date() -> None:
    r = run_text(DEAL.replace("RISK", ""))
    assert_conserved(r, 1e6)
    # the loan pays 5,000 interest on the 15th of every month (30/360, a seasoned loan): each
    # collection period holds three payments; the last one also holds the 1,000,000 at maturity
    assert_cents(col(r, "pool.interest"), [15_000.0] * 4 + [15_000.0], "collections")
    assert_cents(col(r, "pool.scheduled_principal"), [0.0] * 4 + [1_000_000.0], "principal")
    # the notes accrue ACT/365 on the adjusted payment dates, from closing
    days = [78, 99, 86, 89, 91]  # 04-20 > 07-07 > 10-14 > 01-08 > 04-07 > 07-07
    assert_cents(col(r, "senior.interest_due"), [900_000 * 0.03 * n / 365 for n in days], "senior interest")


def test_zero_pd_paths_equal_the_deterministic_run_with_a_calendar() -> None:
    risk = "risk:\n  default_pd: 0\n  factors: {global: 0.2}\n  recovery: {model: constant, rate: 0}\n"
    text = DEAL.replace("RISK", risk)
    model = compile_text(text)
    det = run_text(text)
    res = simulate(model, paths=3, seed=3, keep=[0, 2])
    for i, kept in res.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")


def test_adjusted_payment_dates_without_determination_dates() -> None:
    text = DEAL.replace("RISK", "").replace(
        "    determination_dates: {first: 2026-06-30, payment_delay_business_days: 5}\n", ""
    )
    text = text.replace("first_payment_date: 2026-07-07", "first_payment_date: 2026-07-01")
    text = text.replace("legal_final_date: 2027-07-07", "legal_final_date: 2027-07-01")
    model = compile_text(text)
    # 2026-10-01 -> 10-08; 2027-01-01 (own holiday, Friday) -> 2027-01-04; 2027-04-01 a Thursday
    assert model.payment_dates == [
        d(x) for x in ("2026-07-01", "2026-10-08", "2027-01-04", "2027-04-01", "2027-07-01")
    ]
    r = run_text(text)
    # collection periods end on the adjusted payment dates: 04-15..06-15 in the first
    assert col(r, "pool.interest")[0] == pytest.approx(15_000.0, abs=0.005)
    days = [72, 99, 88, 87, 91]
    assert_cents(col(r, "senior.interest_due"), [900_000 * 0.03 * n / 365 for n in days], "senior interest")


def test_deal_without_calendar_keeps_its_dates() -> None:
    text = DEAL.replace("RISK", "")
    start = text.index("  calendar:")
    end = text.index("pools:")
    plain = text[:start] + text[end:]
    plain = plain.replace("first_payment_date: 2026-07-07", "first_payment_date: 2026-07-15")
    model = compile_text(plain)
    assert model.payment_dates[:3] == [d("2026-07-15"), d("2026-10-15"), d("2027-01-15")]


# --------------------------------------------------------------------------- warnings and errors


def test_warns_when_the_deal_outlives_the_holiday_calendar() -> None:
    text = DEAL.replace("RISK", "").replace("legal_final_date: 2027-07-07", "legal_final_date: 2035-07-16")
    deal = parse_deal(text, "deal.yaml")
    warnings = [w for w in deal.warnings if w.path == "deal.calendar.holidays"]
    assert len(warnings) == 1, deal.warnings
    w = warnings[0]
    assert w.line == 11 and w.column > 0
    assert "weekends only" in str(w) and "extra_holidays" in str(w)


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        (
            "business_day: modified_following",
            "business_day: modified",
            "deal.calendar.business_day",
            "modified_following",
        ),
        ("holidays: china_exchange", "holidays: shanghai", "deal.calendar.holidays", "china_exchange"),
        (
            "extra_holidays: [2027-01-01]",
            "extra_holidays: [2027-13-01]",
            "deal.calendar.extra_holidays",
            "date",
        ),
        (
            "first_payment_date: 2026-07-07",
            "first_payment_date: 2026-07-06",
            "deal.first_payment_date",
            "write first_payment_date: 2026-07-07",
        ),
        (
            "{first: 2026-06-30,",
            "{first: 2026-03-15,",
            "deal.calendar.determination_dates.first",
            "after the cut-off date",
        ),
        (
            "payment_delay_business_days: 5}",
            "payment_delay_business_days: 0}",
            "deal.calendar.determination_dates.payment_delay_business_days",
            "at least 1",
        ),
    ],
)
def test_bad_calendar_is_a_located_error(old: str, new: str, path: str, words: str) -> None:
    text = DEAL.replace("RISK", "")
    assert text.count(old) == 1
    with pytest.raises(DealError) as err:
        parse_deal(text.replace(old, new), "deal.yaml")
    issue = err.value.issues[0]
    assert issue.path.startswith(path), issue
    assert words in str(issue), issue
    line = next(n for n, x in enumerate(text.splitlines(), 1) if old in x)
    assert issue.line == line and issue.column > 0, issue


def test_the_example_of_the_docs_runs_as_described() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "calendars.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    model = compile_text(example)
    assert model.payment_dates == [
        d(x) for x in ("2026-07-07", "2026-10-14", "2027-01-08", "2027-04-07", "2027-07-07")
    ]
    ends = [dt.date.fromordinal(int(x) + 719163) for x in model.collection_grid[1:]]
    assert ends == [d(x) for x in ("2026-06-30", "2026-09-30", "2026-12-31", "2027-03-31", "2027-06-30")]
    assert model.assets.age_months.tolist() == [3, 6]
    for name in ("base", "stress"):
        assert_conserved(run_text(example, name), 1e6)


def test_a_revolving_deal_refuses_determination_dates_and_says_why() -> None:
    from test_revolving import deal as revolving_deal

    text = revolving_deal().replace(
        "  legal_final_date: 2027-01-01\n",
        "  legal_final_date: 2027-01-01\n  cut_off_date: 2023-12-31\n",
    )
    with pytest.raises(DealError) as err:
        parse_deal(text, "deal.yaml")
    issue = err.value.issues[0]
    assert issue.path == "deal.cut_off_date" and issue.line > 0, issue
    assert "revolving deal cannot have determination dates or a cut-off date" in str(issue)


def test_run_prints_the_calendar_warning_with_the_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the dates a run uses past the calendar's last year are weekends-only: say so in `run` too
    text = DEAL.replace("RISK", "").replace("legal_final_date: 2027-07-07", "legal_final_date: 2035-07-16")
    path = tmp_path / "deal.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["run", str(path)]) == EXIT_OK
    err = capsys.readouterr().err
    assert "warning: " in err and "deal.calendar.holidays" in err and "weekends only" in err
