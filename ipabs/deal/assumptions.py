"""Deterministic scenario assumptions: default timing, prepayment, recovery, royalty bases."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ipabs.deal.base import Model
from ipabs.deal.types import MAX_TERM_MONTHS, Date, NonNegative, NonNegativeRate, Rate, Share


class DefaultAssumption(Model):
    """Default timing of a deterministic scenario. ``cdr``, ``cdr_vector`` and ``sda`` are
    mutually exclusive; ``obligors`` may be combined with any of them."""

    cdr: Rate | None = Field(None, ge=0, lt=1, description="Constant annual default rate.")
    cdr_vector: list[Annotated[Rate, Field(ge=0, lt=1)]] | None = Field(
        None, min_length=1, description="Annual default rate per payment period; the last value repeats."
    )
    sda: NonNegative | None = Field(None, description="SDA multiple in percent (100 = 100% SDA).")
    obligors: dict[str, Annotated[int, Field(ge=1)] | Date] = Field(
        default_factory=dict,
        description="Obligor -> period number (1 = first period) or date in which it defaults.",
    )

    @model_validator(mode="after")
    def _one_curve(self) -> DefaultAssumption:
        given = [k for k in ("cdr", "cdr_vector", "sda") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of cdr, cdr_vector or sda, not {' and '.join(given)}")
        return self


class PrepaymentAssumption(Model):
    """Prepayment speed: constant CPR, a CPR vector per period, or a PSA multiple."""

    cpr: Rate | None = Field(None, ge=0, lt=1, description="Constant annual prepayment rate.")
    cpr_vector: list[Annotated[Rate, Field(ge=0, lt=1)]] | None = Field(
        None, min_length=1, description="Annual prepayment rate per payment period."
    )
    psa: NonNegative | None = Field(None, description="PSA multiple in percent.")

    @model_validator(mode="after")
    def _one(self) -> PrepaymentAssumption:
        given = [k for k in ("cpr", "cpr_vector", "psa") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of cpr, cpr_vector or psa, not {' and '.join(given)}")
        return self


class RecoveryAssumption(Model):
    """Recovery on defaulted assets, after a liquidation lag."""

    rate: Share = Field(0.0, description="Recovered share of the basis.")
    basis: Literal["balance", "appraisal"] = Field(
        "balance",
        description="balance: share of the defaulted balance; appraisal: share of the pledged "
        "IP's appraised value, capped at the defaulted balance.",
    )
    lag_months: int = Field(
        0,
        ge=0,
        le=MAX_TERM_MONTHS,
        description="Months from the end of the default period to the recovery (0: paid in the "
        "default period; the same default as `risk.recovery.lag_months`). A recovery falling "
        "after the legal final date is lost; validation warns when that can happen.",
    )


# ---- time-varying royalty bases


class RoyaltyShock(Model):
    """A dated change of a royalty base (licensee sales or company income): on ``from`` the
    base moves at once by ``level`` (-40% keeps 60% of it), and from then on it grows at
    ``growth`` a year (none: the growth it had)."""

    from_: Date = Field(alias="from", description="Date from which the change applies.")
    level: Rate = Field(
        0.0, gt=-1, description="Jump of the base on the date, as a share of it (-40%: 60% remains)."
    )
    growth: Rate | None = Field(
        None, gt=-1, description="Annual growth of the base from the date on (none: unchanged)."
    )


class RoyaltyPath(Model):
    """How royalty bases move over time: a growth rate, growth and level vectors by payment
    period, and dated shocks. Shared by a scenario's `royalty` and the Monte Carlo's
    `risk.royalty` (whose random factor then multiplies this path)."""

    growth: Rate | None = Field(None, gt=-1, description="Replaces the streams' base growth rate (annual).")
    growth_vector: list[Annotated[Rate, Field(gt=-1)]] | None = Field(
        None,
        min_length=1,
        description="Annual growth of the base in each payment period of the deal (the first "
        "value also before closing); the last value repeats. Replaces `growth`.",
    )
    level_vector: list[NonNegativeRate] | None = Field(
        None,
        min_length=1,
        description="Factor on the projected base in each payment period (1: as projected, 0.6: "
        "40% below); the last value repeats.",
    )
    shocks: list[RoyaltyShock] = Field(
        default_factory=list,
        description="Dated jumps and growth changes of the base, in date order "
        "(`{from: 2001-01-01, level: -40%, growth: -10%}`).",
    )

    @field_validator("shocks")
    @classmethod
    def _in_date_order(cls, v: list[RoyaltyShock]) -> list[RoyaltyShock]:
        for a, b in pairwise(v):
            if b.from_ <= a.from_:
                raise ValueError(
                    f"shocks must be in date order with distinct dates: {b.from_} follows {a.from_}"
                )
        return v

    @model_validator(mode="after")
    def _one_growth(self) -> RoyaltyPath:
        if self.growth is not None and self.growth_vector is not None:
            raise ValueError("give one of growth or growth_vector, not both")
        return self

    def is_flat(self) -> bool:
        """True when the path is one constant growth rate (no vectors, no shocks)."""
        return self.growth_vector is None and self.level_vector is None and not self.shocks


class RoyaltyAssumption(RoyaltyPath):
    """Royalty base assumptions of a scenario: the base's path (:class:`RoyaltyPath`) and a
    haircut on every payment."""

    haircut: Share = Field(0.0, description="Share cut from every royalty and income-share payment.")
