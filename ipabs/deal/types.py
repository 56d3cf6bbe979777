"""Scalar types shared by the deal language: rates, amounts, quantities."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field


def parse_percent(value: Any) -> Any:
    """Accept ``"3.5%"`` (or ``"0.035"``) as 0.035; leave everything else to pydantic.

    Raises
    ------
    ValueError
        For text that is neither a number nor a percentage, and for true/false.
    """
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if text.endswith("%"):
            try:
                return float(text[:-1]) / 100.0
            except ValueError:
                raise ValueError(f"{value!r} is not a percentage like '3.5%'") from None
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate: write 0.035 or '3.5%'") from None
    if isinstance(value, bool):
        raise ValueError("a rate must be a number, not true/false")
    return value


def _money(value: Any) -> Any:
    """Accept ``"1_000_000"`` or ``"12.5m"`` style amounts."""
    if isinstance(value, bool):
        raise ValueError("an amount must be a number, not true/false")
    if isinstance(value, str):
        text = value.strip().replace("_", "").replace(",", "").lower()
        scale = 1.0
        if text.endswith("bn"):
            scale, text = 1e9, text[:-2]
        elif text.endswith("m"):
            scale, text = 1e6, text[:-1]
        elif text.endswith("k"):
            scale, text = 1e3, text[:-1]
        try:
            return float(text) * scale
        except ValueError:
            raise ValueError(f"{value!r} is not an amount: write 12500000, 12.5m or 1_250_000") from None
    return value


def _finite(value: float) -> float:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    return value


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError("must not be negative")
    return value


MAX_RATE = 1.0
"""Interest rates, coupons, spreads and index levels lie strictly between -100% and 100% a
year (the loan-tape reader applies the same bound): 1.2 is far more likely a mistyped 1.2%
than a rate of 120%."""

MAX_AMOUNT = 1e15
"""The largest amount of money a deal may hold (a thousand trillion in the deal currency):
above it amounts lose their cents in double precision and mean a typing mistake."""


def _interest_rate(value: float) -> float:
    if not -MAX_RATE < value < MAX_RATE:
        raise ValueError(
            f"an annual interest rate must lie between -100% and 100% (for {value:g}%, write "
            f"{value / 100:g} or '{value:g}%')"
        )
    return value


def _amount_bound(value: float) -> float:
    if value > MAX_AMOUNT:
        raise ValueError(f"must be at most {MAX_AMOUNT:.0e} (check the number of zeros)")
    return value


MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2199, 12, 31)
"""Dates of a deal lie in [1900-01-01, 2199-12-31]: the calendar the simulation steps through
must stay within the years the date arithmetic can represent."""

MAX_TERM_MONTHS = 1200
"""Terms in months are at most 1200 (100 years)."""


def _date_text(value: Any) -> Any:
    """A date is written ``YYYY-MM-DD``: a number is not read as seconds since 1970."""
    if isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a date: write it as YYYY-MM-DD")
    return value


def _date_range(value: dt.date) -> dt.date:
    if not MIN_DATE <= value <= MAX_DATE:
        raise ValueError(f"must lie between {MIN_DATE} and {MAX_DATE}")
    return value


def _unit(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError("must lie between 0 and 1 (0% and 100%)")
    return value


def _probability(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError("must lie in [0, 1): a probability of 1 or more is not a risk input")
    return value


def _below_one(value: float) -> float:
    if value < 0.0:
        raise ValueError("must not be negative")
    if value >= 1.0:
        raise ValueError("must be less than 1 (100%)")
    return value


Fraction = Annotated[float, BeforeValidator(parse_percent), AfterValidator(_finite)]
"""The one type of every fraction-valued field: a decimal (``0.3``) or a percentage string
(``"30%"``). The narrower types below add bounds to it."""

Rate = Fraction
"""An annual rate, growth or multiplier as a decimal (``0.035``) or a percentage string
(``"3.5%"``); may be negative."""

InterestRate = Annotated[Fraction, AfterValidator(_interest_rate)]
"""An annual interest rate, coupon, spread or index level, strictly between -100% and 100%."""

NonNegativeRate = Annotated[Fraction, AfterValidator(_non_negative)]
"""A fraction that must not be negative (a trigger threshold, a fee rate)."""

Share = Annotated[Fraction, AfterValidator(_unit)]
"""A fraction in [0, 1], written ``0.7`` or ``"70%"``."""

Probability = Annotated[Fraction, AfterValidator(_probability)]
"""An annual probability in [0, 1)."""

Correlation = Annotated[Fraction, AfterValidator(_below_one)]
"""A correlation, loading or annual rate in [0, 1), written ``0.3`` or ``"30%"``."""

Money = Annotated[
    float,
    BeforeValidator(_money),
    AfterValidator(_finite),
    AfterValidator(_non_negative),
    AfterValidator(_amount_bound),
]
"""A non-negative amount of money in the deal currency (``12500000``, ``"12.5m"``), at most
:data:`MAX_AMOUNT`."""

Date = Annotated[dt.date, BeforeValidator(_date_text), AfterValidator(_date_range)]
"""A date ``YYYY-MM-DD`` between :data:`MIN_DATE` and :data:`MAX_DATE`."""

Months = Annotated[int, Field(ge=1, le=MAX_TERM_MONTHS)]
"""A term in months, 1 to :data:`MAX_TERM_MONTHS`."""

NonNegative = Annotated[float, AfterValidator(_finite), AfterValidator(_non_negative)]

_NAME = re.compile(r"^[A-Za-z\u0080-\uffff][\w\u0080-\uffff\-]*$")


def _name(value: Any) -> Any:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: start with a letter; use letters, digits, '_' or '-'"
        )
    return value


Name = Annotated[str, BeforeValidator(_name)]
"""An identifier for a tranche, fee, account, pool, obligor or waterfall."""

QUANTITIES = (
    "pool_balance",
    "pool_balance_start",
    "original_pool_balance",
    "notes_balance",
    "interest_collections",
    "income_collections",
    "principal_collections",
    "collections",
    "royalty_collections",
    "defaults",
    "principal_deficiency",
)
"""Deal-level quantities an amount formula may refer to."""

GROUP_QUANTITIES = ("balance", "original_balance", "interest_due")
"""Quantities of a named group of tranches: ``balance(senior)``, ``interest_due(a1+a2)``."""

_GROUP = re.compile(r"^\s*(\w+)\s*\(\s*([^()]+?)\s*\)\s*$")


def parse_quantity(text: str) -> tuple[str, tuple[str, ...]]:
    """Parse a quantity reference.

    Parameters
    ----------
    text : str
        ``pool_balance``, ``original_pool_balance``, ``notes_balance``, ``pool_balance_start``,
        this period's ``interest_collections``, ``income_collections``,
        ``principal_collections``, ``collections``, ``royalty_collections``, ``defaults``, the
        ``principal_deficiency`` ledger, or ``balance(NAME[+NAME...])``,
        ``original_balance(...)``, ``interest_due(...)``.

    Returns
    -------
    (kind, names)
        ``names`` is empty for deal-level quantities.

    Raises
    ------
    ValueError
        If the text is not a quantity; the message lists what is allowed.
    """
    t = text.strip()
    if t in QUANTITIES:
        return t, ()
    m = _GROUP.match(t)
    if m and m.group(1) in GROUP_QUANTITIES:
        names = tuple(n.strip() for n in m.group(2).split("+"))
        if all(names):
            return m.group(1), names
    allowed = ", ".join(QUANTITIES) + ", " + ", ".join(f"{g}(TRANCHE[+TRANCHE])" for g in GROUP_QUANTITIES)
    raise ValueError(f"{text!r} is not a quantity; use one of: {allowed}")
