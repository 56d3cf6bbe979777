"""Calendar arithmetic: month shifts, day counts and the deal's payment grid.

Dates inside kernels are integer day numbers (days since 1970-01-01); the helpers here work on
both ``datetime.date`` and day numbers so that Python and compiled code agree exactly.
"""

from __future__ import annotations

import calendar
import datetime as dt

import numpy as np

from ipabs._jit import njit

EPOCH = dt.date(1970, 1, 1)

DAY_COUNTS = {"ACT/365": 0, "ACT/360": 1, "30/360": 2, "ACT/ACT": 3}
"""Day-count convention -> integer code used by kernels."""

MONTHLY_GRID = 4
"""Internal day count: whole months / 12, so instalments on a monthly grid are exact."""


def add_months(d: dt.date, months: int) -> dt.date:
    """Shift ``d`` by whole months, clamping the day to the month's length (Jan 31 + 1 = Feb 28)."""
    m = d.month - 1 + months
    y = d.year + m // 12
    m = m % 12 + 1
    return dt.date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def to_day(d: dt.date) -> int:
    """Day number of a date (days since 1970-01-01)."""
    return (d - EPOCH).days


def from_day(n: int) -> dt.date:
    """Date of a day number."""
    return EPOCH + dt.timedelta(days=int(n))


@njit
def civil_from_days(z: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number (H. Hinnant's algorithm)."""
    z = z + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    return y, m, d


@njit
def days_from_civil(y: int, m: int, d: int) -> int:
    """Day number of (year, month, day)."""
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit
def _is_leap(y: int) -> bool:
    return (y % 4 == 0 and y % 100 != 0) or y % 400 == 0


@njit
def days_in_month(y: int, m: int) -> int:
    """Length of a month."""
    if m == 2:
        return 29 if _is_leap(y) else 28
    if m in (4, 6, 9, 11):
        return 30
    return 31


@njit
def add_months_day(day: int, months: int) -> int:
    """:func:`add_months` on day numbers."""
    y, m, d = civil_from_days(day)
    mm = m - 1 + months
    y2 = y + mm // 12
    m2 = mm % 12 + 1
    d2 = min(d, days_in_month(y2, m2))
    return days_from_civil(y2, m2, d2)


@njit
def year_fraction(start: int, end: int, convention: int) -> float:
    """Year fraction between two day numbers.

    Conventions: 0 ACT/365 (fixed), 1 ACT/360, 2 30/360 (US bond basis), 3 ACT/ACT (ISDA),
    4 whole calendar months / 12 (internal: rents and instalments due every k months).
    """
    if end <= start:
        return 0.0
    if convention == 0:
        return (end - start) / 365.0
    if convention == 1:
        return (end - start) / 360.0
    if convention == 4:  # whole months / 12: rents and instalments on a monthly grid
        y1, m1, _ = civil_from_days(start)
        y2, m2, _ = civil_from_days(end)
        return ((y2 - y1) * 12 + (m2 - m1)) / 12.0
    if convention == 2:
        y1, m1, d1 = civil_from_days(start)
        y2, m2, d2 = civil_from_days(end)
        if d1 == 31:
            d1 = 30
        if d2 == 31 and d1 >= 30:
            d2 = 30
        return ((y2 - y1) * 360 + (m2 - m1) * 30 + (d2 - d1)) / 360.0
    # ACT/ACT ISDA: days in each calendar year over that year's length
    y1, _, _ = civil_from_days(start)
    y2, _, _ = civil_from_days(end)
    total = 0.0
    s = start
    for y in range(y1, y2 + 1):
        next_jan = days_from_civil(y + 1, 1, 1)
        e = end if end < next_jan else next_jan
        total += (e - s) / (366.0 if _is_leap(y) else 365.0)
        s = e
    return total


def payment_dates(first_payment: dt.date, legal_final: dt.date, months: int) -> list[dt.date]:
    """Payment dates from the first payment date every ``months`` months up to legal final.

    The legal final date is the last date; if it is not on the regular grid it ends a short
    last period.
    """
    out = []
    k = 0
    while True:
        d = add_months(first_payment, k * months)
        if d >= legal_final:
            break
        out.append(d)
        k += 1
    out.append(legal_final)
    return out


def grid_days(closing: dt.date, dates: list[dt.date]) -> np.ndarray:
    """Period boundaries as day numbers: ``[closing, d_1, ..., d_T]`` (int64)."""
    return np.array([to_day(closing), *[to_day(d) for d in dates]], dtype=np.int64)
