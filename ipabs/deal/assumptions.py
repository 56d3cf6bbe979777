"""Deterministic scenario assumptions: default timing, prepayment, recovery, royalty bases."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ipabs.deal.base import Model
from ipabs.deal.types import MAX_TERM_MONTHS, Date, NonNegative, Rate, Share


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


class RoyaltyAssumption(Model):
    """Royalty base assumptions of a scenario."""

    growth: Rate | None = Field(None, description="Replaces the streams' base growth rate.")
    haircut: Share = Field(0.0, description="Share cut from every royalty and income-share payment.")
