"""Numbers in text output: one set of rules for every command.

- A value on its own gets significant figures (four by default), not a fixed number of
  decimals, so a small number never prints as ``0.0000%``: values below 0.001 (in the unit
  printed) are written in scientific notation (``2.8e-7%``).
- An estimate with its standard error is printed so that the standard error has two
  significant figures and the estimate is rounded to the same decimal place
  (``0.0663% ± 0.0040%``). An estimate that would round to zero at that place while it is not
  zero is given two significant figures of its own instead (it is never hidden as ``0``).
- Zero is printed as ``0``; an undefined value (nan) as ``n/a``.
"""

from __future__ import annotations

import math

__all__ = ["estimate", "money", "number", "pct", "pct_estimate", "pct_given"]

SCIENTIFIC_BELOW = 1e-3
"""Magnitudes (in the unit printed) below this are written in scientific notation."""


def _sci(x: float, decimals: int) -> str:
    """``x`` in scientific notation with ``decimals`` digits after the point (``2.8e-7``)."""
    mantissa, exponent = f"{x:.{max(decimals, 0)}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _exponent(x: float) -> int:
    """Decimal exponent of ``|x|`` (x not 0), robust to ``log10`` rounding at powers of ten."""
    return int(f"{abs(x):.15e}".split("e")[1])


def number(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` significant figures.

    Parameters
    ----------
    x : float
        The value.
    digits : int
        Significant figures (at least 1).

    Returns
    -------
    str
        ``0`` for zero, ``n/a`` for nan, ``inf``/``-inf`` for infinities, fixed notation for
        magnitudes of at least :data:`SCIENTIFIC_BELOW`, scientific notation below.

    Examples
    --------
    >>> number(0.066312), number(12.5), number(2.8e-7), number(0.0)
    ('0.06631', '12.50', '2.800e-7', '0')
    """
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0.0:
        return "0"
    digits = max(int(digits), 1)
    rounded = float(f"{x:.{digits - 1}e}")  # after rounding: 9.9996 -> 10.00
    e = _exponent(rounded)
    if abs(rounded) < SCIENTIFIC_BELOW:
        return _sci(x, digits - 1)
    return f"{x:.{max(digits - 1 - e, 0)}f}"


def pct(x: float, digits: int = 4) -> str:
    """A share (0.0125) as a percentage with ``digits`` significant figures (``1.250%``).

    Zero prints as ``0%``, nan as ``n/a``; see :func:`number`.

    Examples
    --------
    >>> pct(0.0125), pct(2.8e-9), pct(0.0)
    ('1.250%', '2.800e-7%', '0%')
    """
    text = number(100.0 * float(x), digits)
    return text if text == "n/a" else text + "%"


def pct_given(x: float) -> str:
    """An assumption as given (a recovery rate, a haircut, a rate shock) as a percentage without
    trailing zeros: ``30%``, ``2.5%``, ``-2%``; nan as ``n/a``.

    Examples
    --------
    >>> pct_given(0.3), pct_given(0.025), pct_given(-0.02), pct_given(0.0)
    ('30%', '2.5%', '-2%', '0%')
    """
    x = float(x)
    if math.isnan(x):
        return "n/a"
    return f"{100.0 * x:.10g}%" if x != 0.0 else "0%"


def estimate(value: float, se: float, unit: str = "") -> str:
    """An estimate and its standard error: ``value ± se``, the se to two significant figures
    and the value rounded to the same decimal place.

    Parameters
    ----------
    value, se : float
        Estimate and standard error, in the unit printed.
    unit : str
        Appended to both numbers (e.g. ``%``).

    Returns
    -------
    str

    Examples
    --------
    >>> estimate(0.066312, 0.004027, "%")
    '0.0663% ± 0.0040%'
    >>> estimate(2.8e-7, 1.234e-8, "%")
    '2.80e-7% ± 1.2e-8%'
    >>> estimate(0.0, 0.0)
    '0 ± 0'
    """
    value, se = float(value), float(se)
    if math.isnan(value):
        return "n/a"
    if math.isnan(se) or math.isinf(se) or se < 0.0:
        return f"{number(value)}{unit} ± n/a"
    if se == 0.0:
        return f"{number(value)}{unit} ± 0{unit}"
    place = _exponent(float(f"{se:.1e}")) - 1  # decimal place of the se's second figure
    se = round(se, -place)
    se_text = _sci(se, 1) if se < SCIENTIFIC_BELOW else f"{se:.{max(-place, 0)}f}"
    rounded = round(value, -place)
    if value == 0.0:
        value_text = "0"
    elif rounded == 0.0:  # the estimate lies below the se's last figure: still show it
        value_text = number(value, 2)
    elif abs(rounded) < SCIENTIFIC_BELOW:
        value_text = _sci(rounded, _exponent(rounded) - place)
    else:
        value_text = f"{rounded:.{max(-place, 0)}f}"
    return f"{value_text}{unit} ± {se_text}{unit}"


def pct_estimate(value: float, se: float) -> str:
    """A share and its standard error as percentages; see :func:`estimate`.

    Examples
    --------
    >>> pct_estimate(0.00066312, 0.00004027)
    '0.0663% ± 0.0040%'
    """
    return estimate(100.0 * float(value), 100.0 * float(se), "%")


def money(x: float) -> str:
    """An amount of money: thousands separated, two decimals (``1,234.50``); nan as ``n/a``."""
    x = float(x)
    return "n/a" if math.isnan(x) else f"{x:,.2f}"
