"""Scalar types shared by the deal language: rates, amounts, quantities."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, NamedTuple

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

QUANTITY_TABLE: tuple[tuple[str, str, str], ...] = (
    ("pool_balance", "amount", "performing pool balance at the end of the period"),
    ("pool_balance_start", "amount", "performing pool balance at the start of the period"),
    ("original_pool_balance", "amount", "pool balance at closing"),
    ("notes_balance", "amount", "balance of all notes"),
    ("balance(T)", "amount", "balance of the tranches T (`a1+a2` for several)"),
    ("original_balance(T)", "amount", "original balance of the tranches T"),
    ("interest_due(T)", "amount", "interest due on the tranches T this period, arrears included"),
    ("interest_collections", "amount", "this period's interest collections"),
    (
        "income_collections",
        "amount",
        "this period's income collections (interest, royalties, income recoveries)",
    ),
    ("principal_collections", "amount", "this period's principal collections"),
    ("collections", "amount", "this period's asset collections"),
    ("royalty_collections", "amount", "this period's royalty and income-share collections"),
    ("defaults", "amount", "balance defaulting this period"),
    ("principal_deficiency", "amount", "the principal deficiency ledger's balance"),
    (
        "collateral_value",
        "amount",
        "at the start of the period: the pledged IP's appraisal of each performing asset times "
        "its performing factor (performing / scheduled balance), plus each royalty stream's "
        "`valuation` at its path's sales level while the licensee has not defaulted; in the "
        "Monte Carlo, path by path (docs/covenants.md)",
    ),
    (
        "next_interest(T, N)",
        "amount",
        "interest the tranches T owe over the payment dates in the next N months, on their "
        "balance when the amount is computed, at each period's coupon and day count",
    ),
    (
        "next_fees(N)",
        "amount",
        "senior fees due over the payment dates in the next N months: annual and per-period "
        "amounts as scheduled, rate fees on today's base, formula fees at today's value",
    ),
    ("cumulative_default_rate", "ratio", "defaults so far / everything the trust has owned"),
    (
        "dscr(T)",
        "ratio",
        "(collections - senior fees due) / (interest and principal due of the tranches T)",
    ),
    ("overcollateralisation(T)", "ratio", "pool balance at the start of the period / balance of T"),
    (
        "excess_spread",
        "ratio",
        "(income collections - senior fees - note interest, both accrued this period) / "
        "pool balance at the start of the period (the notes' balance for a pool without one), "
        "annualised by the period's year fraction",
    ),
    ("interest_shortfall(T)", "amount", "unpaid interest of the tranches T that may not defer"),
    # ---- delinquency
    ("delinquent_30", "amount", "balance of loans 30 or more days past due at the end of the period"),
    ("delinquent_60", "amount", "balance of loans 60 or more days past due at the end of the period"),
    ("delinquent_90", "amount", "balance of loans 90 or more days past due at the end of the period"),
    ("advances_outstanding", "amount", "servicer advances not yet repaid, after this date's repayment"),
    (
        "trigger(NAME)",
        "as the trigger",
        "the value trigger NAME tested this period (its trailing window, projection or "
        "valuation included): see the trigger kinds",
    ),
)
"""Every quantity a formula may read: (syntax, unit, meaning). Rendered in the deal-language
reference as the one list of test quantities."""

QUANTITIES = tuple(q for q, _, _ in QUANTITY_TABLE if "(" not in q)
"""Deal-level quantities an amount formula may refer to."""

GROUP_QUANTITIES = (
    "balance",
    "original_balance",
    "interest_due",
    "dscr",
    "overcollateralisation",
    "interest_shortfall",
)
"""Quantities of a named group of tranches: ``balance(senior)``, ``interest_due(a1+a2)``."""

TEST_QUANTITIES = (
    "cumulative_default_rate",
    "excess_spread",
    "dscr",
    "overcollateralisation",
    "interest_shortfall",
    "trigger",
)
"""Quantities computed when the triggers are tested: not available to fees (computed before)."""

_GROUP = re.compile(r"^\s*(\w+)\s*\(\s*([^()]+?)\s*\)\s*$")


class QuantityRef(NamedTuple):
    """A parsed quantity: its kind, the names it refers to (tranches, or a trigger) and the
    months of a forward-looking quantity (0 otherwise)."""

    kind: str
    names: tuple[str, ...]
    months: int = 0


def _months(text: str, original: str) -> int:
    t = text.strip()
    if not t.isdigit() or not 1 <= int(t) <= MAX_TERM_MONTHS:
        raise ValueError(
            f"{original!r}: the months must be a whole number from 1 to {MAX_TERM_MONTHS}, not {t!r}"
        )
    return int(t)


def parse_quantity(text: str) -> QuantityRef:
    """Parse a quantity reference (see :data:`QUANTITY_TABLE`).

    Parameters
    ----------
    text : str
        A deal-level quantity (``pool_balance``, ``collections``, ``excess_spread``...), a
        quantity of a tranche group (``balance(a1+a2)``, ``dscr(senior)``...), the
        forward-looking ``next_interest(T, N)`` and ``next_fees(N)`` (N months), or
        ``trigger(NAME)``.

    Returns
    -------
    QuantityRef
        ``names`` is empty for deal-level quantities.

    Raises
    ------
    ValueError
        If the text is not a quantity; the message lists what is allowed.
    """
    t = text.strip()
    if t in QUANTITIES:
        return QuantityRef(t, ())
    m = _GROUP.match(t)
    if m:
        kind, args = m.group(1), m.group(2)
        if kind in GROUP_QUANTITIES:
            names = tuple(n.strip() for n in args.split("+"))
            if all(names):
                return QuantityRef(kind, names)
        if kind == "trigger" and _NAME.match(args.strip()):
            return QuantityRef(kind, (args.strip(),))
        if kind == "next_fees":
            return QuantityRef(kind, (), _months(args, text))
        if kind == "next_interest" and "," in args:
            group, months = args.rsplit(",", 1)
            names = tuple(n.strip() for n in group.split("+"))
            if all(names):
                return QuantityRef(kind, names, _months(months, text))
    allowed = ", ".join(q for q, _, _ in QUANTITY_TABLE)
    raise ValueError(f"{text!r} is not a quantity; use one of: {allowed}")
