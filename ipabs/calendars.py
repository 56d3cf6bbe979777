"""Business days: holiday calendars, business-day adjustment and the collection and payment dates
of a deal with a ``deal.calendar``.

The Chinese exchange calendar is the Shanghai Stock Exchange's (XSHG) list of weekday closures
as maintained by the ``exchange_calendars`` package: exchanges stay closed on weekends, including
the weekend days the State Council makes working days ("makeup" days). Past the last year the
package knows, only weekends (and the deal's own holidays) are non-business days; the deal loader
warns when a deal's dates reach that far.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from ipabs.dates import add_months

CONVENTIONS = ("following", "modified_following", "preceding", "unadjusted")
"""Business-day conventions (ISDA 2006 section 4.12)."""


@lru_cache(maxsize=1)
def exchange_holidays() -> tuple[frozenset[dt.date], int]:
    """Weekday closures of the Shanghai Stock Exchange and the last year they cover.

    Returns
    -------
    (frozenset of date, int)
        The closures, and the last calendar year the maintained list covers.
    """
    from exchange_calendars.exchange_calendar_xshg import XSHGExchangeCalendar

    days = frozenset(d.date() for d in XSHGExchangeCalendar.precomputed_holidays())
    return days, int(XSHGExchangeCalendar.bound_max().year)


@dataclass(frozen=True)
class BusinessDays:
    """A holiday calendar: weekends, listed holidays up to ``known_until``, and the deal's own
    holidays (any year).

    Attributes
    ----------
    holidays : frozenset of date
        Non-business weekdays (weekends are always non-business days).
    known_until : int or None
        Last year the holiday list covers; None when it is the deal's own list only.
    """

    holidays: frozenset[dt.date]
    known_until: int | None = None

    def is_business_day(self, d: dt.date) -> bool:
        """Whether ``d`` is a business day (a weekday that is not a holiday)."""
        return d.weekday() < 5 and d not in self.holidays

    def adjust(self, d: dt.date, convention: str) -> dt.date:
        """Move ``d`` to a business day by ``convention`` (one of :data:`CONVENTIONS`).

        following: the next business day; modified_following: the next, unless it is in the next
        month, then the previous; preceding: the previous; unadjusted: ``d`` itself.
        """
        if convention == "unadjusted" or self.is_business_day(d):
            return d
        if convention == "preceding":
            return self._step(d, -1)
        nxt = self._step(d, 1)
        if convention == "modified_following" and nxt.month != d.month:
            return self._step(d, -1)
        return nxt

    def add_business_days(self, d: dt.date, n: int) -> dt.date:
        """The ``n``-th business day after ``d`` (``d`` itself when ``n`` is 0)."""
        for _ in range(n):
            d = self._step(d, 1)
        return d

    def _step(self, d: dt.date, sign: int) -> dt.date:
        d = d + dt.timedelta(days=sign)
        while not self.is_business_day(d):
            d = d + dt.timedelta(days=sign)
        return d


def business_days(kind: str, extra: Iterable[dt.date] = ()) -> BusinessDays:
    """The calendar ``kind`` ("china_exchange" or "weekends") plus the deal's ``extra`` holidays."""
    own = frozenset(extra)
    if kind == "china_exchange":
        days, last = exchange_holidays()
        return BusinessDays(days | own, last)
    return BusinessDays(own, None)


def _is_month_end(d: dt.date) -> bool:
    return d.day == _calendar.monthrange(d.year, d.month)[1]


def add_months_eom(d: dt.date, months: int) -> dt.date:
    """:func:`ipabs.dates.add_months`, keeping a month-end date on month ends (Jun 30 + 3 = Sep 30,
    + 6 = Dec 31)."""
    out = add_months(d, months)
    if _is_month_end(d):
        return out.replace(day=_calendar.monthrange(out.year, out.month)[1])
    return out


@dataclass(frozen=True)
class DealDates:
    """Dates of a deal's periods.

    Attributes
    ----------
    payments : list of date
        Note payment dates (business-day adjusted), the last one the legal final date.
    collection_ends : list of date
        End of each collection period: the determination dates, or the payment dates when the deal
        has none; a last period ends on the legal final date as written.
    nominal : list of date
        Payment dates before adjustment.
    """

    payments: list[dt.date]
    collection_ends: list[dt.date]
    nominal: list[dt.date]


def deal_dates(
    first_payment: dt.date,
    legal_final: dt.date,
    months: int,
    days: BusinessDays | None = None,
    convention: str = "unadjusted",
    first_determination: dt.date | None = None,
    delay: int = 0,
) -> DealDates:
    """Payment dates and collection-period ends of a deal.

    Without determination dates the payment dates are ``first_payment`` every ``months`` months
    up to ``legal_final`` (:func:`ipabs.dates.payment_dates`), each adjusted by ``convention``,
    and collection periods end on them, the last one on the legal final date as written. With
    ``first_determination``, determination dates run from it every ``months`` months (month ends
    stay month ends) and each payment date is ``delay`` business days after its determination
    date, up to the legal final date (adjusted);
    when that is not a regular payment date it ends a last period collecting up to it (as
    written).
    """
    from ipabs.dates import payment_dates

    if days is None:
        days = BusinessDays(frozenset())
    if first_determination is None:
        nominal = payment_dates(first_payment, legal_final, months)
        pay = [days.adjust(d, convention) for d in nominal]
        # the last collection period runs to the legal final date as written
        return DealDates(pay, [*pay[:-1], legal_final], nominal)
    final = days.adjust(legal_final, convention)
    dets: list[dt.date] = []
    pays: list[dt.date] = []
    k = 0
    while True:
        det = add_months_eom(first_determination, k * months)
        pay = days.add_business_days(det, delay)
        if pay > final or det >= final:
            break
        dets.append(det)
        pays.append(pay)
        if pay == final:  # the legal final date is a regular payment date
            return DealDates(pays, dets, list(pays))
        k += 1
    dets.append(legal_final)  # a last, short period collects up to the legal final date
    pays.append(final)
    return DealDates(pays, dets, list(pays))


# ---- seasoned pools
def whole_months(start: dt.date, end: dt.date) -> int:
    """Whole months from ``start`` to ``end``: the largest k with ``start + k months <= end``
    (0 when ``end`` is not after ``start``)."""
    k = max((end.year - start.year) * 12 + end.month - start.month, 0)
    while k > 0 and add_months(start, k) > end:
        k -= 1
    return k


def months_to(start: dt.date, end: dt.date) -> int:
    """Months from ``start`` to ``end`` counting a part month as one: the smallest k with
    ``start + k months >= end``."""
    k = whole_months(start, end)
    return k if add_months(start, k) >= end else k + 1


def loan_age(age_months: int | None, origination: dt.date | None, cut_off: dt.date) -> int:
    """A loan's age at the cut-off in whole months: ``age_months``, else the whole months from
    ``origination`` to the cut-off, else 0 (a new loan)."""
    if age_months is not None:
        return int(age_months)
    if origination is not None:
        return whole_months(origination, cut_off)
    return 0


def loan_start(age_months: int | None, origination: dt.date | None, cut_off: dt.date) -> dt.date | None:
    """A seasoned loan's origination date (``cut_off - age_months`` when only the age is given);
    None for a loan without an age."""
    if origination is not None:
        return origination
    if age_months is not None:
        return add_months(cut_off, -int(age_months))
    return None
