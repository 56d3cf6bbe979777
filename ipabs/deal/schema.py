"""The deal language: typed, immutable models of a YAML deal file.

Every model forbids unknown keys (a misspelt key is an error with a suggestion) and documents
each field; ``docs/deal-language.md`` is generated from these docstrings and descriptions.
"""

from __future__ import annotations

import datetime as dt
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ipabs.deal.assumptions import (
    DefaultAssumption,
    DelinquencyAssumption,
    PrepaymentAssumption,
    RecoveryAssumption,
    RoyaltyAssumption,
)
from ipabs.deal.base import Model
from ipabs.deal.risk import RiskModel
from ipabs.deal.types import (
    MAX_TERM_MONTHS,
    Date,
    InterestRate,
    Money,
    Name,
    NonNegativeRate,
    Probability,
    Rate,
    Share,
    parse_quantity,
)

Frequency = Literal["monthly", "quarterly", "semi-annual", "annual"]
DayCount = Literal["ACT/365", "ACT/360", "30/360", "ACT/ACT"]

MONTHS_PER_PERIOD: dict[str, int] = {"monthly": 1, "quarterly": 3, "semi-annual": 6, "annual": 12}


# --------------------------------------------------------------------------- amounts


class Formula(Model):
    """An amount computed each period: ``max(floor, min(cap, share x of))``.

    Example: a reserve target of 2% of the senior balance with a floor of 1m::

        target: {share: 2%, of: balance(senior), floor: 1m}
    """

    share: Rate = Field(1.0, description="Multiplier applied to the quantity (decimal or '2%').")
    of: str = Field(
        description="Quantity, e.g. pool_balance, balance(senior), next_interest(senior, 12) or "
        "trigger(NAME): see the list of quantities in docs/deal-language.md."
    )
    floor: Money = Field(0.0, description="Lower bound of the amount.")
    cap: Money | None = Field(None, description="Upper bound of the amount (none if omitted).")

    @field_validator("of")
    @classmethod
    def _check_of(cls, v: str) -> str:
        parse_quantity(v)
        return v


class Schedule(Model):
    """An amount that changes by period: ``values[k]`` applies in period k+1; the last value
    repeats after the list ends."""

    schedule: list[Money] = Field(min_length=1, description="One amount per payment period.")


Amount = Annotated[
    Money | Formula | Schedule,
    Field(union_mode="left_to_right"),
]
"""A fixed amount, a :class:`Formula`, or a :class:`Schedule`."""


# --------------------------------------------------------------------------- deal header


# ---- calendars
class DeterminationDates(Model):
    """Collection periods that end on determination dates, each followed by its payment date a
    number of business days later."""

    first: Date = Field(description="First determination date: the end of the first collection period.")
    payment_delay_business_days: int = Field(
        ge=1, le=60, description="Business days from a determination date to its payment date."
    )


class BusinessCalendar(Model):
    """Business days and how dates are moved onto them."""

    holidays: Literal["china_exchange", "weekends"] = Field(
        "china_exchange",
        description="china_exchange: the Shanghai Stock Exchange's closures (weekends and the "
        "published holidays; past the last published year only weekends); weekends: Saturdays "
        "and Sundays only.",
    )
    extra_holidays: list[Date] = Field(
        default_factory=list, description="Further non-business days (any year), e.g. a trustee's closures."
    )
    business_day: Literal["following", "modified_following", "preceding", "unadjusted"] = Field(
        "modified_following",
        description="Adjustment of the payment dates (and legal final date) that fall on a non-business day.",
    )
    determination_dates: DeterminationDates | None = Field(
        None,
        description="Collection periods ending on determination dates (default: on the payment dates).",
    )


class DealInfo(Model):
    """Deal header: identity, calendar and conventions. Every date of a deal lies between
    1900-01-01 and 2199-12-31."""

    name: str = Field(min_length=1, description="Deal name.")
    currency: str = Field("CNY", description="ISO currency code; all amounts are in it.")
    closing_date: Date = Field(
        description="Closing date; balances are as of it unless `cut_off_date` is given; note "
        "interest accrues from it."
    )
    first_payment_date: Date = Field(description="First note payment date.")
    payment_frequency: Frequency = Field(description="Note payment frequency; the simulation grid.")
    legal_final_date: Date = Field(description="Legal final maturity of the notes.")
    day_count: DayCount = Field("ACT/365", description="Day count for note interest and fees.")
    collateral_shortfall_reason: str | None = Field(
        None,
        description="Why the collateral balance may be below the notes (e.g. royalty streams "
        "valued by appraisal). Required when it is.",
    )

    # ---- calendars
    cut_off_date: Date | None = Field(
        None,
        description="Cut-off date (default: closing): asset balances and remaining terms are as of "
        "it, and collections after it belong to the trust (they reach the waterfall on the first "
        "payment date). On or before closing.",
    )
    calendar: BusinessCalendar | None = Field(
        None,
        description="Business days, date adjustment and determination dates (default: payment "
        "dates as written, collection periods ending on them).",
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> DealInfo:
        if not self.closing_date < self.first_payment_date:
            raise ValueError("first_payment_date must be after closing_date")
        if not self.first_payment_date <= self.legal_final_date:
            raise ValueError("legal_final_date must not be before first_payment_date")
        if self.cut_off_date is not None and self.cut_off_date > self.closing_date:
            raise ValueError("cut_off_date must not be after closing_date")
        return self

    @property
    def cut_off(self) -> dt.date:
        """The cut-off date: ``cut_off_date``, else the closing date."""
        return self.cut_off_date or self.closing_date


class IndexPoint(Model):
    """One point of a step-function index curve."""

    date: Date = Field(alias="from", description="Date from which the rate applies.")
    rate: InterestRate = Field(description="Index level from that date, between -100% and 100%.")


IndexCurve = Annotated[InterestRate | list[IndexPoint], Field(union_mode="left_to_right")]


# --------------------------------------------------------------------------- collateral

PD_DESCRIPTION = (
    "Annual probability of default on an ACT/365 clock from closing: the cumulative PD by a date "
    "`d` days after closing is `1 - (1 - pd)^(d/365)` (so 5% gives 5.0133% by a date 366 days "
    "away); use `cumulative_pd` to state a PD to a date exactly."
)
PD_CURVE_DESCRIPTION = (
    "Cumulative default probability at the end of years 1, 2, ... after closing, a year being "
    "365 days (ACT/365); constant hazard within each year, the last year's continuing after."
)


class HorizonPD(Model):
    """A cumulative default probability to a date: ``pd`` of the obligors default by ``by``
    (the legal final date, or a date after closing), at a constant hazard per day from closing,
    before and after that date. The PD by the horizon is exactly ``pd``, whatever the number of
    days."""

    pd: Probability = Field(description="Cumulative probability of default by `by`.")
    by: Literal["legal_final"] | Date = Field(
        "legal_final", description="`legal_final` (the deal's legal final date) or a date after closing."
    )


CUMULATIVE_PD_DESCRIPTION = (
    "Cumulative PD to a date: {pd, by: legal_final or a date}; exactly `pd` by that date, constant "
    "hazard per day from closing. Instead of `pd` or `pd_curve`."
)


def _one_pd(model: Any) -> Any:
    given = [k for k in ("pd", "pd_curve", "cumulative_pd") if getattr(model, k) is not None]
    if len(given) > 1:
        # starts with the field name: the error is located at `cumulative_pd`
        raise ValueError(
            f"`{given[-1]}` cannot be combined with `{given[0]}`: give one of pd (annual), pd_curve "
            "or cumulative_pd (to a date)"
        )
    return model


class Obligor(Model):
    """An obligor: a borrower, lessee, licensee, guarantor or support provider."""

    name: Name = Field(description="Unique obligor name.")
    industry: str | None = Field(None, description="Industry (for sector correlation).")
    region: str | None = Field(None, description="Park or region (for regional correlation).")
    pd: Probability | None = Field(None, description=PD_DESCRIPTION)
    pd_curve: list[Probability] | None = Field(None, description=PD_CURVE_DESCRIPTION)
    cumulative_pd: HorizonPD | None = Field(None, description=CUMULATIVE_PD_DESCRIPTION)
    grade: str | None = Field(None, description="Credit grade (looked up in `risk.pd_by_grade`).")

    @field_validator("pd_curve")
    @classmethod
    def _monotone(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(b < a for a, b in pairwise(v)):
            raise ValueError("a cumulative PD curve must not decrease")
        return v

    @model_validator(mode="after")
    def _one_pd(self) -> Obligor:
        return _one_pd(self)


class FloatingRate(Model):
    """A floating rate: index plus spread, reset at each payment date."""

    index: Name = Field(description="Name of a curve in the top-level `indices` section.")
    spread: InterestRate = Field(0.0, description="Spread over the index, between -100% and 100%.")
    floor: InterestRate | None = Field(None, description="Minimum all-in rate, between -100% and 100%.")


Coupon = Annotated[InterestRate | FloatingRate, Field(union_mode="left_to_right")]


class PledgedIP(Model):
    """The IP pledged as collateral for a loan."""

    kind: Literal["patent", "trademark", "copyright", "software", "mixed"] = Field(
        "patent", description="Kind of IP."
    )
    count: int = Field(1, ge=1, description="Number of items pledged.")
    appraised_value: Money = Field(description="Appraised value of the pledged IP.")
    value_volatility: NonNegativeRate | None = Field(
        None,
        description="Volatility of this IP's value (the log-standard-deviation of a lognormal with "
        "the value's mean and variance, as `ipabs value` writes it; docs/ip-valuation.md). Under "
        "`risk.recovery.model: lognormal` it replaces `value_dispersion` for this asset; under "
        "`beta` the value factor's sd becomes `value_mean x sqrt(exp(value_volatility^2) - 1)` (the "
        "same coefficient of variation). Unset: the recovery model's `value_dispersion`.",
    )


class LoanGuarantee(Model):
    """A guarantee of a loan by a guarantee company."""

    guarantor: Name = Field(description="Guarantor obligor name.")
    share: Share = Field(1.0, description="Share of the defaulted principal it pays.")
    lag_months: int = Field(0, ge=0, le=MAX_TERM_MONTHS, description="Months from default to payment.")


class SchedulePayment(Model):
    """One principal payment of a custom schedule."""

    date: Date = Field(description="Payment date.")
    principal: Money = Field(description="Principal paid on that date.")


Amortisation = Literal["bullet", "interest_only_then_bullet", "annuity", "equal_principal", "custom"]


class _CreditInputs(Model):
    obligor: Name = Field(description="Obligor name (borrower, lessee or licensee).")
    industry: str | None = Field(None, description="Obligor industry.")
    region: str | None = Field(None, description="Obligor park or region.")
    pd: Probability | None = Field(
        None, description="The obligor's PD (Monte Carlo input). " + PD_DESCRIPTION
    )
    pd_curve: list[Probability] | None = Field(
        None, description="The obligor's PD curve. " + PD_CURVE_DESCRIPTION
    )
    cumulative_pd: HorizonPD | None = Field(
        None, description="The obligor's PD to a date. " + CUMULATIVE_PD_DESCRIPTION
    )
    grade: str | None = Field(None, description="Obligor credit grade (see `risk.pd_by_grade`).")

    @model_validator(mode="after")
    def _one_pd(self) -> _CreditInputs:
        return _one_pd(self)


class Loan(_CreditInputs):
    """An IP-pledged SME loan.

    Balance is outstanding at the closing date. Give either ``maturity_date`` or
    ``term_months`` (counted from the closing date).
    """

    id: str | None = Field(None, description="Loan identifier (defaults to the obligor name).")
    balance: Money = Field(gt=0, description="Outstanding principal at closing.")
    rate: Coupon = Field(description="Fixed annual rate between -100% and 100%, or {index, spread} floating.")
    maturity_date: Date | None = Field(None, description="Final maturity date.")
    term_months: int | None = Field(
        None,
        ge=1,
        le=MAX_TERM_MONTHS,
        description=f"Remaining term from closing, 1 to {MAX_TERM_MONTHS} months.",
    )
    amortisation: Amortisation = Field(
        "interest_only_then_bullet",
        description="bullet (principal and all interest at maturity); interest_only_then_bullet; "
        "annuity (level payment); equal_principal; custom (see `schedule`).",
    )
    payment_frequency: Frequency = Field("quarterly", description="Loan payment frequency.")
    interest_only_months: int = Field(
        0,
        ge=0,
        le=MAX_TERM_MONTHS,
        description="Months of interest only before an annuity or equal-principal loan amortises.",
    )
    schedule: list[SchedulePayment] | None = Field(
        None, description="Principal payments for amortisation: custom; the rest is due at maturity."
    )
    day_count: DayCount = Field("ACT/365", description="Day count for loan interest.")
    pledged_ip: PledgedIP | None = Field(None, description="The IP pledged as collateral.")
    guarantee: LoanGuarantee | None = Field(None, description="Optional loan guarantee.")
    # ---- seasoned pools
    age_months: int | None = Field(
        None,
        ge=0,
        le=MAX_TERM_MONTHS,
        description="Whole months from origination to the cut-off date (PSA and SDA ramps count "
        "from it; default 0, a new loan).",
    )
    origination_date: Date | None = Field(
        None, description="Origination date, instead of `age_months` (on or before the cut-off)."
    )
    original_balance: Money | None = Field(
        None, gt=0, description="Principal at origination (checked: not below `balance`)."
    )
    original_term_months: int | None = Field(
        None,
        ge=1,
        le=MAX_TERM_MONTHS,
        description="Term at origination in months (checked: equals the age plus the remaining term).",
    )

    @model_validator(mode="after")
    def _term(self) -> Loan:
        if (self.maturity_date is None) == (self.term_months is None):
            raise ValueError("give exactly one of maturity_date or term_months")
        if self.age_months is not None and self.origination_date is not None:
            raise ValueError("age_months and origination_date are both given: give one of them")
        if self.original_balance is not None and self.original_balance < self.balance * (1 - 1e-12):
            raise ValueError(
                f"original_balance {self.original_balance:,.2f} is below the current balance "
                f"{self.balance:,.2f}: give the principal at origination"
            )
        if self.amortisation == "custom" and not self.schedule:
            raise ValueError("amortisation: custom needs a `schedule` of principal payments")
        if self.amortisation != "custom" and self.schedule:
            raise ValueError("`schedule` is only used with amortisation: custom")
        return self


class Lease(_CreditInputs):
    """A finance lease of IP (sale-leaseback): the lessee pays rents; an optional purchase
    option or residual is paid with the last rent.

    Give ``rents`` explicitly (the implicit rate is solved from ``balance``) or give ``rate``
    and ``term_months`` for level rents.
    """

    id: str | None = Field(None, description="Lease identifier.")
    balance: Money = Field(gt=0, description="Financed amount outstanding at closing.")
    rate: InterestRate | None = Field(
        None, description="Implicit annual rate for level rents, between -100% and 100%."
    )
    term_months: int | None = Field(
        None,
        ge=1,
        le=MAX_TERM_MONTHS,
        description=f"Remaining term for level rents, 1 to {MAX_TERM_MONTHS} months.",
    )
    payment_frequency: Frequency = Field("quarterly", description="Rent frequency.")
    rents: list[Money] | None = Field(
        None, description="Explicit rents, one per rent date, the first one period after closing."
    )
    residual: Money = Field(0.0, description="Purchase option price / residual paid at the end.")
    pledged_ip: PledgedIP | None = Field(None, description="The leased IP (for recovery).")
    guarantee: LoanGuarantee | None = Field(None, description="Optional guarantee.")

    @model_validator(mode="after")
    def _rents(self) -> Lease:
        if self.rents is None and (self.rate is None or self.term_months is None):
            raise ValueError("give `rents`, or `rate` and `term_months` for level rents")
        if self.rents is not None and self.term_months is not None:
            raise ValueError("give either `rents` or `term_months`, not both")
        return self


class Tier(Model):
    """A royalty tier: ``rate`` applies to annual sales above ``above``."""

    above: Money = Field(description="Annual sales threshold.")
    rate: Share = Field(description="Royalty rate on sales above the threshold.")


class BaseProcess(Model):
    """A deterministic base (licensee sales or company income) per year."""

    initial: Money = Field(description="Annual amount in the first year after closing.")
    growth: Rate = Field(0.0, description="Annual growth rate (can be negative).")


class Royalty(_CreditInputs):
    """A licence-royalty stream owed by a licensee (the obligor).

    kind:
      - ``fixed``: fixed licence instalments (the sub-licence model); ``balance`` is the price
        paid for them and gives the implicit rate.
      - ``running``: ``rate`` x licensee ``sales`` (optionally tiered), with an annual
        ``minimum`` and ``cap``.
      - ``income_share``: ``share`` x a company's ``income`` (e.g. 70% of equity income).
    """

    id: str | None = Field(None, description="Stream identifier.")
    kind: Literal["fixed", "running", "income_share"] = Field(description="Kind of stream.")
    payment_frequency: Frequency = Field("quarterly", description="How often the licensee pays.")
    start_date: Date | None = Field(None, description="First accrual date (default: closing).")
    end_date: Date | None = Field(None, description="End of the licence (default: legal final).")
    patent_expiry: Date | None = Field(None, description="Royalties stop at patent expiry.")
    balance: Money | None = Field(None, description="fixed: price paid for the instalments.")
    instalments: list[Money] | None = Field(
        None, description="fixed: instalments, one per payment date after closing."
    )
    rate: Share | None = Field(None, description="running: royalty rate on sales.")
    tiers: list[Tier] | None = Field(None, description="running: higher tiers, by annual sales.")
    minimum: Money = Field(0.0, description="running: guaranteed minimum royalty per year.")
    cap: Money | None = Field(None, description="running: maximum royalty per year.")
    sales: BaseProcess | None = Field(None, description="running: licensee sales.")
    share: Share | None = Field(None, description="income_share: share of income paid.")
    income: BaseProcess | None = Field(None, description="income_share: company income.")
    payment_lag_months: int = Field(
        0, ge=0, le=MAX_TERM_MONTHS, description="Months between accrual and payment."
    )
    valuation: Annotated[Money | list[Money], Field(union_mode="left_to_right")] | None = Field(
        None,
        description="Appraised value of the catalogue behind the stream under the base projection: "
        "an amount, or one per payment date (the last repeats). Counts as collateral (the first "
        "value) and in the `collateral_value` quantity.",
    )

    @field_validator("valuation")
    @classmethod
    def _check_valuation(cls, v: float | list[float] | None) -> float | list[float] | None:
        if isinstance(v, list) and not v:
            raise ValueError("give at least one value, or leave `valuation` out")
        return v

    @model_validator(mode="after")
    def _kind_fields(self) -> Royalty:
        need = {
            "fixed": ("instalments",),
            "running": ("rate", "sales"),
            "income_share": ("share", "income"),
        }[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} royalty needs: {', '.join(missing)}")
        foreign = {
            "fixed": ("rate", "tiers", "cap", "sales", "share", "income"),
            "running": ("instalments", "share", "income", "balance"),
            "income_share": ("instalments", "rate", "tiers", "cap", "sales", "balance"),
        }[self.kind]
        extra = [f for f in foreign if getattr(self, f) is not None]
        if extra:
            raise ValueError(f"a {self.kind} royalty does not use: {', '.join(extra)}")
        if self.tiers and any(b.above <= a.above for a, b in pairwise(self.tiers)):
            raise ValueError("royalty tiers must have increasing `above` thresholds")
        return self


class TapeSource(Model):
    """A loan tape: a CSV or Excel file of loans, one row each.

    ``columns`` maps loan fields to column names; ``defaults`` gives values for fields the
    tape lacks. The path is relative to the deal file. A seasoned pool's tape may carry
    ``age_months`` or ``origination_date``, ``original_balance`` and ``original_term_months``
    (see docs/calendars.md). A loan's pledged IP is in ``ip_kind``, ``appraised_value`` and
    ``value_volatility`` (as ``pledged_ip``'s fields; a volatility needs an appraised value).
    """

    path: str = Field(description="CSV (.csv) or Excel (.xlsx) file, relative to the deal file.")
    sheet: str | None = Field(None, description="Excel sheet name (default: the first sheet).")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Loan field -> column name in the tape."
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="Loan field -> value used for every row."
    )


class Pool(Model):
    """A pool of assets."""

    name: Name = Field(description="Pool name.")
    loans: list[Loan] = Field(default_factory=list, description="IP-pledged SME loans.")
    leases: list[Lease] = Field(default_factory=list, description="Finance leases of IP.")
    royalties: list[Royalty] = Field(default_factory=list, description="Licence-royalty streams.")
    tape: TapeSource | None = Field(None, description="Loans read from a CSV or Excel tape.")

    @model_validator(mode="after")
    def _not_empty(self) -> Pool:
        if not (self.loans or self.leases or self.royalties or self.tape):
            raise ValueError("a pool needs at least one of loans, leases, royalties or tape")
        return self


# --------------------------------------------------------------------------- revolving


class PurchaseTemplate(Model):
    """A kind of asset the trust buys during the revolving period. Each purchase of a template
    is a cohort of equal new loans of at most `loan_size` each; in the Monte Carlo every one
    of them is a new obligor whose default clock starts at purchase."""

    name: Name = Field(description="Template name.")
    share: Share = Field(description="Share of each purchase spent on this template.")
    loan_size: Money = Field(gt=0, description="Largest balance of one purchased loan (one obligor).")
    rate: Coupon = Field(description="Loan rate: fixed, or {index, spread} floating.")
    term_months: int = Field(ge=1, le=MAX_TERM_MONTHS, description="Term from purchase, in months.")
    amortisation: Literal["bullet", "interest_only_then_bullet", "annuity", "equal_principal"] = Field(
        "interest_only_then_bullet", description="How the purchased loans amortise."
    )
    payment_frequency: Frequency = Field("quarterly", description="Loan payment frequency.")
    day_count: DayCount = Field("ACT/365", description="Day count for loan interest.")
    pd: Probability | None = Field(None, description="Annual PD from purchase (Monte Carlo).")
    grade: str | None = Field(None, description="Credit grade (looked up in `risk.pd_by_grade`).")
    industry: str | None = Field(None, description="Industry (loads on its sector factor).")
    region: str | None = Field(None, description="Park or region (loads on its regional factor).")
    appraisal_ratio: NonNegativeRate | None = Field(
        None,
        description="Appraised value of the pledged IP over the loan balance (e.g. 3 for IP "
        "appraised at three times the loan): the appraisal of a value-based recovery model.",
    )
    max_share_of_pool: Share | None = Field(
        None,
        description="Concentration limit: the template's performing balance may not exceed this "
        "share of the pool's performing balance after a purchase (give each industry its own "
        "template to limit industry shares).",
    )


class RevolvingLimits(Model):
    """Eligibility criteria of purchased assets: a template that fails them is not bought."""

    min_rate: InterestRate | None = Field(None, description="Minimum loan rate at purchase.")
    max_term_months: int | None = Field(
        None, ge=1, le=MAX_TERM_MONTHS, description="Longest term a purchased loan may have."
    )


class Revolving(Model):
    """A revolving period (循环购买): `buy_assets` steps buy new assets with the cash in hand
    on the payment dates up to `until` (or the first `periods` dates), unless a trigger with
    `end_revolving` has ended it. Cash not spent waits in the ledger for the next purchase; when
    revolving ends, it flows on to the later steps."""

    until: Date | None = Field(None, description="Last payment date with purchases.")
    periods: int | None = Field(None, ge=1, description="Number of payment dates with purchases.")
    price: NonNegativeRate = Field(
        1.0,
        description="Purchase price per unit of par, above 0 and at most 2 (below 1: bought at a discount).",
    )
    pool: Name | None = Field(
        None,
        description="The pool whose scenario assumptions (defaults, prepayments, recoveries) "
        "apply to purchased assets in deterministic runs (default: the first pool).",
    )
    templates: Annotated[list[PurchaseTemplate], Field(min_length=1)] = Field(
        description="What is bought, and in which mix."
    )
    limits: RevolvingLimits = Field(default_factory=RevolvingLimits, description="Eligibility criteria.")

    @model_validator(mode="after")
    def _end(self) -> Revolving:
        if (self.until is None) == (self.periods is None):
            raise ValueError("give exactly one of `until` (a date) or `periods` (a number of payment dates)")
        if not 0.0 < self.price <= 2.0:
            raise ValueError(f"price must be above 0 and at most 2 (200% of par); got {self.price:g}")
        total = sum(t.share for t in self.templates)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"template shares must add up to 100%; they add up to {total:.6g}")
        return self


# --------------------------------------------------------------------------- scenarios


class Override(Model):
    """Assumptions for one pool or one obligor, replacing the scenario's."""

    pool: Name | None = Field(None, description="Pool the override applies to.")
    obligor: Name | None = Field(None, description="Obligor the override applies to.")
    defaults: DefaultAssumption | None = Field(None, description="Replaces the scenario's defaults.")
    prepayment: PrepaymentAssumption | None = Field(None, description="Replaces the prepayments.")
    recovery: RecoveryAssumption | None = Field(None, description="Replaces the recovery.")
    royalty: RoyaltyAssumption | None = Field(None, description="Replaces the royalty assumptions.")
    # ---- delinquency
    delinquency: DelinquencyAssumption | None = Field(
        None, description="Replaces the scenario's delinquency roll rates."
    )

    @model_validator(mode="after")
    def _target(self) -> Override:
        if (self.pool is None) == (self.obligor is None):
            raise ValueError("an override names exactly one of `pool` or `obligor`")
        return self


# ---- note options a scenario can override


def _coupon_not_negative(v: Any) -> Any:
    if isinstance(v, float) and v < 0:
        # the waterfall never takes interest back from noteholders: a negative coupon would
        # be shown but paid as 0
        raise ValueError(
            "a fixed note coupon must not be negative (notes pay no negative interest); "
            "write 0 or a positive coupon"
        )
    return v


class PoolFactorBelow(Model):
    """Exercise while the performing pool balance is below a share of the original."""

    pool_factor_below: Share = Field(description="Exercised when pool balance < this x original.")


class RefinancingRate(Model):
    """The rate at which the issuer could refinance: an index plus a spread."""

    index: Name = Field(description="Name of a curve in the top-level `indices` section.")
    spread: InterestRate = Field(0.0, description="Spread over the index.")


class RefinancingBelowCoupon(Model):
    """Exercise when refinancing is cheaper: index + spread on the payment date is below the
    balance-weighted average coupon that the notes outstanding would pay for the next period."""

    refinancing_below_coupon: RefinancingRate = Field(description="{index, spread}.")


CallExercise = Annotated[
    Literal["always", "never"] | PoolFactorBelow | RefinancingBelowCoupon,
    Field(union_mode="left_to_right"),
]


class PutOverride(Model):
    """A scenario's view of one tranche's investor put."""

    share: Share | None = Field(None, description="Replaces the share of holders who put.")
    reset_coupon: Coupon | None = Field(None, description="Replaces the reset coupon.")

    @field_validator("reset_coupon")
    @classmethod
    def _no_negative_reset(cls, v: Any) -> Any:
        return _coupon_not_negative(v)


class Scenario(Model):
    """A named deterministic scenario."""

    description: str = Field("", description="What the scenario represents.")
    defaults: DefaultAssumption = Field(default_factory=DefaultAssumption, description="Default timing.")
    prepayment: PrepaymentAssumption = Field(
        default_factory=PrepaymentAssumption, description="Prepayment speed."
    )
    recovery: RecoveryAssumption = Field(default_factory=RecoveryAssumption, description="Recoveries.")
    royalty: RoyaltyAssumption = Field(default_factory=RoyaltyAssumption, description="Royalty bases.")
    # ---- delinquency
    delinquency: DelinquencyAssumption | None = Field(
        None,
        description="Monthly roll rates between days-past-due buckets and cure rates "
        "(docs/delinquency.md); without them loans are current until they default.",
    )
    overrides: list[Override] = Field(default_factory=list, description="Per pool or obligor.")
    issuer_call: CallExercise | None = Field(
        None, description="Replaces the deal's issuer call exercise policy in this scenario."
    )
    puts: dict[Name, PutOverride] = Field(
        default_factory=dict,
        description="Tranche -> {share, reset_coupon} replacing its put's in this scenario.",
    )


# --------------------------------------------------------------------------- liabilities


class CouponStep(Model):
    """One entry of a coupon schedule: the coupon in force from a date. The coupon of an
    interest period is the one in force on the period's first day."""

    date: Date = Field(alias="from", description="Date from which the coupon applies.")
    rate: Coupon = Field(description="Fixed annual coupon in [0%, 100%), or {index, spread, floor} floating.")

    @field_validator("rate")
    @classmethod
    def _no_negative_rate(cls, v: Any) -> Any:
        return _coupon_not_negative(v)


TrancheCoupon = Annotated[
    InterestRate | FloatingRate | Annotated[list[CouponStep], Field(min_length=1)],
    Field(union_mode="left_to_right"),
]


class InvestorPut(Model):
    """An investor put with a coupon reset (3+N, 回售 with 票面利率调整): on ``date`` holders
    of ``share`` of the tranche sell their notes back at par to ``supporter`` (a
    `liquidity_support`), and from that date the coupon is ``reset_coupon``. The notes stay
    outstanding on the same terms, so the trust's cash flows do not change; what the
    supporter cannot fund is an event of default (a `put_unfunded` trigger)."""

    date: Date = Field(description="Put date: one of the deal's payment dates.")
    reset_coupon: Coupon | None = Field(
        None,
        description="Coupon from the put date (fixed, or {index, spread, floor}); default: unchanged.",
    )
    share: Share = Field(1.0, description="Share of the balance whose holders put (default 100%).")
    supporter: Name = Field(description="The `liquidity_support` that buys the notes put.")

    @field_validator("reset_coupon")
    @classmethod
    def _no_negative_reset(cls, v: Any) -> Any:
        return _coupon_not_negative(v)


class PrepaymentBand(Model):
    """The two prepayment speeds of a planned amortisation band, each {psa}, {cpr} or
    {cpr_vector}."""

    low: PrepaymentAssumption = Field(description="Slow end of the band, e.g. {psa: 100}.")
    high: PrepaymentAssumption = Field(description="Fast end of the band, e.g. {psa: 300}.")


class PlannedAmortisation(Model):
    """A planned amortisation class (PAC): the pool's principal (scheduled and prepaid, no
    defaults) is projected at each of the two band speeds; the tranche's target balance after
    each period is its balance less the cumulative smaller of the two in each period, never
    below 0 (see docs/structures.md)."""

    band: PrepaymentBand = Field(description="{low: speed, high: speed}.")


class Tranche(Model):
    """A tranche of notes."""

    name: Name = Field(description="Tranche name.")
    balance: Money = Field(description="Original principal balance.")
    coupon: TrancheCoupon = Field(
        0.0,
        description="Fixed annual coupon in [0%, 100%), or {index, spread} floating (a negative "
        "all-in floating rate is paid as 0), or a schedule [{from: DATE, rate: coupon}, ...] "
        "(step-up coupons; the first `from` on or before the closing date, dates increasing; an "
        "interest period pays the coupon in force on its first day).",
    )
    defer_interest: bool = Field(
        False,
        description="Unpaid interest may defer: `interest_shortfall` triggers ignore this tranche "
        "(unpaid interest still carries as arrears and is a loss if unpaid at legal final).",
    )
    expected_maturity: Date | None = Field(
        None, description="Date by which the full balance is due (default: legal final)."
    )
    amortisation_schedule: list[Money] | None = Field(
        None,
        min_length=1,
        description="Target balance after each period, at most the original balance; principal "
        "above it is due.",
    )
    rating: str | None = Field(None, description="Rating at issue (informational).")
    put: InvestorPut | None = Field(
        None, description="Investor put with coupon reset (3+N): {date, reset_coupon, share, supporter}."
    )
    planned_amortisation: PlannedAmortisation | None = Field(
        None,
        description="Planned amortisation class: the target balances follow the pool's principal "
        "at the slower of two prepayment speeds, {band: {low: {psa: 100}, high: {psa: 300}}}.",
    )

    @field_validator("coupon")
    @classmethod
    def _no_negative_coupon(cls, v: Any) -> Any:
        return _coupon_not_negative(v)

    @model_validator(mode="after")
    def _one_schedule(self) -> Tranche:
        if self.planned_amortisation is not None and self.amortisation_schedule is not None:
            raise ValueError(
                "planned_amortisation cannot be combined with amortisation_schedule: give one "
                "target balance schedule"
            )
        return self

    @model_validator(mode="after")
    def _schedule_within_balance(self) -> Tranche:
        for k, target in enumerate(self.amortisation_schedule or ()):
            if target > self.balance:
                raise ValueError(
                    f"amortisation_schedule target {target:,.2f} after period {k + 1} is above the "
                    f"tranche balance {self.balance:,.2f}; give target balances, not principal payments"
                )
        return self


class Fee(Model):
    """A fee paid through the waterfall. Give ``annual_amount``, ``period_amount`` or
    ``rate`` (annual, on ``base``)."""

    name: Name = Field(description="Fee name.")
    annual_amount: Money | None = Field(None, description="Fixed amount per year (accrued).")
    period_amount: Amount | None = Field(
        None,
        description="Amount per period, not annualised: fixed, a schedule, or a formula such as "
        "{share: 3.26%, of: interest_collections} (taxes or a servicing fee on collections).",
    )
    rate: NonNegativeRate | None = Field(None, description="Annual rate on `base`, not negative.")
    base: str = Field("pool_balance_start", description="Quantity the rate applies to.")
    rank: Literal["senior", "junior"] = Field(
        "senior", description="senior fees are deducted in DSCR; rank does not reorder steps."
    )
    cap_per_year: Money | None = Field(
        None,
        description="Most paid per deal year (12 months from closing) by the fee's own steps and "
        "draws; what accrues beyond it is owed junior and paid only by `pay_fee_above_cap` steps.",
    )

    @field_validator("base")
    @classmethod
    def _check_base(cls, v: str) -> str:
        parse_quantity(v)
        return v

    @model_validator(mode="after")
    def _one(self) -> Fee:
        given = [k for k in ("annual_amount", "period_amount", "rate") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of annual_amount, period_amount or rate")
        return self


class Account(Model):
    """A cash account: a reserve (funded to a target, drawn for shortfalls) or a cash trap."""

    name: Name = Field(description="Account name.")
    kind: Literal["reserve", "trap"] = Field("reserve", description="reserve or trap.")
    initial: Money = Field(0.0, description="Balance funded at closing.")
    target: Amount = Field(0.0, description="Target balance (reserve).")
    floor: Money = Field(0.0, description="Minimum target while notes are outstanding.")
    release_excess: bool = Field(
        True, description="Release the balance above target into available funds each period."
    )
    releases_to: Literal["income", "principal"] = Field(
        "income",
        description="The ledger that receives the account's releases, in waterfalls with income "
        "and principal ledgers.",
    )
    after_switch: Literal["release", "keep_funded"] = Field(
        "release",
        description="After a trigger switches the waterfall (acceleration, event of default): "
        "`release` the balance into available funds, or `keep_funded` (the target still "
        "applies, the account is released at legal final or when the notes are repaid).",
    )


class DeficiencyPayment(Model):
    """A deficiency payment undertaking: the provider pays shortfalls of the items it covers,
    up to its caps, while it has not defaulted. Its payments are reimbursed only when a
    ``reimburse`` step names it: that step pays interest at ``reimbursement_rate`` on the draws
    unreimbursed at the start of the period (plus interest unpaid before), then the draws.
    Reimbursement does not restore the caps (they count every payment made)."""

    name: Name = Field(description="Support name (used by `draw` steps).")
    kind: Literal["deficiency_payment"] = Field(description="Support kind: `deficiency_payment`.")
    provider: Name = Field(description="Provider obligor name.")
    cap_per_period: Money | None = Field(None, description="Maximum payment per period.")
    cap_total: Money | None = Field(None, description="Maximum payment over the deal's life.")
    reimbursement_rate: InterestRate = Field(
        0.0,
        description="Annual interest on unreimbursed payments (only with a `reimburse` step), "
        "on the amount outstanding at the start of each period, between -100% and 100%.",
    )


class LiquidityFacility(Model):
    """A liquidity facility: draws cover shortfalls and are repaid, with interest, through a
    `repay_liquidity` step."""

    name: Name = Field(description="Support name (used by `draw` and `repay_liquidity` steps).")
    kind: Literal["liquidity_facility"] = Field(description="Support kind: `liquidity_facility`.")
    provider: Name = Field(description="Provider obligor name.")
    limit: Money = Field(description="Maximum amount outstanding.")
    rate: InterestRate = Field(0.0, description="Annual interest on drawn amounts, between -100% and 100%.")


class LiquiditySupport(Model):
    """A liquidity supporter (流动性支持) of investor puts: it buys the notes put back on a
    put date at par, up to ``limit`` in all, while it has not defaulted."""

    name: Name = Field(description="Support name (named by a tranche's `put.supporter`).")
    kind: Literal["liquidity_support"] = Field(description="Support kind: `liquidity_support`.")
    provider: Name = Field(description="Provider obligor name (give it a PD to let it default).")
    limit: Money = Field(description="Maximum amount of notes it buys over the deal's life.")


Support = Annotated[DeficiencyPayment | LiquidityFacility | LiquiditySupport, Field(discriminator="kind")]


# ---- support: loss cover of defaulted assets


class CoverPayer(Model):
    """A party sharing the losses of a risk-sharing pool."""

    obligor: Name = Field(description="Payer obligor name (it can default: then it pays nothing more).")
    share: Share = Field(description="Share of each covered loss it pays.")
    cap_per_year: Money | None = Field(
        None,
        description="Maximum it pays per deal year (12 months from closing; a payment date "
        "counts in the year in which it falls).",
    )
    cap_total: Money | None = Field(None, description="Maximum it pays over the deal's life.")


COVER_TARGETS = (
    "Pool names, loan or lease ids, or obligor names whose loans and leases are covered (an asset "
    "is covered by at most one entry; running royalties and income shares are not covered)."
)


class RiskSharing(Model):
    """A risk-sharing pool (风险补偿资金池, 多方共担): each payer pays its `share` of the losses on
    the covered loans, up to its caps, while it has not defaulted; the share no payer takes stays
    with the deal.

    ``basis: realised_loss``: the loss is the defaulted balance less the loan-guarantee payment
    and the recovery; it is paid ``lag_months`` after the recovery arrives (the recovery lag after
    the default period). ``basis: defaulted_principal``: the defaulted balance less the
    loan-guarantee payment is paid ``lag_months`` after the default period, and the payers take
    over the recovery on what they paid (the deal keeps the recovery times the share unpaid).
    """

    name: Name = Field(description="Cover name.")
    kind: Literal["risk_sharing"] = Field(description="Cover kind: `risk_sharing`.")
    covers: Annotated[list[str], Field(min_length=1)] = Field(description=COVER_TARGETS)
    payers: Annotated[list[CoverPayer], Field(min_length=1)] = Field(
        description="Payers and their shares (at most 100% together)."
    )
    basis: Literal["realised_loss", "defaulted_principal"] = Field(
        "realised_loss", description="What is shared: realised_loss or defaulted_principal."
    )
    lag_months: int = Field(
        0,
        ge=0,
        le=MAX_TERM_MONTHS,
        description="Months from the realised loss (realised_loss) or from the default period "
        "(defaulted_principal) to payment; a payment after legal final is lost.",
    )

    @field_validator("payers")
    @classmethod
    def _shares(cls, v: list[CoverPayer]) -> list[CoverPayer]:
        total = sum(p.share for p in v)
        if total > 1.0 + 1e-12:
            raise ValueError(
                f"the payers' shares add up to {total:.4%}, above 100%: the deal cannot be paid "
                "more than its loss; lower the shares"
            )
        return v


class GuaranteeInsurance(Model):
    """Guarantee insurance (保证保险): the insurer pays `share` of the defaulted balance (less any
    loan-guarantee payment) `waiting_months` after the default period, up to `cap_total`, while
    it has not defaulted, and takes over the recovery on what it paid. The premium is an
    ordinary fee (e.g. a `rate` on the pool balance)."""

    name: Name = Field(description="Cover name.")
    kind: Literal["insurance"] = Field(description="Cover kind: `insurance`.")
    insurer: Name = Field(description="Insurer obligor name (it can default: then it pays nothing more).")
    covers: Annotated[list[str], Field(min_length=1)] = Field(description=COVER_TARGETS)
    share: Share = Field(1.0, description="Share of the defaulted balance insured.")
    waiting_months: int = Field(
        0,
        ge=0,
        le=MAX_TERM_MONTHS,
        description="Months from the end of the default period to the claim payment; a payment "
        "after legal final is lost.",
    )
    cap_total: Money | None = Field(None, description="Policy limit: maximum paid over the deal's life.")


LossCover = Annotated[RiskSharing | GuaranteeInsurance, Field(discriminator="kind")]


# ---- hedges


class _HedgeTerms(Model):
    name: Name = Field(description="Hedge name (used by `pay_hedge` and `pay_hedge_termination` steps).")
    counterparty: Name = Field(
        description="Counterparty obligor name (give it a PD to let it default in the Monte Carlo)."
    )
    index: Name = Field(description="Name of a curve in the top-level `indices` section.")
    notional: Amount = Field(
        description="Notional of each period: a fixed amount, a schedule, or a formula read at the "
        "start of the period, e.g. {of: balance(senior)} or {of: pool_balance_start}."
    )
    day_count: DayCount | None = Field(
        None, description="Day count of both legs (default: the deal's `day_count`)."
    )
    start_date: Date | None = Field(
        None,
        description="The hedge settles the interest periods starting on or after this date "
        "(default: closing).",
    )
    end_date: Date | None = Field(
        None,
        description="The hedge settles the interest periods ending on or before this date "
        "(default: legal final).",
    )
    terminate_on_switch: bool = Field(
        False,
        description="The hedge also terminates on the first payment date on which a trigger switches "
        "the waterfall (an event of default or acceleration), at its mark-to-market.",
    )
    termination_recovery: Share = Field(
        0.0,
        description="Share of a termination amount owed to the trust that a defaulted counterparty "
        "pays (default 0).",
    )


class InterestRateSwap(_HedgeTerms):
    """An interest-rate swap (利率互换): each payment date the trust and the counterparty
    settle net, on the period's notional and year fraction, the fixed leg (``fixed_rate``)
    against the floating leg (``index`` at the start of the period plus ``spread``);
    ``trust_pays`` says which leg the trust pays. See docs/hedges.md."""

    kind: Literal["interest_rate_swap"] = Field(description="Hedge kind: `interest_rate_swap`.")
    trust_pays: Literal["fixed", "floating"] = Field(
        "fixed", description="The leg the trust pays: `fixed` (it receives the index) or `floating`."
    )
    fixed_rate: InterestRate = Field(description="Annual fixed rate, between -100% and 100%.")
    spread: InterestRate = Field(0.0, description="Spread over the index of the floating leg.")


class InterestRateCap(_HedgeTerms):
    """An interest-rate cap (利率上限): each payment date the counterparty pays
    ``max(index - strike, 0) x notional x year fraction``; the trust pays ``premium_rate`` on the
    notional each period, if any, through its `pay_hedge` step. ``upfront_premium`` is paid at
    closing out of the issue proceeds, outside the waterfall (recorded, not simulated)."""

    kind: Literal["interest_rate_cap"] = Field(description="Hedge kind: `interest_rate_cap`.")
    strike: InterestRate = Field(description="Annual strike rate, between -100% and 100%.")
    premium_rate: NonNegativeRate = Field(
        0.0, description="Annual premium on the notional the trust pays each period (default 0)."
    )
    upfront_premium: Money = Field(
        0.0, description="Premium paid at closing, outside the waterfall (informational)."
    )


Hedge = Annotated[InterestRateSwap | InterestRateCap, Field(discriminator="kind")]


class TriggerEffect(Model):
    """What a trigger does while active."""

    sequential: bool = Field(False, description="Pro-rata principal steps pay sequentially.")
    trap: Share = Field(0.0, description="Share of the cash reaching a trap_cash step to trap.")
    waterfall: Name | None = Field(None, description="Switch to this waterfall.")
    end_revolving: bool = Field(
        False, description="End the revolving period for good (an early amortisation event)."
    )


TRAILING_TRIGGERS = ("dscr", "collections_vs_projection", "excess_spread", "delinquency")
"""Trigger kinds whose test may run over a trailing window (`periods`)."""


class Trigger(Model):
    """A trigger: a test evaluated at each payment date before the waterfall."""

    name: Name = Field(description="Trigger name.")
    kind: Literal[
        "cumulative_default_rate",
        "dscr",
        "reserve_below_target",
        "overcollateralisation",
        "interest_shortfall",
        "principal_deficiency",
        "obligor_default",
        "uninvested_cash",
        "put_unfunded",
        "collections_vs_projection",
        "excess_spread",
        "loan_to_value",
        "delinquency",
    ] = Field(
        description="cumulative_default_rate: cumulative defaults / original pool > threshold; "
        "dscr: (collections - senior fees) / (interest and principal due of `tranches`; the "
        "whole balance is due after a waterfall switch) < threshold; "
        "reserve_below_target: `account` below its target x threshold (default 1); "
        "overcollateralisation: pool balance / balance of `tranches`, both at the start of the "
        "period, < threshold; "
        "interest_shortfall: interest of `tranches` (those that may not defer) unpaid on the previous date; "
        "principal_deficiency: the principal deficiency ledger over the original balance of "
        "`tranches` (or of the pool) > threshold, and not zero; "
        "obligor_default: `obligor` (e.g. the seller) has defaulted; "
        "uninvested_cash: cash a `buy_assets` step could not spend on the previous date over the "
        "original pool balance > threshold (with `consecutive`: uninvested for N dates); "
        "put_unfunded: an investor put of `tranches` (default: every tranche with a put) that its "
        "supporter did not fund, on an earlier payment date (an event of default from the next date; "
        "any unfunded amount breaches it, whatever the threshold); "
        "collections_vs_projection: collections (`of`) / the `projection` of them fixed at "
        "closing < threshold (with `periods`: sums over the last N periods); "
        "excess_spread: the annualised excess spread (see the quantities) < threshold (with "
        "`periods`: its average over the last N periods); "
        "loan_to_value: balance of `tranches` (default: all notes) / `valuation` > threshold; "
        "delinquency: the balance at least `days_past_due` days behind / the pool balance, both "
        "at the end of the period, > threshold (with `periods`: the average of the last N ratios). "
        "With `periods`, a dscr is trailing: the sum of its numerators over the sum of its "
        "denominators over the last N periods (fewer at the start)."
    )
    threshold: NonNegativeRate | Annotated[list[NonNegativeRate], Field(min_length=1)] = Field(
        0.0,
        description="Threshold, or one per period (the last repeats); not negative, and at most 1 "
        "for cumulative_default_rate.",
    )
    tranches: list[Name] = Field(default_factory=list, description="Tranches the test uses.")
    account: Name | None = Field(None, description="reserve_below_target: the account.")
    obligor: Name | None = Field(None, description="obligor_default: the obligor.")
    periods: int | None = Field(
        None,
        ge=1,
        le=MAX_TERM_MONTHS,
        description="dscr, collections_vs_projection, excess_spread: a trailing window of the "
        "last N payment periods (this one included) instead of this period alone.",
    )
    of: Literal[
        "royalty_collections",
        "collections",
        "income_collections",
        "interest_collections",
        "principal_collections",
    ] = Field("royalty_collections", description="collections_vs_projection: the collections tested.")
    projection: Literal["contractual"] | Annotated[list[Money], Field(min_length=1)] = Field(
        "contractual",
        description="collections_vs_projection: the base case fixed at closing: `contractual` "
        "(royalty streams' own sales or income processes, loans' and leases' scheduled cash, "
        "no defaults, prepayments or haircuts) or one amount per payment date (e.g. the "
        "offering circular's table).",
    )
    valuation: Amount | None = Field(
        None,
        description="loan_to_value: the collateral value: an amount, a Schedule (e.g. the "
        "appraiser's projected values) or a Formula.",
    )
    # ---- delinquency
    days_past_due: Literal[30, 60, 90] = Field(
        60, description="delinquency: the bucket the ratio counts from (60: loans 60 or more days behind)."
    )
    consecutive: int = Field(1, ge=1, description="Breaches in a row before it fires.")
    curable: bool = Field(True, description="It switches off when the test passes again.")
    effect: TriggerEffect = Field(description="What happens while it is active.")

    @model_validator(mode="after")
    def _kind_fields(self) -> Trigger:
        if self.periods is not None and self.kind not in TRAILING_TRIGGERS:
            raise ValueError(
                f"`periods` (a trailing window) applies to {', '.join(TRAILING_TRIGGERS)} "
                f"triggers, not to {self.kind}"
            )
        if self.kind == "loan_to_value" and self.valuation is None:
            raise ValueError("a loan_to_value trigger needs `valuation`: an amount, a Schedule or a Formula")
        if self.valuation is not None and self.kind != "loan_to_value":
            raise ValueError("`valuation` belongs to loan_to_value triggers")
        if self.kind != "delinquency" and "days_past_due" in self.model_fields_set:
            raise ValueError("`days_past_due` belongs to delinquency triggers")
        if self.kind != "collections_vs_projection" and (
            self.projection != "contractual" or "of" in self.model_fields_set
        ):
            raise ValueError("`of` and `projection` belong to collections_vs_projection triggers")
        return self

    @model_validator(mode="after")
    def _rate_threshold(self) -> Trigger:
        if self.kind == "cumulative_default_rate":
            values = self.threshold if isinstance(self.threshold, list) else [self.threshold]
            if any(v > 1.0 for v in values):
                raise ValueError(
                    "threshold of a cumulative_default_rate trigger is a share of the original "
                    "pool: it must be at most 1 (100%)"
                )
        return self


class CleanUpCall(Model):
    """The originator buys back the pool once it is small."""

    threshold: Share = Field(description="Exercised when pool balance <= threshold x original.")
    price: Share = Field(1.0, description="Price as a share of the performing balance.")


class IssuerCall(Model):
    """The issuer's optional redemption: on the first payment date on or after ``from`` on
    which the exercise condition holds, the pool is sold at ``price x`` its performing balance
    (as for a clean-up call) and every note's whole balance becomes due."""

    date: Date = Field(alias="from", description="First date on which the call may be exercised.")
    price: Share = Field(1.0, description="Price as a share of the performing balance.")
    exercise: CallExercise = Field(
        "always",
        description="always, never, {pool_factor_below: share} or "
        "{refinancing_below_coupon: {index, spread}}; a scenario may override it.",
    )


# --------------------------------------------------------------------------- waterfall steps

ManyNames = Annotated[list[Name], Field(min_length=1)]


def _names(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class PayPrincipal(Model):
    """Pay principal to ``tranches``."""

    tranches: ManyNames = Field(description="Tranches, in order of seniority.")
    mode: Literal["sequential", "pro_rata"] = Field("sequential", description="Allocation.")
    limit: Literal["available", "principal_collections", "due"] = Field(
        "available",
        description="available: all cash left; principal_collections: up to this period's "
        "principal collections not yet used; due: up to the principal due (schedule, expected "
        "maturity, legal final). At legal final and after a waterfall switch only `due` applies.",
    )
    down_to: Amount | None = Field(
        None,
        description="Only pay the group's balance down to this target (not at legal final or "
        "after a waterfall switch).",
    )

    @field_validator("tranches", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return _names(v)


class Draw(Model):
    """Draw an account or a support provider for the unpaid part of ``covers``.

    A claim is ``TRANCHE.interest``, ``TRANCHE.principal`` (principal due each period),
    ``TRANCHE.principal_at_maturity`` (principal unpaid on the tranche's expected maturity date
    and after; legal final when it has none), ``TRANCHE.principal_at_final`` (principal unpaid at
    the legal final date only) or a fee name.
    """

    source: Name = Field(alias="from", description="Account or support (deficiency, liquidity).")
    covers: Annotated[list[str], Field(min_length=1)] = Field(description="Claims, in order of priority.")

    @field_validator("covers", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return _names(v)


ToPrincipal = Annotated[
    Literal["deficiency", "all"] | Money | Formula | Schedule, Field(union_mode="left_to_right")
]
"""What a `to_principal` step moves: the deficiency, all income left, or an amount."""


class Step(Model):
    """One step of a priority of payments: a mapping with exactly one key, its kind.

    Shorthands: ``pay_interest: senior`` and ``pay_principal: senior`` name one tranche;
    ``pay_interest: [a1, a2]`` pays a pro-rata group.
    """

    pay_fee: ManyNames | None = Field(None, description="Pay fees (a list is pro rata).")
    pay_interest: ManyNames | None = Field(None, description="Pay interest (a list is pro rata).")
    pay_principal: PayPrincipal | None = Field(None, description="Pay principal.")
    fund_account: Name | None = Field(None, description="Fund an account up to its target.")
    draw: Draw | None = Field(None, description="Draw an account or support provider.")
    trap_cash: Name | None = Field(None, description="Trap the active share of cash in an account.")
    repay_liquidity: Name | None = Field(None, description="Repay a liquidity facility.")
    reimburse: Name | None = Field(
        None,
        description="Reimburse a support provider from available cash: interest on its "
        "unreimbursed draws, then the draws (a liquidity facility: as `repay_liquidity`).",
    )
    pay_residual: Name | None = Field(None, description="Pay all cash left to a tranche.")
    to_principal: ToPrincipal | None = Field(
        None,
        description="Income ledgers only: move income cash to the principal ledger: `deficiency` "
        "(up to the principal deficiency ledger), `all` (all income cash left) or an amount; what "
        "moves clears the principal deficiency ledger first.",
    )
    pay_fee_above_cap: ManyNames | None = Field(
        None, description="Pay what fees accrued above their `cap_per_year` (a list is pro rata)."
    )
    buy_assets: Literal["all"] | None = Field(
        None,
        description="During the revolving period: buy new assets (`revolving`) with all cash in "
        "hand, within the limits; cash not spent waits for the next date. Does nothing after it.",
    )
    # ---- hedges
    pay_hedge: Name | None = Field(
        None,
        description="Pay a hedge's net payment owed by the trust this period, plus what is unpaid "
        "from earlier dates (carried without interest).",
    )
    pay_hedge_termination: Name | None = Field(
        None,
        description="Pay a termination amount the trust owes on a terminated hedge, plus what is "
        "unpaid from earlier dates (usually junior).",
    )

    @field_validator("pay_fee", "pay_interest", "pay_fee_above_cap", mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        return _names(v)

    @field_validator("pay_principal", mode="before")
    @classmethod
    def _principal(cls, v: Any) -> Any:
        return {"tranches": v} if isinstance(v, (str, list)) else v

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        if len(self.model_fields_set) != 1:
            kinds = ", ".join(Step.model_fields)
            given = [k for k in Step.model_fields if k in self.model_fields_set]
            if given:
                raise ValueError(
                    f"a step has exactly one key, its kind; this one has {' and '.join(given)}: "
                    "split it into separate steps"
                )
            raise ValueError(f"a step has exactly one key, its kind: one of {kinds}")
        kind = next(iter(self.model_fields_set))
        if getattr(self, kind) is None:
            raise ValueError(f"{kind} needs a value")
        return self

    @property
    def kind(self) -> str:
        """The step kind (its only key)."""
        return next(iter(self.model_fields_set))

    @property
    def value(self) -> Any:
        """The step's argument."""
        return getattr(self, self.kind)


class LedgerWaterfall(Model):
    """A priority of payments with separate income and principal ledgers (收入分账户 /
    本金分账户), as Chinese trust plans define them: the income steps run first on income
    collections, then the principal steps on principal collections. Principal that pays fees or
    interest (本金补足) is recorded in the principal deficiency ledger; a `to_principal` income
    step moves income cash back to principal and clears it."""

    income: Annotated[list[Step], Field(min_length=1)] = Field(
        description="Steps paid from income collections (interest, royalties, the income share of "
        "recoveries, releases of income accounts)."
    )
    principal: Annotated[list[Step], Field(min_length=1)] = Field(
        description="Steps paid from principal collections (scheduled principal, prepayments, "
        "guarantee payments, the principal share of recoveries, call proceeds)."
    )


Waterfall = Annotated[list[Step] | LedgerWaterfall, Field(union_mode="left_to_right")]
"""A list of steps paid from all cash, or a :class:`LedgerWaterfall`."""


class RecoverySplit(Model):
    """Recoveries split between the ledgers by share."""

    principal: Share = Field(description="Share of each recovery that is a principal collection.")


class Ledgers(Model):
    """Rules of the income and principal ledgers (used by waterfalls with `income` and
    `principal` lists)."""

    recoveries: Literal["principal", "income"] | RecoverySplit = Field(
        "principal",
        description="Where recoveries on defaulted assets go: `principal`, `income`, or "
        "{principal: 80%} (the rest to income).",
    )
    principal_deficiency_debits: list[Literal["defaults", "realised_losses"]] = Field(
        default_factory=list,
        description="Besides principal used for fees and interest, what the principal deficiency "
        "ledger records: `defaults` (the defaulted balance when it defaults) and/or "
        "`realised_losses` (what recovery did not bring, when liquidation ends).",
    )


class LossAllocation(Model):
    """Loss allocation by write-down: losses reduce note balances in `order`, and interest then
    accrues only on the written-down balance. Written-down principal is never reinstated; it
    counts as a principal loss of the tranche."""

    method: Literal["write_down"] = Field(description="`write_down`.")
    at: Literal["default", "liquidation"] = Field(
        "default",
        description="`default`: the defaulted balance is written down in the period it defaults "
        "(before that period's interest accrues); `liquidation`: the defaulted balance less its "
        "recovery and guarantee is written down in the period the recovery is received (not at "
        "all when that is after the legal final date).",
    )
    order: list[Name] | None = Field(
        None, description="Tranches written down, first to last (default: most junior first)."
    )


# --------------------------------------------------------------------------- the deal


# ---- delinquency


class ServicerAdvances(Model):
    """Advances by the servicer (服务机构垫付) of the payments delinquent loans miss.

    Each period the servicer pays the trust the scheduled interest (and, with ``principal``,
    the scheduled principal) that loans behind on their payments missed, until it defaults
    itself. It is repaid first, before the priority of payments and out of the period's income
    then principal collections, the advances on the arrears that left the delinquent buckets
    in the period: collected from a cured loan, or lost with a defaulted one (a nonrecoverable
    advance)."""

    servicer: Name = Field(description="The servicer, an obligor: it advances nothing from its default on.")
    interest: bool = Field(True, description="Advance missed scheduled interest.")
    principal: bool = Field(False, description="Advance missed scheduled principal.")

    @model_validator(mode="after")
    def _something(self) -> ServicerAdvances:
        if not (self.interest or self.principal):
            raise ValueError("servicer_advances advance nothing: set `interest` or `principal` to true")
        return self


class Deal(Model):
    """A whole deal file."""

    deal: DealInfo = Field(description="Header: dates, frequency, conventions.")
    indices: dict[Name, IndexCurve] = Field(
        default_factory=dict, description="Deterministic index curves (e.g. LPR1Y: 3.1%)."
    )
    obligors: list[Obligor] = Field(
        default_factory=list, description="Obligors not described on an asset (guarantors, providers)."
    )
    pools: list[Pool] = Field(min_length=1, description="Collateral pools.")
    scenarios: dict[Name, Scenario] = Field(
        default_factory=lambda: {"base": Scenario()},
        description="Named deterministic scenarios; the first is the default.",
    )
    tranches: list[Tranche] = Field(min_length=1, description="Notes, most senior first.")
    fees: list[Fee] = Field(default_factory=list, description="Fees paid through the waterfall.")
    accounts: list[Account] = Field(default_factory=list, description="Reserve and cash-trap accounts.")
    support: list[Support] = Field(
        default_factory=list, description="Deficiency payment undertakings and liquidity facilities."
    )
    triggers: list[Trigger] = Field(
        default_factory=list, description="Tests that change the waterfall while active."
    )
    loss_cover: list[LossCover] = Field(
        default_factory=list,
        description="Risk-sharing pools and guarantee insurance paying part of the losses on "
        "defaulted loans (collected as principal).",
    )
    clean_up_call: CleanUpCall | None = Field(None, description="Optional clean-up call.")
    ledgers: Ledgers | None = Field(
        None, description="Rules of the income and principal ledgers (recoveries, deficiency)."
    )
    loss_allocation: LossAllocation | None = Field(
        None, description="Write losses down on the notes (default: no write-down)."
    )
    revolving: Revolving | None = Field(None, description="A revolving period and what it buys.")
    issuer_call: IssuerCall | None = Field(
        None, description="Optional issuer call (optional redemption) from a date."
    )
    # ---- hedges
    hedges: list[Hedge] = Field(
        default_factory=list,
        description="Interest-rate swaps and caps between the trust and a counterparty (docs/hedges.md).",
    )
    # ---- delinquency
    servicer_advances: ServicerAdvances | None = Field(
        None,
        description="The servicer advances what delinquent loans miss, and is repaid before the "
        "priority of payments (docs/delinquency.md).",
    )
    risk: RiskModel | None = Field(None, description="Monte Carlo risk model.")
    waterfalls: dict[Name, Waterfall] = Field(
        description="Named priorities of payments; the first (or `normal`) runs unless a trigger "
        "switches. Each is a list of steps paid from all cash, or `income` and `principal` lists."
    )

    @field_validator("waterfalls")
    @classmethod
    def _non_empty(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("at least one waterfall is needed")
        for name, steps in v.items():
            if isinstance(steps, list) and not steps:
                raise ValueError(f"waterfall {name!r} has no steps")
        return v

    def waterfall_steps(self) -> list[tuple[str, tuple[Any, ...], str, Step]]:
        """Every step of every waterfall as ``(waterfall, path, ledger, step)``: ``path`` locates
        the step in the file and ``ledger`` is ``combined``, ``income`` or ``principal``."""
        out = []
        for name, w in self.waterfalls.items():
            if isinstance(w, LedgerWaterfall):
                for ledger in ("income", "principal"):
                    for k, step in enumerate(getattr(w, ledger)):
                        out.append((name, ("waterfalls", name, ledger, k), ledger, step))
            else:
                for k, step in enumerate(w):
                    out.append((name, ("waterfalls", name, k), "combined", step))
        return out
