"""Zero curves for pricing: a flat rate or a curve file's points, as discount factors.

Conventions (also in ``docs/pricing.md``): rates are annual effective zero rates (compounded
once a year); time is ACT/365 (fixed) years from the settlement date; between points the
continuously compounded zero rate ``ln(1 + r)`` is interpolated linearly in time, and beyond the
first and last points the zero rate is held flat.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from ipabs.deal.curve import CurveSpec


@dataclass(frozen=True)
class Curve:
    """A zero curve on year fractions from the settlement date.

    Attributes
    ----------
    name : str
    times : ndarray, shape (K,)
        Years from the settlement date of each point, increasing.
    rates : ndarray, shape (K,)
        Annual effective zero rate of each point.
    """

    name: str
    times: np.ndarray
    rates: np.ndarray

    @classmethod
    def flat(cls, rate: float) -> Curve:
        """A flat curve at the annual effective ``rate``."""
        return cls(f"flat {rate:.6g}", np.array([0.0]), np.array([float(rate)]))

    @classmethod
    def from_spec(cls, spec: CurveSpec, settle: dt.date) -> Curve:
        """A curve file's points, tenors taken from ``settle`` (dates before it are dropped).

        Raises
        ------
        ValueError
            When every dated point lies on or before the settlement date.
        """
        rates = np.asarray(spec.rates, dtype=float)
        if spec.tenors is not None:
            return cls(spec.name, np.asarray(spec.tenors, dtype=float), rates)
        assert spec.dates is not None
        times = np.array([(d - settle).days / 365.0 for d in spec.dates])
        keep = times > 0.0
        if not keep.any():
            raise ValueError(
                f"every date of the curve {spec.source} is on or before the settlement date {settle}"
            )
        return cls(spec.name, times[keep], rates[keep])

    def zero(self, t: np.ndarray | float) -> np.ndarray:
        """Annual effective zero rate at years ``t``."""
        cont = np.interp(np.asarray(t, dtype=float), self.times, np.log1p(self.rates))
        return np.expm1(cont)

    def discount(self, t: np.ndarray | float, spread: float = 0.0) -> np.ndarray:
        """Discount factors ``(1 + z(t) + spread)^-t`` (``spread`` added to the annual zero rate)."""
        t = np.asarray(t, dtype=float)
        return (1.0 + self.zero(t) + spread) ** (-t)
