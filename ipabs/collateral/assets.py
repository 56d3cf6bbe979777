"""Flatten a deal's collateral into arrays: amortising assets (loans, leases, fixed licence
instalments) and royalty streams (running royalties, income shares)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ipabs.calendars import loan_age, loan_start
from ipabs.collateral.schedule_numba_fns import AMORTISATION_CODES, CUSTOM
from ipabs.dates import DAY_COUNTS, MONTHLY_GRID, add_months, to_day
from ipabs.deal.schema import MONTHS_PER_PERIOD, Deal, FloatingRate, Lease, Loan, Royalty

RUNNING = 0
INCOME_SHARE = 1


def _objects(column: Any) -> np.ndarray:
    """A column as a NumPy object array (iterating Arrow-backed strings directly is slow)."""
    return column.to_numpy(dtype=object)


@dataclass
class Obligors:
    """Obligor registry: name -> index, with attributes for reports and the Monte Carlo."""

    names: list[str]
    index: dict[str, int]
    industry: list[str]
    region: list[str]
    pd: np.ndarray  # (O,) annual PD, nan when not given
    pd_curve: list[list[float] | None]  # cumulative PD at the end of years 1, 2, ...
    grade: list[str]
    # (cumulative PD, ACT/365 years from closing to its date) of a `cumulative_pd`, or None
    horizon_pd: list[tuple[float, float] | None]

    @classmethod
    def build(cls, deal: Deal, tapes: dict[str, Any]) -> Obligors:
        """Collect obligors from the `obligors` section, the assets and the tapes."""
        names: list[str] = []
        attrs: dict[str, dict[str, Any]] = {}

        def add(
            name: str,
            industry: Any = None,
            region: Any = None,
            prob: Any = None,
            curve: Any = None,
            grade: Any = None,
            horizon: Any = None,
        ) -> None:
            if name not in attrs:
                names.append(name)
                attrs[name] = {
                    "industry": "",
                    "region": "",
                    "pd": np.nan,
                    "curve": None,
                    "grade": "",
                    "horizon": None,
                }
            a = attrs[name]
            if horizon is not None:
                by = deal.deal.legal_final_date if horizon.by == "legal_final" else horizon.by
                a["horizon"] = (float(horizon.pd), (by - deal.deal.closing_date).days / 365.0)
            if industry:
                a["industry"] = industry
            if region:
                a["region"] = region
            if prob is not None and prob == prob:
                a["pd"] = float(prob)
            if curve:
                a["curve"] = list(curve)
            if grade:
                a["grade"] = grade

        for o in deal.obligors:
            add(o.name, o.industry, o.region, o.pd, o.pd_curve, o.grade, o.cumulative_pd)
        for pool in deal.pools:
            for asset in (*pool.loans, *pool.leases, *pool.royalties):
                add(
                    asset.obligor,
                    asset.industry,
                    asset.region,
                    asset.pd,
                    asset.pd_curve,
                    asset.grade,
                    asset.cumulative_pd,
                )
                g = getattr(asset, "guarantee", None)
                if g is not None:
                    add(g.guarantor)
            tape = tapes.get(pool.name)
            if tape is not None:
                f = tape.frame
                first = f.drop_duplicates("obligor")
                for name, ind, reg, prob in zip(
                    _objects(first["obligor"]),
                    _objects(first["industry"]),
                    _objects(first["region"]),
                    first["pd"].to_numpy(dtype=np.float64, na_value=np.nan),
                    strict=True,
                ):
                    add(name, ind, reg, prob)
                for g in dict.fromkeys(_objects(f["guarantor"])):
                    if g:
                        add(g)
        for s in deal.support:
            add(s.provider)
        for cover in deal.loss_cover:
            for payer in getattr(cover, "payers", ()):
                add(payer.obligor)
            insurer = getattr(cover, "insurer", None)
            if insurer is not None:
                add(insurer)
        return cls(
            names,
            {n: i for i, n in enumerate(names)},
            [attrs[n]["industry"] for n in names],
            [attrs[n]["region"] for n in names],
            np.array([attrs[n]["pd"] for n in names], dtype=np.float64),
            [attrs[n]["curve"] for n in names],
            [attrs[n]["grade"] for n in names],
            [attrs[n]["horizon"] for n in names],
        )


@dataclass
class AssetArrays:
    """Struct of arrays describing amortising assets (A of them)."""

    id: list[str]
    kind: list[str]  # loan / lease / licence
    pool: np.ndarray
    obligor: np.ndarray
    balance: np.ndarray
    fixed_rate: np.ndarray
    index_id: np.ndarray
    spread: np.ndarray
    rate_floor: np.ndarray
    maturity_day: np.ndarray
    freq_months: np.ndarray
    amortisation: np.ndarray
    io_months: np.ndarray
    day_count: np.ndarray
    balloon: np.ndarray
    custom_ptr: np.ndarray
    custom_day: np.ndarray
    custom_amount: np.ndarray
    appraised_value: np.ndarray  # nan when no pledged IP
    value_volatility: np.ndarray  # the pledged IP's own value volatility; nan when none
    guarantor: np.ndarray  # -1 when none
    guarantee_share: np.ndarray
    guarantee_lag_months: np.ndarray
    # ---- seasoned pools
    age_months: np.ndarray  # whole months from origination to the cut-off (0: a new loan)
    start_day: np.ndarray  # origination day of a seasoned loan (interest accrues from it); -1 none
    # ---- collateral value: a fixed licence's `valuation` per payment date (the last repeats),
    # by asset index; other assets are worth their pledged IP's appraisal
    valuation: dict[int, tuple[float, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.id)


@dataclass
class RoyaltyArrays:
    """Struct of arrays describing royalty and income-share streams (R of them)."""

    id: list[str]
    pool: np.ndarray
    obligor: np.ndarray
    kind: np.ndarray  # RUNNING or INCOME_SHARE
    initial: np.ndarray  # annual base in the first year
    growth: np.ndarray
    rate: np.ndarray  # royalty rate or income share
    tier_ptr: np.ndarray
    tier_above: np.ndarray
    tier_rate: np.ndarray
    minimum: np.ndarray  # per year
    cap: np.ndarray  # per year, inf when none
    start_day: np.ndarray
    end_day: np.ndarray  # min(end, patent expiry)
    freq_months: np.ndarray
    lag_months: np.ndarray
    valuation: np.ndarray  # (R,) the first value of `valuation` (nan: none)
    # ---- collateral value: `valuation` per payment date (the last repeats; empty: none)
    valuation_path: list[tuple[float, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.id)


def rate_terms(rate: Any, index_ids: dict[str, int]) -> tuple[float, int, float, float]:
    """An asset rate as the schedule kernel reads it: (fixed rate or nan, index id or -1,
    spread, floor or -inf)."""
    if isinstance(rate, FloatingRate):
        floor = -np.inf if rate.floor is None else rate.floor
        return np.nan, index_ids[rate.index], rate.spread, floor
    return float(rate), -1, 0.0, -np.inf


def implied_rate(balance: float, payments: list[float], months: int) -> float:
    """Annual nominal rate (compounded every ``months``) at which ``payments`` (one every
    ``months``, the first one period after closing) are worth ``balance``."""
    total = sum(payments)
    if total <= balance or balance <= 0:
        return 0.0
    lo, hi = 0.0, 10.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        rp = mid * months / 12.0
        pv = sum(p / (1.0 + rp) ** (k + 1) for k, p in enumerate(payments))
        lo, hi = (mid, hi) if pv > balance else (lo, mid)
    return 0.5 * (lo + hi)


class _Builder:
    def __init__(self, deal: Deal, obligors: Obligors):
        self.deal = deal
        self.obligors = obligors
        self.index_ids = {name: i for i, name in enumerate(deal.indices)}
        self.close = deal.deal.cut_off  # balances and remaining terms are as of the cut-off
        self.rows: list[dict[str, Any]] = []
        self.custom: list[list[tuple[int, float]]] = []
        self.tapes: list[dict[str, Any]] = []
        self.valuation: dict[int, tuple[float, ...]] = {}

    def _rate(self, rate: Any) -> tuple[float, int, float, float]:
        return rate_terms(rate, self.index_ids)

    def _common(self, pool: int, asset: Loan | Lease, kind: str, ident: str) -> dict[str, Any]:
        g = asset.guarantee
        ip = asset.pledged_ip
        return {
            "id": ident,
            "kind": kind,
            "pool": pool,
            "obligor": self.obligors.index[asset.obligor],
            "balance": asset.balance,
            "appraised_value": np.nan if ip is None else ip.appraised_value,
            "value_volatility": np.nan if ip is None or ip.value_volatility is None else ip.value_volatility,
            "guarantor": -1 if g is None else self.obligors.index[g.guarantor],
            "guarantee_share": 0.0 if g is None else g.share,
            "guarantee_lag_months": 0 if g is None else g.lag_months,
            "age_months": 0,
            "start_day": -1,
        }

    def loan(self, pool: int, loan: Loan, n: int) -> None:
        fixed, idx, spread, floor = self._rate(loan.rate)
        mat = loan.maturity_date or add_months(self.close, loan.term_months or 0)
        row = self._common(pool, loan, "loan", loan.id or f"{loan.obligor}-{n}")
        row.update(
            fixed_rate=fixed,
            index_id=idx,
            spread=spread,
            rate_floor=floor,
            maturity_day=to_day(mat),
            freq_months=MONTHS_PER_PERIOD[loan.payment_frequency],
            amortisation=AMORTISATION_CODES[loan.amortisation],
            io_months=loan.interest_only_months,
            day_count=DAY_COUNTS[loan.day_count],
            balloon=0.0,
        )
        start = loan_start(loan.age_months, loan.origination_date, self.close)
        row.update(
            age_months=loan_age(loan.age_months, loan.origination_date, self.close),
            start_day=-1 if start is None else to_day(start),
        )
        self.rows.append(row)
        self.custom.append([(to_day(p.date), p.principal) for p in (loan.schedule or [])])

    def _instalments(
        self,
        pool: int,
        asset: Lease | Royalty,
        kind: str,
        ident: str,
        payments: list[float],
        residual: float,
        balance: float,
    ) -> None:
        months = MONTHS_PER_PERIOD[asset.payment_frequency]
        flows = list(payments)
        flows[-1] += residual
        r = implied_rate(balance, flows, months)
        rp = r * months / 12.0
        bal = balance
        custom = []
        for k, p in enumerate(flows):
            d = add_months(self.close, (k + 1) * months)
            # negative when the rent is below the interest: the balance accretes
            principal = bal if k == len(flows) - 1 else p - bal * rp
            custom.append((to_day(d), principal))
            bal -= principal
        row = {
            "id": ident,
            "kind": kind,
            "pool": pool,
            "obligor": self.obligors.index[asset.obligor],
            "balance": balance,
            "appraised_value": np.nan,
            "value_volatility": np.nan,
            "guarantor": -1,
            "guarantee_share": 0.0,
            "guarantee_lag_months": 0,
            "age_months": 0,
            "start_day": -1,
        }
        if isinstance(asset, Lease):
            row.update(self._common(pool, asset, kind, ident))
        row.update(
            fixed_rate=r,
            index_id=-1,
            spread=0.0,
            rate_floor=-np.inf,
            maturity_day=custom[-1][0],
            freq_months=months,
            amortisation=CUSTOM,
            io_months=0,
            day_count=MONTHLY_GRID,
            balloon=0.0,
        )
        self.rows.append(row)
        self.custom.append(custom)

    def lease(self, pool: int, lease: Lease, n: int) -> None:
        ident = lease.id or f"{lease.obligor}-lease-{n}"
        if lease.rents is not None:
            self._instalments(pool, lease, "lease", ident, lease.rents, lease.residual, lease.balance)
            return
        mat = add_months(self.close, lease.term_months or 0)
        row = self._common(pool, lease, "lease", ident)
        row.update(
            fixed_rate=float(lease.rate or 0.0),
            index_id=-1,
            spread=0.0,
            rate_floor=-np.inf,
            maturity_day=to_day(mat),
            freq_months=MONTHS_PER_PERIOD[lease.payment_frequency],
            amortisation=AMORTISATION_CODES["annuity"],
            io_months=0,
            day_count=MONTHLY_GRID,
            balloon=min(lease.residual, lease.balance),
        )
        self.rows.append(row)
        self.custom.append([])

    def licence(self, pool: int, roy: Royalty, n: int) -> None:
        if roy.valuation is not None:
            self.valuation[len(self.rows)] = _value_path(roy.valuation)
        payments = list(roy.instalments or [])
        balance = roy.balance if roy.balance is not None else float(sum(payments))
        self._instalments(
            pool, roy, "licence", roy.id or f"{roy.obligor}-licence-{n}", payments, 0.0, balance
        )

    def tape(self, pool: int, tape: Any) -> None:
        f = tape.frame
        close = np.datetime64(self.close, "D")
        mat = f["maturity_date"].to_numpy(dtype="datetime64[D]")
        term = f["term_months"].to_numpy(dtype=np.float64, na_value=np.nan)
        mat_days = (mat - np.datetime64("1970-01-01", "D")).astype(np.int64)
        need = np.isnat(mat)
        if need.any():
            from ipabs.dates import add_months_day

            c = int((close - np.datetime64("1970-01-01", "D")).astype(np.int64))
            mat_days[need] = [add_months_day(c, int(m)) for m in term[need]]
        index = f["index"].to_numpy(dtype=object)
        idx_ids = np.array([self.index_ids.get(i, -1) if i else -1 for i in index], dtype=np.int64)
        floor = f["rate_floor"].to_numpy(dtype=np.float64, na_value=np.nan)
        guarantor = np.array(
            [self.obligors.index[g] if g else -1 for g in f["guarantor"].to_numpy(dtype=object)],
            dtype=np.int64,
        )
        # ---- seasoned pools: the age column, or whole months since the origination date
        age = f["age_months"].to_numpy(dtype=np.int64, copy=True)
        orig = f["origination_date"].to_numpy(dtype="datetime64[D]")
        start = np.full(len(f), -1, dtype=np.int64)
        for i in np.flatnonzero(~np.isnat(orig) | (age > 0)).tolist():
            o = None if np.isnat(orig[i]) else orig[i].item()
            a = None if o is not None else int(age[i])
            age[i] = loan_age(a, o, self.close)
            start[i] = to_day(loan_start(a, o, self.close))  # type: ignore[arg-type]
        self.tapes.append(
            {
                "id": [str(x) for x in _objects(f["id"])],
                "kind": ["loan"] * len(f),
                "pool": np.full(len(f), pool, dtype=np.int64),
                "obligor": np.array([self.obligors.index[o] for o in _objects(f["obligor"])], dtype=np.int64),
                "balance": f["balance"].to_numpy(dtype=np.float64),
                "fixed_rate": f["rate"].to_numpy(dtype=np.float64, na_value=np.nan),
                "index_id": idx_ids,
                "spread": f["spread"].to_numpy(dtype=np.float64, na_value=0.0),
                "rate_floor": np.where(np.isnan(floor), -np.inf, floor),
                "maturity_day": mat_days,
                "freq_months": np.array(
                    [MONTHS_PER_PERIOD[x] for x in _objects(f["payment_frequency"])], dtype=np.int64
                ),
                "amortisation": np.array(
                    [AMORTISATION_CODES[x] for x in _objects(f["amortisation"])], dtype=np.int64
                ),
                "io_months": f["interest_only_months"].to_numpy(dtype=np.int64),
                "day_count": np.array([DAY_COUNTS[x] for x in _objects(f["day_count"])], dtype=np.int64),
                "balloon": np.zeros(len(f)),
                "appraised_value": f["appraised_value"].to_numpy(dtype=np.float64, na_value=np.nan),
                "value_volatility": f["value_volatility"].to_numpy(dtype=np.float64, na_value=np.nan),
                "guarantor": guarantor,
                "guarantee_share": f["guarantee_share"].to_numpy(dtype=np.float64),
                "guarantee_lag_months": f["guarantee_lag_months"].to_numpy(dtype=np.int64),
                "age_months": age,
                "start_day": start,
            }
        )


_INT_FIELDS = (
    "pool",
    "obligor",
    "index_id",
    "maturity_day",
    "freq_months",
    "amortisation",
    "io_months",
    "day_count",
    "guarantor",
    "guarantee_lag_months",
    "age_months",
    "start_day",
)
_FLOAT_FIELDS = (
    "balance",
    "fixed_rate",
    "spread",
    "rate_floor",
    "balloon",
    "appraised_value",
    "value_volatility",
    "guarantee_share",
)


def build_assets(deal: Deal, obligors: Obligors, tapes: dict[str, Any]) -> AssetArrays:
    """Amortising assets of every pool as one :class:`AssetArrays` (inline assets first, then
    each pool's tape)."""
    b = _Builder(deal, obligors)
    for p, pool in enumerate(deal.pools):
        for n, loan in enumerate(pool.loans):
            b.loan(p, loan, n)
        for n, lease in enumerate(pool.leases):
            b.lease(p, lease, n)
        for n, roy in enumerate(pool.royalties):
            if roy.kind == "fixed":
                b.licence(p, roy, n)
        if pool.name in tapes:
            b.tape(p, tapes[pool.name])
    cols: dict[str, Any] = {}
    for f in ("id", "kind"):
        cols[f] = [r[f] for r in b.rows] + [x for t in b.tapes for x in t[f]]
    for f in _INT_FIELDS + _FLOAT_FIELDS:
        dtype = np.int64 if f in _INT_FIELDS else np.float64
        parts = [np.array([r[f] for r in b.rows], dtype=dtype)] + [
            np.asarray(t[f], dtype=dtype) for t in b.tapes
        ]
        cols[f] = np.concatenate(parts) if parts else np.zeros(0, dtype)
    ptr = [0]
    days: list[int] = []
    amounts: list[float] = []
    for sched in b.custom:
        for d, amt in sched:
            days.append(d)
            amounts.append(amt)
        ptr.append(len(days))
    n_tape = sum(len(t["id"]) for t in b.tapes)
    ptr.extend([len(days)] * n_tape)
    return AssetArrays(
        custom_ptr=np.array(ptr, dtype=np.int64),
        custom_day=np.array(days, dtype=np.int64),
        custom_amount=np.array(amounts, dtype=np.float64),
        valuation=b.valuation,
        **cols,
    )


def _value_path(valuation: float | list[float]) -> tuple[float, ...]:
    """A stream's `valuation` as one value per payment date (the last repeats)."""
    return tuple(float(x) for x in valuation) if isinstance(valuation, list) else (float(valuation),)


def build_royalties(deal: Deal, obligors: Obligors) -> RoyaltyArrays:
    """Running royalties and income shares of every pool as one :class:`RoyaltyArrays`."""
    rows = []
    tiers: list[list[tuple[float, float]]] = []
    final = deal.deal.legal_final_date
    for p, pool in enumerate(deal.pools):
        for n, r in enumerate(pool.royalties):
            if r.kind == "fixed":
                continue
            end = min(d for d in (r.end_date, r.patent_expiry, final) if d is not None)
            base = r.sales if r.kind == "running" else r.income
            assert base is not None  # guaranteed by the schema
            rows.append(
                {
                    "id": r.id or f"{r.obligor}-{r.kind}-{n}",
                    "pool": p,
                    "obligor": obligors.index[r.obligor],
                    "kind": RUNNING if r.kind == "running" else INCOME_SHARE,
                    "initial": base.initial,
                    "growth": base.growth,
                    "rate": r.rate if r.kind == "running" else r.share,
                    "minimum": r.minimum,
                    "cap": np.inf if r.cap is None else r.cap,
                    "start_day": to_day(r.start_date or deal.deal.closing_date),
                    "end_day": to_day(end),
                    "freq_months": MONTHS_PER_PERIOD[r.payment_frequency],
                    "lag_months": r.payment_lag_months,
                    "valuation": np.nan if r.valuation is None else _value_path(r.valuation)[0],
                    "valuation_path": () if r.valuation is None else _value_path(r.valuation),
                }
            )
            tiers.append([(t.above, t.rate) for t in (r.tiers or [])])
    ptr = np.zeros(len(tiers) + 1, dtype=np.int64)
    for i, tl in enumerate(tiers):
        ptr[i + 1] = ptr[i] + len(tl)

    def col(name: str, dtype: Any) -> np.ndarray:
        return np.array([r[name] for r in rows], dtype=dtype)

    return RoyaltyArrays(
        id=[r["id"] for r in rows],
        pool=col("pool", np.int64),
        obligor=col("obligor", np.int64),
        kind=col("kind", np.int64),
        initial=col("initial", np.float64),
        growth=col("growth", np.float64),
        rate=col("rate", np.float64),
        tier_ptr=ptr,
        tier_above=np.array([a for tl in tiers for a, _ in tl], dtype=np.float64),
        tier_rate=np.array([r for tl in tiers for _, r in tl], dtype=np.float64),
        minimum=col("minimum", np.float64),
        cap=col("cap", np.float64),
        start_day=col("start_day", np.int64),
        end_day=col("end_day", np.int64),
        freq_months=col("freq_months", np.int64),
        lag_months=col("lag_months", np.int64),
        valuation=col("valuation", np.float64),
        valuation_path=[r["valuation_path"] for r in rows],
    )


def index_arrays(deal: Deal) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index curves as ragged arrays (ptr, day, rate); a constant curve is one point."""
    ptr = [0]
    days: list[int] = []
    rates: list[float] = []
    for curve in deal.indices.values():
        if isinstance(curve, list):
            for point in sorted(curve, key=lambda p: p.date):
                days.append(to_day(point.date))
                rates.append(point.rate)
        else:
            days.append(to_day(dt.date(1900, 1, 1)))
            rates.append(float(curve))
        ptr.append(len(days))
    return np.array(ptr, np.int64), np.array(days, np.int64), np.array(rates, np.float64)
