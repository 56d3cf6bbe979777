"""The IP valuation file of ``ipabs value``: pledged patents, trademarks, copyrights and software
valued by the income approach (docs/ip-valuation.md), with the events that revalue them.

Validated by the same path as a deal file: pydantic models, then the located-error translation
of :func:`ipabs.deal.validate.translate` (``file:line:column``, field path, what to do), then
cross-checks between sections, located the same way.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from ipabs.deal.base import Model
from ipabs.deal.source import SourceMap, read_yaml
from ipabs.deal.types import Date, Money, Name, NonNegativeRate, Rate, Share
from ipabs.deal.validate import translate
from ipabs.errors import DealError, Issue

IPKind = Literal["patent", "trademark", "copyright", "software"]
Method = Literal["relief_from_royalty", "excess_earnings"]
Market = Literal["strong", "stable", "weak", "declining"]
LegalStatus = Literal["clear", "challenged", "in_litigation", "invalidated"]
EventKind = Literal[
    "patent_invalidated",
    "licence_terminated",
    "challenge_filed",
    "litigation_started",
    "litigation_resolved",
]

# ---- modelling defaults: stated conventions of this package, not market statistics (each is
# overridable in the file's `valuation` section and per asset; docs/ip-valuation.md)
TRL_SUCCESS: dict[int, float] = {
    1: 0.05,
    2: 0.10,
    3: 0.20,
    4: 0.30,
    5: 0.45,
    6: 0.60,
    7: 0.75,
    8: 0.90,
    9: 1.0,
}
"""Probability of technical and commercial success by technology readiness level (TRL 1-9 as
defined by NASA and the EU Horizon 2020 work programme, General Annex G). The levels are
standard; the probabilities are a modelling convention of ipabs, not measured frequencies."""

LEGAL_SURVIVAL: dict[str, float] = {
    "clear": 1.0,
    "challenged": 0.75,
    "in_litigation": 0.5,
    "invalidated": 0.0,
}
"""Probability that the right survives, by legal status: a modelling convention of ipabs."""

MARKET_PREMIUM: dict[str, float] = {"strong": -0.01, "stable": 0.0, "weak": 0.03, "declining": 0.06}
"""Discount-rate premium by market prospects (added to the build-up): a modelling convention."""

MAX_YEARS = 100


class DiscountRate(Model):
    """The discount rate as a build-up: a risk-free rate plus named premia (e.g. an equity risk
    premium, a size premium, an IP-specific premium), each stated in the output."""

    risk_free: Rate = Field(
        description="Risk-free rate (a government bond yield of the valuation's horizon)."
    )
    premia: dict[Name, Rate] = Field(
        default_factory=dict,
        description="Named premia added to the risk-free rate, e.g. `{equity_risk: 6%, size: 3%}`.",
    )


class TaxAmortisation(Model):
    """The tax amortisation benefit: a buyer may amortise the IP for tax over ``years``."""

    years: int = Field(ge=1, le=MAX_YEARS, description="Tax amortisation period in years.")


class ValuationSettings(Model):
    """What every asset shares: the date, currency, discount rate, tax and the factor tables."""

    name: str = Field("IP valuation", description="Name shown in the output.")
    valuation_date: Date = Field(description="Date of the valuation: forecast year 1 starts on it.")
    currency: str = Field("CNY", description="Currency of revenue and values.")
    discount_rate: DiscountRate = Field(description="Default discount-rate build-up.")
    tax_rate: Share = Field(0.0, description="Income tax rate applied to the relief or excess earnings.")
    mid_year: bool = Field(True, description="Discount each year's cash at its middle (else at its end).")
    tax_amortisation: TaxAmortisation | None = Field(
        None, description="Add the tax amortisation benefit (TAB); none when absent."
    )
    trl_success: dict[int, Share] = Field(
        default_factory=dict,
        description="Overrides of the probability of success by TRL (1-9); the rest keep the "
        "defaults of docs/ip-valuation.md.",
    )
    legal_survival: dict[LegalStatus, Share] = Field(
        default_factory=dict, description="Overrides of the probability that the right survives, by status."
    )
    market_premium: dict[Market, Rate] = Field(
        default_factory=dict, description="Overrides of the discount-rate premium by market prospects."
    )

    @field_validator("legal_survival")
    @classmethod
    def _invalidated(cls, v: dict[str, float]) -> dict[str, float]:
        if v.get("invalidated", 0.0) != 0.0:
            raise ValueError("an invalidated right is worth nothing: its survival stays 0")
        return v

    @field_validator("trl_success")
    @classmethod
    def _levels(cls, v: dict[int, float]) -> dict[int, float]:
        bad = [k for k in v if not 1 <= k <= 9]
        if bad:
            raise ValueError(f"technology readiness levels run from 1 to 9, not {bad[0]}")
        return v


class RevenueGrowth(Model):
    """A revenue forecast as a first year's revenue growing at a constant rate."""

    base: Money = Field(description="Revenue of forecast year 1.")
    growth: Rate = Field(0.0, gt=-1.0, description="Yearly growth of revenue after year 1.")
    years: int = Field(ge=1, le=MAX_YEARS, description="Years forecast.")


class ContributoryCharge(Model):
    """A contributory asset charge of the excess-earnings method, as an after-tax share of revenue."""

    name: Name = Field(description="Contributory asset, e.g. working_capital, fixed_assets, workforce.")
    rate: Share = Field(description="After-tax charge as a share of revenue.")


class IPAsset(Model):
    """One pledged IP item (or a family of them valued together) and its valuation inputs."""

    id: Name = Field(description="Identifier of the asset.")
    loan: str | None = Field(
        None, description="The deal loan it secures: the loan's `id` (or its obligor's name)."
    )
    kind: IPKind = Field("patent", description="Kind of IP.")
    count: int = Field(1, ge=1, description="Number of items valued together.")
    method: Method = Field("relief_from_royalty", description="Income-approach method.")
    revenue: Annotated[list[Money], Field(min_length=1, max_length=MAX_YEARS)] | RevenueGrowth = Field(
        description="Revenue forecast: one amount per year from the valuation date, or "
        "`{base, growth, years}`.",
    )
    royalty_rate: Share | None = Field(
        None, description="relief_from_royalty: royalty saved, share of revenue."
    )
    operating_margin: Share | None = Field(
        None, description="excess_earnings: operating (pre-tax) margin of the revenue."
    )
    contributory_charges: list[ContributoryCharge] = Field(
        default_factory=list, description="excess_earnings: contributory asset charges."
    )
    expiry_date: Date | None = Field(
        None, description="End of legal life: cash stops on it (required for a patent)."
    )
    renewable: bool = Field(
        False, description="trademark: renewable at the owner's option, so expiry does not stop the cash."
    )
    trl: int | None = Field(None, ge=1, le=9, description="Technology readiness level 1-9 (none: no factor).")
    market: Market = Field("stable", description="Market prospects.")
    legal_status: LegalStatus = Field("clear", description="Legal status of the right.")
    revenue_volatility: NonNegativeRate = Field(0.0, description="Annual volatility of log revenue.")
    extra_premium: Rate = Field(0.0, description="Asset-specific premium added to the discount rate.")
    success_probability: Share | None = Field(
        None, description="Override of the TRL's probability of success."
    )
    survival_probability: Share | None = Field(
        None, description="Override of the legal status's probability that the right survives."
    )
    market_premium: Rate | None = Field(None, description="Override of the market prospects' premium.")

    @model_validator(mode="after")
    def _method_inputs(self) -> IPAsset:
        if self.method == "relief_from_royalty":
            if self.royalty_rate is None:
                raise ValueError("royalty_rate is missing: relief_from_royalty needs the royalty rate saved")
            if self.operating_margin is not None or self.contributory_charges:
                raise ValueError(
                    "operating_margin and contributory_charges are used only by the excess_earnings method"
                )
        else:
            if self.operating_margin is None:
                raise ValueError("operating_margin is missing: excess_earnings needs the operating margin")
            if self.royalty_rate is not None:
                raise ValueError("royalty_rate is used only by relief_from_royalty")
        if self.kind == "patent" and self.expiry_date is None:
            raise ValueError(
                "expiry_date is missing: a patent needs its expiry date (the end of its legal life)"
            )
        if self.renewable and self.kind != "trademark":
            raise ValueError("renewable is for trademarks only (renewable at the owner's option)")
        return self


class Event(Model):
    """Something that happened to an asset: it changes the asset's state from its date on."""

    date: Date = Field(description="Date of the event.")
    asset: Name = Field(description="The asset's `id`.")
    kind: EventKind = Field(description="What happened.")
    revenue_lost: Share = Field(
        1.0, description="licence_terminated: share of the asset's revenue lost from the event on."
    )
    outcome: Literal["upheld", "invalidated"] | None = Field(
        None, description="litigation_resolved: the right is upheld (clear) or invalidated."
    )

    @model_validator(mode="after")
    def _outcome(self) -> Event:
        if self.kind == "litigation_resolved" and self.outcome is None:
            raise ValueError(
                "outcome is missing: litigation_resolved needs `outcome: upheld` or `outcome: invalidated`"
            )
        if self.kind != "litigation_resolved" and self.outcome is not None:
            raise ValueError("outcome is for litigation_resolved only")
        return self


class IPValuationFile(Model):
    """An IP valuation file: settings, the assets, and optionally events."""

    valuation: ValuationSettings = Field(description="Shared settings.")
    assets: list[IPAsset] = Field(min_length=1, description="The IP valued.")
    events: list[Event] = Field(default_factory=list, description="Events that revalue the assets.")


class EventsFile(Model):
    """A file of events (``ipabs value --events``)."""

    events: list[Event] = Field(description="Events that revalue the assets.")


def _validate(model: type[Model], data: Any, smap: SourceMap, what: str, start: str) -> Any:
    if not isinstance(data, dict):
        raise DealError(
            [Issue(smap.file, 1, 1, "", f"{what} must be a mapping of sections", f"start with {start}")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DealError(translate(exc, data, smap, model)) from None


def _issue(smap: SourceMap, path: tuple[Any, ...], message: str, hint: str = "") -> Issue:
    from ipabs.errors import format_path

    line, column = smap.locate(path)
    return Issue(smap.file, line, column, format_path(path), message, hint)


def _check_events(events: list[Event], spec: IPValuationFile, smap: SourceMap, section: str) -> list[Issue]:
    ids = {a.id for a in spec.assets}
    start = spec.valuation.valuation_date
    issues = []
    for i, e in enumerate(events):
        if e.asset not in ids:
            issues.append(
                _issue(
                    smap,
                    (section, i, "asset"),
                    f"no asset {e.asset!r}",
                    "use the `id` of an asset of the valuation file: " + ", ".join(sorted(ids)),
                )
            )
        if e.date < start:
            issues.append(
                _issue(
                    smap,
                    (section, i, "date"),
                    f"the event ({e.date}) is before the valuation date ({start})",
                    "revalue from a new valuation file instead",
                )
            )
    return issues


def _cross_check(spec: IPValuationFile, smap: SourceMap) -> list[Issue]:
    issues: list[Issue] = []
    seen: set[str] = set()
    s = spec.valuation
    base = s.discount_rate.risk_free + sum(s.discount_rate.premia.values())
    market = {**MARKET_PREMIUM, **s.market_premium}
    for i, a in enumerate(spec.assets):
        if a.id in seen:
            issues.append(
                _issue(smap, ("assets", i, "id"), f"asset id {a.id!r} appears twice", "give each a unique id")
            )
        seen.add(a.id)
        if a.expiry_date is not None and a.expiry_date <= s.valuation_date and not a.renewable:
            issues.append(
                _issue(
                    smap,
                    ("assets", i, "expiry_date"),
                    f"the asset expired ({a.expiry_date}) on or before the valuation date "
                    f"({s.valuation_date})",
                    "remove it or correct the date",
                )
            )
        premium = a.market_premium if a.market_premium is not None else market[a.market]
        rate = base + premium + a.extra_premium
        if rate <= 0.0:
            issues.append(
                _issue(
                    smap,
                    ("assets", i),
                    f"the discount rate of this asset is {rate:.4%}; it must be positive",
                    "check valuation.discount_rate and the asset's premia",
                )
            )
        if a.method == "excess_earnings":
            margin = (a.operating_margin or 0.0) * (1.0 - s.tax_rate)
            charges = sum(c.rate for c in a.contributory_charges)
            if charges >= margin:
                issues.append(
                    _issue(
                        smap,
                        ("assets", i, "contributory_charges"),
                        f"the contributory charges ({charges:.2%} of revenue) leave no excess over the "
                        f"after-tax margin ({margin:.2%})",
                        "lower the charges or raise operating_margin",
                    )
                )
    if s.tax_amortisation is not None and s.tax_rate >= 1.0:
        issues.append(
            _issue(smap, ("valuation", "tax_rate"), "a tax amortisation benefit needs a tax rate below 100%")
        )
    issues += _check_events(spec.events, spec, smap, "events")
    return issues


def deal_loans(deal: Any) -> dict[str, str]:
    """Loan (and lease) ids of a loaded deal -> obligor, inline assets and tapes alike, named
    as state files name them (:func:`ipabs.deal.state.deal_assets`: a loan's ``id``, else its
    obligor's name), so that ``loans.csv`` fits a state's loan tape."""
    from ipabs.deal.state import deal_assets

    return {a.id: a.obligor for a in deal_assets(deal) if a.kind in ("loan", "lease")}


def _resolve_loans(spec: IPValuationFile, smap: SourceMap, deal: Any) -> tuple[IPValuationFile, list[Issue]]:
    """Each asset's ``loan`` as the id of a loan of ``deal``: a loan id, or the name of an
    obligor with exactly one loan."""
    loans = deal_loans(deal)
    by_obligor: dict[str, list[str]] = {}
    for ident, obligor in loans.items():
        by_obligor.setdefault(obligor, []).append(ident)
    issues = []
    assets = []
    for i, a in enumerate(spec.assets):
        ident = a.loan
        if ident is not None and ident not in loans:
            found = by_obligor.get(ident, [])
            if len(found) == 1:
                ident = found[0]
            else:
                what = (
                    f"obligor {ident!r} has {len(found)} loans in the deal: give the loan's id"
                    if found
                    else f"the deal has no loan or obligor {ident!r}"
                )
                issues.append(
                    _issue(
                        smap, ("assets", i, "loan"), what, f"loans of the deal: {', '.join(list(loans)[:8])}"
                    )
                )
        assets.append(a.model_copy(update={"loan": ident}))
    return spec.model_copy(update={"assets": assets}), issues


def load_ip_valuation(path: str | Path, deal: Any = None) -> IPValuationFile:
    """Read and validate an IP valuation file.

    Parameters
    ----------
    path : str or Path
        YAML file with ``valuation``, ``assets`` and optionally ``events``.
    deal : LoadedDeal, optional
        The deal whose loans the pledged IP secures: each asset's ``loan`` must name one of
        its loans (by id, or by an obligor with one loan) and becomes that loan's id.

    Returns
    -------
    IPValuationFile

    Raises
    ------
    DealError
        With every problem found, each located as ``file:line:column`` with its field path.
    """
    data, smap = read_yaml(path)
    spec = _validate(IPValuationFile, data, smap, "an IP valuation file", "`valuation:` and `assets:`")
    issues = _cross_check(spec, smap)
    if deal is not None:
        spec, more = _resolve_loans(spec, smap, deal)
        issues += more
    if issues:
        raise DealError(issues)
    return spec


def load_events(path: str | Path, spec: IPValuationFile) -> list[Event]:
    """Read and validate a file of events about the assets of ``spec``.

    Raises
    ------
    DealError
        Located problems (unknown asset, event before the valuation date, bad fields).
    """
    data, smap = read_yaml(path)
    events = _validate(EventsFile, data, smap, "an events file", "`events:`").events
    issues = _check_events(events, spec, smap, "events")
    if issues:
        raise DealError(issues)
    return list(events)


def years_between(start: dt.date, end: dt.date) -> float:
    """Years from ``start`` to ``end`` on an ACT/365 clock (the package's convention)."""
    return (end - start).days / 365.0
