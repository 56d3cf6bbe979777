"""Early warning from a report date (``ipabs monitor DEAL --state FILE``).

Three Monte Carlo views of a live deal, all on the deal's own risk model:

- per tranche, expected loss and probability of loss **now** (the Monte Carlo from the state,
  :func:`ipabs.analytics.reproject.started_model`) against **at closing** (the same model from
  closing, same paths and seed), with the implied rating by expected loss at each and its
  drift in notches;
- per trigger, the probability that it is in effect at a payment date within 3, 6 and 12
  months of the report date (1 when it is in effect already);
- a watch list: obligors ranked by their contribution to the target tranche's (by default the
  most senior's) expected loss, with standard errors. A path's tranche loss is shared among
  its defaulters in proportion to their own losses (exposure less recovery and guarantee), so
  the contributions add up to the tranche's expected loss; what falls on paths without a
  defaulter's loss (a royalty shortfall, say) is reported as unallocated.

and the pool's concentration on the report date: largest obligors, industries, the Herfindahl
index of the performing balance and its effective number of obligors.

The contributions come from a second pass over the same paths (:mod:`ipabs.risk.monitor_numba_fns`)
with their full tables; they are the run's own paths bit for bit, so they add up to its
expected loss exactly (to rounding).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ipabs.errors import IpabsError

if TYPE_CHECKING:
    from ipabs.analytics.ratings import RatingTable
    from ipabs.deal.load import LoadedDeal
    from ipabs.deal.state import LoadedState
    from ipabs.engine.compile import CompiledModel
    from ipabs.montecarlo import SimulationResult
    from ipabs.risk.monitor_numba_fns import MonitorSums

HORIZONS_MONTHS = (3, 6, 12)
WATCH_LIST = 10  # obligors on the watch list by default
MIN_CONTRIBUTING_PATHS = 20  # a contribution seen on fewer paths has an untrustworthy error
CHUNK_PATHS = 4_096
STATUS_ORDER = ("repaid", "current", "dpd_1_30", "dpd_31_60", "dpd_61_90", "dpd_90_plus", "defaulted")


@dataclass(frozen=True)
class TrancheWatch:
    """One tranche now and at closing. Expected losses are shares of the tranche's balance at
    each date; ``drift_notches`` > 0 is a downgrade."""

    tranche: str
    balance_closing: float
    balance_now: float
    expected_loss_closing: float
    expected_loss_closing_se: float
    probability_of_loss_closing: float
    probability_of_loss_closing_se: float
    expected_loss_now: float
    expected_loss_now_se: float
    probability_of_loss_now: float
    probability_of_loss_now_se: float
    horizon_closing_years: float
    horizon_now_years: float
    rating_closing: str | None
    rating_closing_range: tuple[str | None, str | None]  # (best, worst) over the 95% interval
    rating_now: str | None
    rating_now_range: tuple[str | None, str | None]
    drift_notches: int | None


@dataclass(frozen=True)
class TriggerWatch:
    """One trigger: in effect on the report date, and the probability (with its standard
    error) that it is in effect at a payment date within each horizon."""

    trigger: str
    in_effect_now: bool
    probability: dict[int, float]
    probability_se: dict[int, float]
    payment_dates: dict[int, int]  # payment dates within each horizon


@dataclass(frozen=True)
class ObligorWatch:
    """One obligor's contribution to the target tranche's expected loss (a share of its balance
    on the report date, like the expected loss) and what the state says of it."""

    obligor: str
    status: str
    days_past_due: int | None
    balance: float
    pledged_value: float
    coverage: float  # pledged value / balance (nan: no balance)
    industry: str
    contribution: float
    contribution_se: float
    share_of_expected_loss: float
    contributing_paths: int
    trusted: bool  # False: seen on too few paths for its standard error to be trusted


@dataclass(frozen=True)
class Concentration:
    """The performing pool on the report date."""

    balance: float
    obligors: int
    herfindahl: float
    effective_obligors: float
    largest: list[dict[str, Any]]
    industries: list[dict[str, Any]]


@dataclass(frozen=True)
class MonitorReport:
    """Early warning of a deal on a report date (:func:`monitor`)."""

    deal_name: str
    report_date: str
    period: int
    paths: int
    seed: int
    rating_table: str
    target: str
    tranches: list[TrancheWatch]
    triggers: list[TriggerWatch]
    watch_list: list[ObligorWatch]
    unallocated: float
    unallocated_se: float
    concentration: Concentration
    sampling_now: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        from ipabs.io import json_value

        def plain(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in obj.__dict__.items():
                if isinstance(v, tuple):
                    out[k] = list(v)
                elif isinstance(v, dict):
                    out[k] = {str(a): json_value(b) for a, b in v.items()}
                else:
                    out[k] = json_value(v)
            return out

        c = self.concentration
        return {
            "deal": self.deal_name,
            "report_date": self.report_date,
            "period": self.period,
            "paths": self.paths,
            "seed": self.seed,
            "rating_table": self.rating_table,
            "sampling_now": self.sampling_now,
            "tranches": [plain(t) for t in self.tranches],
            "triggers": [plain(t) for t in self.triggers],
            "watch_list": {
                "tranche": self.target,
                "unallocated": json_value(self.unallocated),
                "unallocated_se": json_value(self.unallocated_se),
                "obligors": [plain(o) for o in self.watch_list],
            },
            "concentration": {
                "performing_balance": c.balance,
                "obligors": c.obligors,
                "herfindahl": c.herfindahl,
                "effective_obligors": c.effective_obligors,
                "largest": c.largest,
                "industries": c.industries,
            },
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def monitor(
    deal: LoadedDeal | str | Path,
    state: LoadedState | str | Path,
    *,
    paths: int = 20_000,
    seed: int = 0,
    threads: int | None = None,
    tranche: str | None = None,
    table: RatingTable | str | Path | None = None,
    watch: int = WATCH_LIST,
    horizons: tuple[int, ...] = HORIZONS_MONTHS,
    progress: bool | None = False,
) -> MonitorReport:
    """Early warning of a live deal on a report date (see the module).

    Parameters
    ----------
    deal : LoadedDeal, str or Path
        The deal, with a ``risk`` section.
    state : LoadedState, str or Path
        Its state on the report date (docs/surveillance.md).
    paths, seed, threads
        Monte Carlo settings; the runs from closing and from the state use the same.
    tranche : str, optional
        The tranche whose expected loss the watch list allocates (default: the most senior
        with a balance on the report date).
    table : RatingTable, str or Path, optional
        Rating table for the implied ratings (default: the shipped one).
    watch : int
        Obligors on the watch list (the largest contributors).
    horizons : tuple of int
        Months after the report date for the triggers' probabilities.
    progress : bool or None
        Progress bars on standard error (None: only on a terminal).

    Returns
    -------
    MonitorReport

    Examples
    --------
    >>> from ipabs.analytics.monitor import monitor
    >>> report = monitor("scenarios/caohejing_ip_pledge.yaml",
    ...                  "scenarios/states/caohejing_2025q3.yaml", paths=20_000)  # doctest: +SKIP
    >>> [(t.tranche, t.rating_closing, t.rating_now) for t in report.tranches]  # doctest: +SKIP
    """
    from ipabs.analytics.implied import rating_range
    from ipabs.analytics.ratings import load_rating_table, rank
    from ipabs.analytics.reproject import delinquent_loans_note, started_model
    from ipabs.api import _model
    from ipabs.deal.load import LoadedDeal, load_deal
    from ipabs.deal.state import LoadedState, load_state
    from ipabs.montecarlo import simulate

    if not isinstance(deal, LoadedDeal):
        deal = load_deal(deal)
    if deal.spec.risk is None:
        raise IpabsError(
            f"{deal.source.file}: ipabs monitor needs the deal's `risk` section (the Monte Carlo model)"
        )
    if not isinstance(state, LoadedState):
        state = load_state(deal, state)
    if watch < 0:
        raise IpabsError(f"watch must be 0 or more, got {watch}")
    if not horizons or any(h <= 0 for h in horizons):
        raise IpabsError(f"horizons must be months above 0, got {list(horizons)}")
    rating_table = load_rating_table(table)
    model = _model(deal)
    started = started_model(model, state)
    names = list(model.tranche_names)
    if tranche is not None and tranche not in names:
        raise IpabsError(f"--tranche {tranche!r}: the deal has no such tranche; tranches: {', '.join(names)}")
    target = tranche or _most_senior(names, started.balances)
    k = names.index(target)
    if started.balances[k] <= 0.0:
        raise IpabsError(
            f"--tranche {target!r} is repaid on the report date: it has no expected loss to allocate; "
            "name a tranche with a balance"
        )
    closing = simulate(model, paths=paths, seed=seed, threads=threads, progress=progress)
    now = simulate(started, paths=paths, seed=seed, threads=threads, progress=progress)
    tranches = _tranche_watch(closing, now, rating_table, rating_range, rank)
    horizon_last, dates_in = _horizon_periods(deal, state, horizons)
    sums = _second_pass(started, now, k, horizon_last, threads)
    n = float(paths)
    balance_now = float(started.balances[k])
    warnings = [f"run from the report date: {w}" for w in now.warnings]
    warnings += [f"run from closing: {w}" for w in closing.warnings]
    notes: list[str] = []
    behind = delinquent_loans_note(started)
    if behind is not None:
        notes.append(behind)
    triggers = _trigger_watch(started, state, sums, horizons, dates_in)
    watch_list, unallocated, unallocated_se = _watch_list(
        started, state, sums, balance_now, n, now.tranche_summary[k]["expected_loss"], watch
    )
    untrusted = [o.obligor for o in watch_list if not o.trusted]
    if untrusted:
        warnings.append(
            f"watch list: {len(untrusted)} obligor(s) contribute on fewer than {MIN_CONTRIBUTING_PATHS} "
            f"paths ({', '.join(untrusted[:5])}{', ...' if len(untrusted) > 5 else ''}): their "
            "contributions and standard errors cannot be taken as printed; run more paths"
        )
    if any(dates_in[h] == 0 for h in horizons):
        short = [h for h in horizons if dates_in[h] == 0]
        notes.append(
            f"no payment date falls within {', '.join(str(h) for h in short)} month(s) of the report date: "
            "no trigger is tested there, so those probabilities are those of a trigger already in effect"
        )
    return MonitorReport(
        deal_name=model.spec.deal.name,
        report_date=state.spec.report_date.isoformat(),
        period=state.period,
        paths=paths,
        seed=seed,
        rating_table=rating_table.name,
        target=target,
        tranches=tranches,
        triggers=triggers,
        watch_list=watch_list,
        unallocated=unallocated,
        unallocated_se=unallocated_se,
        concentration=concentration(started, state),
        sampling_now=now.sampling.reason,
        warnings=warnings,
        notes=notes,
    )


def _most_senior(names: list[str], balances: np.ndarray) -> str:
    for name, balance in zip(names, balances, strict=True):
        if balance > 0.0:
            return name
    raise IpabsError("every tranche is repaid on the report date: there is nothing left to watch")


def _tranche_watch(
    closing: SimulationResult, now: SimulationResult, table: RatingTable, rating_range: Any, rank: Any
) -> list[TrancheWatch]:
    rows = []
    for before, after in zip(closing.tranche_summary, now.tranche_summary, strict=True):
        if before["original_balance"] <= 0.0:
            continue

        def rated(s: dict[str, Any]) -> tuple[float, str | None, tuple[str | None, str | None]]:
            horizon = s["expected_wal_years"]
            horizon = 0.0 if math.isnan(horizon) else float(horizon)
            if s["original_balance"] <= 0.0:
                return horizon, None, (None, None)
            at, hi, lo = rating_range(
                table.rating_for_expected_loss, s["expected_loss"], s["expected_loss_se"], horizon
            )
            return horizon, at, (lo, hi)  # (best, worst) within the 95% interval

        h0, r0, range0 = rated(before)
        h1, r1, range1 = rated(after)
        drift = None
        if r0 is not None and r1 is not None:
            drift = rank(table, r1) - rank(table, r0)
        rows.append(
            TrancheWatch(
                tranche=before["tranche"],
                balance_closing=float(before["original_balance"]),
                balance_now=float(after["original_balance"]),
                expected_loss_closing=before["expected_loss"],
                expected_loss_closing_se=before["expected_loss_se"],
                probability_of_loss_closing=before["probability_of_loss"],
                probability_of_loss_closing_se=before["probability_of_loss_se"],
                expected_loss_now=after["expected_loss"],
                expected_loss_now_se=after["expected_loss_se"],
                probability_of_loss_now=after["probability_of_loss"],
                probability_of_loss_now_se=after["probability_of_loss_se"],
                horizon_closing_years=h0,
                horizon_now_years=h1,
                rating_closing=r0,
                rating_closing_range=range0,
                rating_now=r1,
                rating_now_range=range1,
                drift_notches=drift,
            )
        )
    return rows


def _horizon_periods(
    deal: LoadedDeal, state: LoadedState, horizons: tuple[int, ...]
) -> tuple[np.ndarray, dict[int, int]]:
    """Per horizon, the last period whose payment date falls within it of the report date, and
    how many payment dates after the report date it holds."""
    from ipabs.dates import add_months
    from ipabs.deal.state import payment_dates

    dates = payment_dates(deal)
    report = state.spec.report_date
    last = []
    count: dict[int, int] = {}
    for h in horizons:
        end = add_months(report, h)
        within = [t for t, d in enumerate(dates) if d <= end]
        last.append(within[-1] if within else -1)
        count[h] = sum(1 for d in dates if report < d <= end)
    return np.array(last, dtype=np.int64), count


def _second_pass(
    model: CompiledModel, run: SimulationResult, k: int, horizon_last: np.ndarray, threads: int | None
) -> MonitorSums:
    """The run's paths again, reduced by :func:`ipabs.risk.monitor_numba_fns.monitor_chunk` in
    fixed chunks summed in path order (the sums do not depend on the threads)."""
    from ipabs.montecarlo import _thread_count
    from ipabs.risk.model import compile_risk
    from ipabs.risk.monitor_numba_fns import monitor_chunk, new_monitor_sums

    arrays = compile_risk(model)
    sampling = run.sampling
    shift = np.ascontiguousarray(sampling.shift, dtype=np.float64)
    tilt = np.ascontiguousarray(sampling.group_tilt(arrays.g_threshold.shape[0]), dtype=np.float64)
    n_ob = arrays.ob_group.shape[0]
    n_trg = len(model.trigger_names)
    n_h = horizon_last.shape[0]
    paths = run.paths
    bounds = [(lo, min(lo + CHUNK_PATHS, paths)) for lo in range(0, paths, CHUNK_PATHS)]

    def chunk(lo: int, hi: int) -> MonitorSums:
        sums = new_monitor_sums(n_ob, n_trg, n_h)
        monitor_chunk(
            model.cd,
            arrays,
            run.seed,
            0,
            lo,
            hi - lo,
            shift,
            tilt,
            sampling.twist,
            sampling.alpha,
            k,
            horizon_last,
            sums,
        )
        return sums

    with ThreadPoolExecutor(max_workers=_thread_count(threads)) as executor:
        parts = list(executor.map(lambda b: chunk(*b), bounds))
    total = parts[0]
    for part in parts[1:]:
        for a, b in zip(total, part, strict=True):
            a += b
    return total


def _mean_se(s: float, sq: float, n: float) -> tuple[float, float]:
    """Mean of n samples from their sum and sum of squares, and its standard error."""
    mean = s / n
    if n < 2:
        return mean, math.nan
    var = max(sq - s * s / n, 0.0) / (n - 1.0)
    return mean, math.sqrt(var / n)


def _share_se(hit: float, hit_sq: float, totals: np.ndarray) -> tuple[float, float]:
    """Self-normalised share of the weight on paths with the event, ``sum(w x) / sum(w)``, and
    its delta-method standard error ``sqrt(sum(w^2 (x - p)^2)) / sum(w)``: bounded by 0 and 1
    (an event on every path is certain, whatever the weights' sample mean), and the same as the
    plain mean under plain sampling."""
    from ipabs.risk.monitor_numba_fns import M_WEIGHT, M_WEIGHT_SQ

    total, total_sq = float(totals[M_WEIGHT]), float(totals[M_WEIGHT_SQ])
    if total <= 0.0:
        return math.nan, math.nan
    p = hit / total
    spread = hit_sq * (1.0 - p) ** 2 + max(total_sq - hit_sq, 0.0) * p * p
    return p, math.sqrt(spread) / total


def _trigger_watch(
    model: CompiledModel,
    state: LoadedState,
    sums: MonitorSums,
    horizons: tuple[int, ...],
    dates_in: dict[int, int],
) -> list[TriggerWatch]:
    rows = []
    for g, name in enumerate(model.trigger_names):
        reported = state.spec.triggers.get(name) if state.spec.triggers else None
        in_effect = False
        if reported is not None:
            in_effect = bool(reported.breached if reported.active is None else reported.active)
        prob: dict[int, float] = {}
        se: dict[int, float] = {}
        for j, h in enumerate(horizons):
            if in_effect and dates_in[h] == 0:
                prob[h], se[h] = 1.0, 0.0
                continue
            prob[h], se[h] = _share_se(float(sums.fire_sum[g, j]), float(sums.fire_sq[g, j]), sums.totals)
        rows.append(TriggerWatch(name, in_effect, prob, se, dict(dates_in)))
    return rows


def _obligor_facts(model: CompiledModel, state: LoadedState) -> dict[int, dict[str, Any]]:
    """Per obligor index: its loans' worst status, largest days past due, balance and pledged
    value on the report date."""
    from ipabs.deal.state import deal_assets

    by_id = {x.id: x for x in state.spec.loans} if isinstance(state.spec.loans, list) else {}
    facts: dict[int, dict[str, Any]] = {}
    for a, asset in enumerate(deal_assets(model.deal)):
        o = int(model.assets.obligor[a])
        f = facts.setdefault(o, {"status": "repaid", "dpd": None, "balance": 0.0, "value": 0.0})
        if asset.kind == "licence":
            f["status"] = max(f["status"], "current", key=STATUS_ORDER.index)
            continue
        loan = by_id.get(asset.id)
        if loan is None:
            continue
        f["status"] = max(f["status"], loan.status, key=STATUS_ORDER.index)
        if loan.days_past_due is not None:
            f["dpd"] = max(f["dpd"] or 0, loan.days_past_due)
        if loan.status != "repaid":
            f["balance"] += float(loan.balance)
            value = float(model.assets.appraised_value[a])
            f["value"] += value if math.isfinite(value) else 0.0
    return facts


def _watch_list(
    model: CompiledModel,
    state: LoadedState,
    sums: MonitorSums,
    balance: float,
    n: float,
    expected_loss: float,
    watch: int,
) -> tuple[list[ObligorWatch], float, float]:
    from ipabs.risk.monitor_numba_fns import M_UNALLOCATED, M_UNALLOCATED_SQ

    facts = _obligor_facts(model, state)
    order = np.argsort(-sums.ob_sum, kind="stable")
    rows = []
    for o in order[:watch].tolist():
        if sums.ob_sum[o] <= 0.0:
            break
        mean, se = _mean_se(float(sums.ob_sum[o]), float(sums.ob_sq[o]), n)
        f = facts.get(o, {"status": "current", "dpd": None, "balance": 0.0, "value": 0.0})
        contribution = mean / balance
        rows.append(
            ObligorWatch(
                obligor=model.obligors.names[o],
                status=f["status"],
                days_past_due=f["dpd"],
                balance=f["balance"],
                pledged_value=f["value"],
                coverage=f["value"] / f["balance"] if f["balance"] > 0.0 else math.nan,
                industry=model.obligors.industry[o] or "",
                contribution=contribution,
                contribution_se=se / balance,
                share_of_expected_loss=contribution / expected_loss if expected_loss > 0.0 else math.nan,
                contributing_paths=int(sums.ob_paths[o]),
                trusted=int(sums.ob_paths[o]) >= MIN_CONTRIBUTING_PATHS,
            )
        )
    un, un_se = _mean_se(float(sums.totals[M_UNALLOCATED]), float(sums.totals[M_UNALLOCATED_SQ]), n)
    return rows, un / balance, un_se / balance


def concentration(model: CompiledModel, state: LoadedState, largest: int = 10) -> Concentration:
    """Concentration of the performing pool on the report date (loans and leases neither
    defaulted nor repaid): its largest obligors and industries by balance, the Herfindahl index
    of the obligors' shares and its inverse, the effective number of obligors."""
    facts = _obligor_facts(model, state)
    performing = {
        o: f["balance"]
        for o, f in facts.items()
        if f["status"] not in ("defaulted", "repaid") and f["balance"] > 0.0
    }
    total = float(sum(performing.values()))
    if total <= 0.0:
        return Concentration(0.0, 0, math.nan, math.nan, [], [])
    shares = {o: b / total for o, b in performing.items()}
    hhi = float(sum(s * s for s in shares.values()))
    top = sorted(performing, key=lambda o: (-performing[o], model.obligors.names[o]))[:largest]
    by_industry: dict[str, float] = {}
    for o, b in performing.items():
        key = model.obligors.industry[o] or "(not given)"
        by_industry[key] = by_industry.get(key, 0.0) + b
    return Concentration(
        balance=total,
        obligors=len(performing),
        herfindahl=hhi,
        effective_obligors=1.0 / hhi,
        largest=[
            {"obligor": model.obligors.names[o], "balance": performing[o], "share": shares[o]} for o in top
        ],
        industries=[
            {"industry": k, "balance": v, "share": v / total}
            for k, v in sorted(by_industry.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
    )
