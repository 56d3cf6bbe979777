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


# ---- recovery timing


class RecoveryPiece(Model):
    """One instalment of a recovery: ``share`` of it is received ``months`` after the end of
    the default period."""

    months: int = Field(ge=0, le=MAX_TERM_MONTHS, description="Months from the end of the default period.")
    share: Share = Field(description="Share of the recovery received then.")


def check_timing(timing: list[RecoveryPiece] | None) -> list[RecoveryPiece] | None:
    """Recovery instalments come in month order (distinct months) and their shares add up to 1."""
    if timing is None:
        return None
    for a, b in pairwise(timing):
        if b.months <= a.months:
            raise ValueError(
                f"timing must be in month order with distinct months: {b.months} follows {a.months}"
            )
    total = sum(x.share for x in timing)
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"the shares of the recovery timing must add up to 100%; they add up to {total:.6g}")
    return timing


def check_one_timing(model: Model) -> None:
    """``lag_months`` and ``timing`` are two ways to say when recoveries come: one at most."""
    if getattr(model, "timing", None) is not None and "lag_months" in model.model_fields_set:
        raise ValueError("give one of lag_months or timing, not both")


def recovery_pieces(recovery: Model) -> list[tuple[int, float]]:
    """(months after the default period, share) of each instalment of a recovery: its
    ``timing``, or all of it after ``lag_months``."""
    timing = getattr(recovery, "timing", None)
    if timing:
        return [(x.months, float(x.share)) for x in timing]
    return [(int(recovery.lag_months), 1.0)]  # type: ignore[attr-defined]


def last_recovery_months(recovery: Model) -> int:
    """Months from the end of the default period to the last recovery instalment: the end of
    the liquidation, when the loss is realised."""
    return max(m for m, _ in recovery_pieces(recovery))


TIMING_DESCRIPTION = (
    "Recovery received in instalments: `[{months: 6, share: 30%}, {months: 18, share: 70%}]` "
    "(months after the end of the default period, in order; shares add up to 100%). Instead "
    "of `lag_months`. The loss is realised with the last instalment; instalments after the legal "
    "final date are lost."
)


class RecoveryAssumption(Model):
    """Recovery on defaulted assets, after a liquidation lag (``lag_months``) or in
    instalments (``timing``)."""

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
    timing: list[RecoveryPiece] | None = Field(None, min_length=1, description=TIMING_DESCRIPTION)

    @field_validator("timing")
    @classmethod
    def _timing(cls, v: list[RecoveryPiece] | None) -> list[RecoveryPiece] | None:
        return check_timing(v)

    @model_validator(mode="after")
    def _one_timing(self) -> RecoveryAssumption:
        check_one_timing(self)
        return self


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


class RoyaltyAssumption(RoyaltyPath):
    """Royalty base assumptions of a scenario: the base's path (:class:`RoyaltyPath`) and a
    haircut on every payment."""

    haircut: Share = Field(0.0, description="Share cut from every royalty and income-share payment.")


# ---- delinquency


class DelinquencyAssumption(Model):
    """Monthly roll rates between days-past-due buckets (docs/delinquency.md).

    Each month a current loan falls 30 days behind with ``roll_rates[0]``; a loan 30, 60 or 90+
    days behind rolls on with ``roll_rates[1]``, ``[2]``, ``[3]`` (from 90+ into default) or
    cures, paying its arrears, with ``cure_rates[0]``, ``[1]``, ``[2]``; otherwise it stays.
    Delinquent loans pay nothing until they cure."""

    roll_rates: list[Annotated[Rate, Field(ge=0, le=1)]] = Field(
        min_length=4,
        max_length=4,
        description="Monthly rates current -> 30, 30 -> 60, 60 -> 90+, 90+ -> default.",
    )
    cure_rates: list[Annotated[Rate, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.0, 0.0, 0.0],
        min_length=3,
        max_length=3,
        description="Monthly rates 30 -> current, 60 -> current, 90+ -> current.",
    )

    @model_validator(mode="after")
    def _leaving(self) -> DelinquencyAssumption:
        for k, bucket in enumerate(("30", "60", "90+")):
            total = self.roll_rates[k + 1] + self.cure_rates[k]
            if total > 1.0 + 1e-12:
                raise ValueError(
                    f"loans {bucket} days behind roll on ({self.roll_rates[k + 1]:.4g}) and cure "
                    f"({self.cure_rates[k]:.4g}) at more than 100% a month together; lower one"
                )
        return self
