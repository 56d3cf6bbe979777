"""The `risk` section: what the Monte Carlo draws — correlated obligor defaults, IP recoveries,
prepayments and royalty bases. It may sit in the deal file or in a separate assumptions file
(``ipabs mc DEAL --risk FILE``) so that one deal can be run under several risk views."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ipabs.deal.assumptions import (
    TIMING_DESCRIPTION,
    DelinquencyAssumption,
    PrepaymentAssumption,
    RecoveryPiece,
    RoyaltyPath,
    check_one_timing,
    check_timing,
)
from ipabs.deal.base import Model
from ipabs.deal.types import (
    MAX_TERM_MONTHS,
    Correlation,
    NonNegative,
    NonNegativeRate,
    Probability,
    Share,
)

Unit = Share  # a loading or correlation in [0, 1]


class FactorLoadings(Model):
    """Loadings of every obligor's latent credit variable on the systematic factors.

    ``X = global x Z_g + industry x Z_industry + region x Z_region + sqrt(1 - sum of squares) x e``:
    one global factor, one factor per industry and one per region (obligors with no industry
    or region load only on the others). Two obligors of the same industry and region have
    asset correlation ``global^2 + industry^2 + region^2``.
    """

    global_: Unit = Field(0.0, alias="global", description="Loading on the global factor.")
    industry: Unit = Field(0.0, description="Loading on the obligor's industry factor.")
    region: Unit = Field(0.0, description="Loading on the obligor's region (park) factor.")

    @model_validator(mode="after")
    def _below_one(self) -> FactorLoadings:
        total = self.global_**2 + self.industry**2 + self.region**2
        if total >= 1.0:
            raise ValueError(
                f"the squares of the loadings sum to {total:.4f}; they must stay below 1 "
                "(the rest is the obligor's own risk)"
            )
        return self


class RecoveryModel(Model):
    """Recovery on a defaulted loan or lease, paid ``lag_months`` after the default period.

    - ``constant``: ``rate`` x the defaulted balance not covered by a loan guarantee.
    - ``lognormal`` / ``beta``: ``min(exposure, appraised IP value x V - disposal_cost x
      appraised value)`` with a random value factor ``V`` of mean ``value_mean`` and dispersion
      ``value_dispersion`` (lognormal: standard deviation of log V; beta: standard deviation of
      V), correlated with the global factor through ``systematic_loading`` (wrong-way risk:
      values fall when defaults rise). Assets without pledged IP recover ``rate`` x exposure.
    """

    model: Literal["constant", "lognormal", "beta"] = Field("constant", description="Recovery model.")
    rate: Share = Field(0.0, description="constant: recovered share of the exposure.")
    value_mean: Share = Field(0.3, description="Mean value factor V applied to appraised IP value.")
    value_dispersion: NonNegativeRate = Field(
        0.5, description="lognormal: sd of log V; beta: sd of V (must be < sqrt(m(1-m)))."
    )
    systematic_loading: Unit = Field(
        0.0, description="Correlation of the value factor with the global factor (wrong-way risk)."
    )
    disposal_cost: Share = Field(0.0, description="Cost of selling the IP, as a share of appraised value.")
    lag_months: int = Field(
        0,
        ge=0,
        le=MAX_TERM_MONTHS,
        description="Months from the end of the default period to the recovery (0: paid in the "
        "default period; the same default as a scenario's `recovery.lag_months`). A recovery "
        "falling after the legal final date is lost; validation warns when that can happen.",
    )
    timing: list[RecoveryPiece] | None = Field(None, min_length=1, description=TIMING_DESCRIPTION)

    @field_validator("timing")
    @classmethod
    def _timing(cls, v: list[RecoveryPiece] | None) -> list[RecoveryPiece] | None:
        return check_timing(v)

    @model_validator(mode="after")
    def _beta_feasible(self) -> RecoveryModel:
        check_one_timing(self)
        if self.model == "beta":
            m, s = self.value_mean, self.value_dispersion
            if not 0.0 < m < 1.0:
                raise ValueError("a beta value factor needs 0 < value_mean < 1")
            if s <= 0.0 or s * s >= m * (1.0 - m):
                raise ValueError(
                    f"a beta value factor with mean {m} needs 0 < value_dispersion < "
                    f"{math.sqrt(m * (1.0 - m)):.4f}"
                )
        return self


def beta_value_sd(value_mean: float, volatility: float) -> float:
    """Standard deviation of a beta value factor of mean ``value_mean`` for an asset whose
    pledged IP has ``value_volatility``: ``value_mean x sqrt(exp(volatility^2) - 1)``, the
    coefficient of variation of a lognormal of that log-standard-deviation."""
    return value_mean * math.sqrt(math.expm1(volatility * volatility))


def beta_feasible(value_mean: float, sd: float) -> bool:
    """Whether a beta distribution of this mean and standard deviation exists:
    ``0 < sd^2 < value_mean x (1 - value_mean)``."""
    return 0.0 < sd * sd < value_mean * (1.0 - value_mean)


class RoyaltyRisk(RoyaltyPath):
    """Risk of royalty and income-share streams.

    The annual base (sales or income) is ``expected base x exp(volatility x W_t -
    volatility^2 t / 2)`` with a Brownian motion ``W`` whose value at the stream's horizon has
    correlation ``systematic_loading`` with the global factor, so the mean base equals the
    deterministic one. The expected base follows the streams' own growth unless ``growth``,
    ``growth_vector``, ``level_vector`` or ``shocks`` give it a path (the same fields and
    meaning as a scenario's `royalty`; here they apply to every stream). A patent is
    invalidated at a constant yearly hazard; afterwards the stream loses ``invalidation_cut``
    of its payments. Royalties stop at patent expiry and when the licensee defaults.
    """

    volatility: NonNegativeRate = Field(0.0, description="Annual volatility of the log base (0.2 or '20%').")
    systematic_loading: Unit = Field(0.0, description="Correlation with the global factor.")
    invalidation_hazard: Probability = Field(0.0, description="Yearly probability of invalidation.")
    invalidation_cut: Share = Field(1.0, description="Share of payments lost after invalidation.")


class RiskModel(Model):
    """The Monte Carlo risk model.

    Give either ``correlation`` (one global factor: every pair of obligors has this asset
    correlation) or ``factors``. Obligors need a ``pd``, ``pd_curve`` or ``cumulative_pd`` (on the
    obligor or its asset), a ``grade`` listed in ``pd_by_grade``, or the section's ``default_pd``.
    ``pd_multiplier`` stresses every obligor's default probability at once.
    """

    copula: Literal["gaussian", "student_t"] = Field("gaussian", description="Dependence of defaults.")
    degrees_of_freedom: float | None = Field(
        None, gt=2.0, description="student_t: degrees of freedom (more than 2)."
    )
    correlation: Correlation | None = Field(
        None, description="One-factor asset correlation, in [0, 1) (0.3 or '30%')."
    )
    factors: FactorLoadings | None = Field(None, description="Multi-factor loadings.")
    default_pd: Probability | None = Field(
        None,
        description="Annual PD of obligors given none, on an ACT/365 clock like an obligor's `pd`: "
        "`1 - (1 - default_pd)^(d/365)` by a date `d` days after closing.",
    )
    pd_by_grade: dict[str, Probability] = Field(
        default_factory=dict,
        description="Annual PD per obligor `grade`, on an ACT/365 clock like an obligor's `pd`.",
    )
    pd_multiplier: NonNegative = Field(
        1.0,
        description="Stress factor on default probabilities: every obligor's cumulative PD by each "
        "date (from its `pd`, `pd_curve`, `cumulative_pd`, grade or `default_pd`) is multiplied by "
        "it; 2 doubles every PD, 0 switches defaults off. The multiplied annual PDs, `pd_curve` points and "
        "cumulative PDs up to the legal final date must stay below 1.",
    )
    recovery: RecoveryModel = Field(default_factory=RecoveryModel, description="Recoveries.")
    prepayment: PrepaymentAssumption = Field(
        default_factory=PrepaymentAssumption, description="Prepayment speed (deterministic)."
    )
    royalty: RoyaltyRisk = Field(default_factory=RoyaltyRisk, description="Royalty risk.")
    # ---- delinquency
    delinquency: DelinquencyAssumption | None = Field(
        None,
        description="Roll and cure rates (docs/delinquency.md): surviving loans fall behind and "
        "cure; a defaulter is behind for the months its roll to default takes.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RiskModel:
        if self.correlation is not None and self.factors is not None:
            raise ValueError("give either `correlation` or `factors`, not both")
        if self.copula == "student_t" and self.degrees_of_freedom is None:
            raise ValueError("a student_t copula needs `degrees_of_freedom`")
        if self.copula == "gaussian" and self.degrees_of_freedom is not None:
            raise ValueError("`degrees_of_freedom` is only used with copula: student_t")
        m = self.pd_multiplier
        named = [("default_pd", self.default_pd)] if self.default_pd is not None else []
        named += [(f"pd_by_grade {grade!r}", pd) for grade, pd in self.pd_by_grade.items()]
        for what, pd in named:
            if m * pd >= 1.0:
                # starts with the field name: the error is located at `pd_multiplier`
                raise ValueError(
                    f"pd_multiplier {m:g} x {what} {pd:g} = {m * pd:g}; a multiplied PD must stay below 1"
                )
        return self

    def loadings(self) -> tuple[float, float, float]:
        """(global, industry, region) loadings implied by ``correlation`` or ``factors``."""
        if self.factors is not None:
            return self.factors.global_, self.factors.industry, self.factors.region
        return math.sqrt(self.correlation or 0.0), 0.0, 0.0
