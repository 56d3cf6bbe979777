"""The periods of a deal header: payment dates and collection-period ends under its calendar."""

from __future__ import annotations

from ipabs.calendars import DealDates, business_days, deal_dates
from ipabs.deal.schema import MONTHS_PER_PERIOD, DealInfo


def deal_calendar_dates(info: DealInfo) -> DealDates:
    """Payment dates and collection-period ends of a deal header under its ``calendar`` (the
    dates as written when it has none).

    Parameters
    ----------
    info : DealInfo
        The deal's ``deal`` section.

    Returns
    -------
    DealDates
    """
    months = MONTHS_PER_PERIOD[info.payment_frequency]
    cal = info.calendar
    if cal is None:
        return deal_dates(info.first_payment_date, info.legal_final_date, months)
    det = cal.determination_dates
    return deal_dates(
        info.first_payment_date,
        info.legal_final_date,
        months,
        business_days(cal.holidays, cal.extra_holidays),
        cal.business_day,
        None if det is None else det.first,
        0 if det is None else det.payment_delay_business_days,
    )
