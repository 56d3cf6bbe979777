"""Size credit enhancement to a target rating: a tranche's size (so its subordination), a
reserve account or a deficiency payment cap.

Every candidate structure runs the same paths (same seed, same sampling): common random
numbers. On each path a tranche's loss share cannot fall when it grows at the expense of the
tranche below it, nor rise when a reserve or a cap grows, so the estimated metric is monotone
in the size and bisection finds the boundary of the target without noise crossing it back
and forth.

The target comes from a rating table (:mod:`ipabs.analytics.ratings`): the tranche's expected
loss (share of its balance; criterion ``expected_loss``) or its probability of any loss
(``default_probability``) must not exceed the table's figure for the rating at a horizon equal
to the tranche's expected WAL in the structure tried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipabs.cluster import accepts_client
from ipabs.errors import IpabsError

if TYPE_CHECKING:
    import pandas as pd

    from ipabs.analytics.ratings import RatingTable
    from ipabs.deal.load import LoadedDeal
    from ipabs.deal.risk import RiskModel
    from ipabs.montecarlo import SimulationResult
    from ipabs.report.charts import SizingPlots

BY = ("tranche", "reserve", "deficiency_cap")
CRITERIA = ("expected_loss", "default_probability")
MAX_STEPS = 60


@dataclass(frozen=True)
class Trial:
    """One structure tried: the size, the tranche's metric with its standard error, the
    rating table's limit at the tranche's expected WAL, and whether the target is met."""

    size: float
    metric: float
    metric_se: float
    limit: float
    horizon_years: float
    meets: bool


@dataclass(frozen=True)
class SizingResult:
    """The sized structure and how it was found.

    Attributes
    ----------
    tranche, rating, criterion, by, target_name : str
        What was sized, for which tranche, rating and criterion; ``target_name`` is the
        tranche, account or support sized.
    size : float or None
        The size found (a tranche balance, a reserve's initial balance or a cap); None when
        no size in the searched range meets the target.
    balances : dict
        Every tranche's balance in the sized structure.
    subordination : float
        Share of the notes below ``tranche`` in the sized structure.
    metric, metric_se, limit, horizon_years
        The tranche's metric in the sized structure with its standard error, and the rating
        table's limit at its expected WAL.
    trials : list of Trial
        Every structure tried, in order.
    sampling : str
        ``plain`` or ``importance``: how every structure's paths were drawn.
    """

    tranche: str
    rating: str
    criterion: str
    by: str
    target_name: str
    size: float | None
    balances: dict[str, float]
    subordination: float
    metric: float
    metric_se: float
    limit: float
    horizon_years: float
    paths: int
    seed: int
    table: str
    trials: list[Trial] = field(default_factory=list)
    sampling: str = "plain"

    @property
    def plot(self) -> SizingPlots:
        """The sizing curve (a matplotlib figure; see docs/charts.md): ``result.plot.curve()``."""
        from ipabs.report.charts import SizingPlots

        return SizingPlots(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        from ipabs.io import json_value

        out = {k: json_value(v) for k, v in self.__dict__.items() if k not in ("trials", "balances")}
        out["balances"] = {k: json_value(v) for k, v in self.balances.items()}
        out["trials"] = [{k: json_value(v) for k, v in t.__dict__.items()} for t in self.trials]
        return out

    def trials_frame(self) -> pd.DataFrame:
        """The structures tried, one row each."""
        import pandas as pd

        return pd.DataFrame([t.__dict__ for t in self.trials])


def _variant(deal: LoadedDeal, by: str, tranche: str, target_name: str, size: float) -> LoadedDeal:
    """``deal`` with the sized quantity set to ``size``."""
    from ipabs.deal.load import LoadedDeal

    spec = deal.spec
    if by == "tranche":
        names = [t.name for t in spec.tranches]
        k = names.index(tranche)
        total = spec.tranches[k].balance + spec.tranches[k + 1].balance
        tranches = list(spec.tranches)
        tranches[k] = tranches[k].model_copy(update={"balance": size})
        tranches[k + 1] = tranches[k + 1].model_copy(update={"balance": total - size})
        spec = spec.model_copy(update={"tranches": tranches})
    elif by == "reserve":
        accounts = [
            a.model_copy(update={"initial": size, **({"target": size} if a.target == a.initial else {})})
            if a.name == target_name
            else a
            for a in spec.accounts
        ]
        spec = spec.model_copy(update={"accounts": accounts})
    else:
        support = [
            s.model_copy(update={"cap_total": size}) if s.name == target_name else s for s in spec.support
        ]
        spec = spec.model_copy(update={"support": support})
    return LoadedDeal(spec, deal.source, deal.path, deal.tapes)


def _check(deal: LoadedDeal, tranche: str, by: str, target_name: str | None) -> tuple[str, float, float]:
    """Validate the request; returns (name sized, lower bound, upper bound) of the search."""
    spec = deal.spec
    names = [t.name for t in spec.tranches]
    if tranche not in names:
        raise IpabsError(f"no tranche {tranche!r}; tranches: {', '.join(names)}")
    if by not in BY:
        raise IpabsError(f"cannot size by {by!r}; choose one of {', '.join(BY)}")
    if by == "tranche":
        k = names.index(tranche)
        if k + 1 >= len(names):
            raise IpabsError(
                f"{tranche} is the most junior tranche: nothing below it can absorb a change of its "
                "size; size a more senior tranche"
            )
        return tranche, 0.0, spec.tranches[k].balance + spec.tranches[k + 1].balance
    pool_total = sum(t.balance for t in spec.tranches)
    if by == "reserve":
        kinds = [a.name for a in spec.accounts if a.kind == "reserve"]
        what = "reserve account"
    else:
        kinds = [x.name for x in spec.support if x.kind == "deficiency_payment"]
        what = "deficiency payment"
    if not kinds:
        raise IpabsError(f"the deal has no {what} to size")
    name = target_name or kinds[0]
    if name not in kinds:
        raise IpabsError(f"no {what} {name!r}; {what}s: {', '.join(kinds)}")
    return name, 0.0, pool_total


def _trial(
    result: SimulationResult, k: int, size: float, criterion: str, table: RatingTable, rating: str
) -> Trial:
    row = result.tranche_summary[k]
    if row["original_balance"] <= 0.0:  # a tranche of nothing cannot lose
        return Trial(size, 0.0, 0.0, 0.0, 0.0, True)
    if criterion == "expected_loss":
        metric, se = row["expected_loss"], row["expected_loss_se"]
    else:
        metric, se = row["probability_of_loss"], row["probability_of_loss_se"]
    horizon = row["expected_wal_years"]
    if math.isnan(horizon):
        horizon = 0.0
    limit = (
        table.expected_loss(rating, horizon)
        if criterion == "expected_loss"
        else table.default_probability(rating, horizon)
    )
    return Trial(size, float(metric), float(se), float(limit), float(horizon), bool(metric <= limit))


@accepts_client
def size_structure(
    deal: LoadedDeal | str | Path,
    tranche: str,
    rating: str,
    *,
    by: str = "tranche",
    target_name: str | None = None,
    criterion: str = "expected_loss",
    paths: int = 20_000,
    seed: int = 0,
    threads: int | None = None,
    table: RatingTable | str | Path | None = None,
    tolerance: float | None = None,
    importance_sampling: bool | str = "auto",
    risk: RiskModel | str | Path | None = None,
    progress: bool | None = False,
) -> SizingResult:
    """Find the structure that just reaches ``rating`` for ``tranche``.

    Parameters
    ----------
    deal : LoadedDeal, str or Path
        The deal (with a ``risk`` section).
    tranche : str
        The tranche whose rating is targeted.
    rating : str
        Target rating (any name or alias of the rating table).
    by : {"tranche", "reserve", "deficiency_cap"}
        ``tranche``: the largest balance of ``tranche`` that meets the target, the tranche
        directly below it taking up the difference (the subordination is sized); ``reserve``:
        the smallest initial balance of a reserve account (and its target, when fixed at the
        initial balance); ``deficiency_cap``: the smallest total cap of a deficiency payment
        undertaking.
    target_name : str, optional
        The account or support to size (default: the first of its kind).
    criterion : {"expected_loss", "default_probability"}
        Metric compared with the rating table.
    paths, seed, threads
        Monte Carlo paths per structure tried, seed (the same for every structure) and threads.
    table : RatingTable, str or Path, optional
        Rating table (default: the shipped one).
    tolerance : float, optional
        Stop when the size is known to within this amount (default: 1e-4 of the searched
        range).
    importance_sampling : bool or "auto"
        Choose an importance-sampling shift once, on the deal as given, and use it for every
        structure (common random numbers still hold). ``"auto"`` (the default, as for
        ``ipabs mc``): only when a plain pilot run sees too few of the tranche's losses;
        ``False``: plain sampling.
    risk : RiskModel, str or Path, optional
        A risk model or risk assumptions file replacing the deal's ``risk`` section.
    progress : bool or None
        Show a progress bar for each structure tried, with the time left, on standard error
        (None: only on a terminal).
    client : distributed.Client, optional
        Run the Monte Carlo paths on this Dask cluster (docs/cluster.md); results are the
        same, bit for bit.

    Returns
    -------
    SizingResult

    Examples
    --------
    >>> from ipabs.analytics.sizing import size_structure
    >>> deal = "scenarios/caohejing_ip_pledge.yaml"
    >>> r = size_structure(deal, "senior", "A2", paths=20_000)  # doctest: +SKIP
    >>> r.size, r.subordination, r.metric, r.limit  # doctest: +SKIP
    """
    from ipabs.analytics.implied import replace_risk
    from ipabs.analytics.ratings import load_rating_table
    from ipabs.api import _model
    from ipabs.deal.load import LoadedDeal, load_deal
    from ipabs.montecarlo import simulate

    if criterion not in CRITERIA:
        raise IpabsError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if not isinstance(deal, LoadedDeal):
        deal = load_deal(deal)
    if risk is not None:
        deal = replace_risk(deal, risk)
    if deal.spec.risk is None:
        raise IpabsError(
            f"{deal.source.file}: sizing needs a `risk` section (the Monte Carlo model) or a risk file"
        )
    table = load_rating_table(table)
    rating = table.canonical(rating)
    name, lo, hi = _check(deal, tranche, by, target_name)
    k = [t.name for t in deal.spec.tranches].index(tranche)
    tol = tolerance if tolerance is not None else 1e-4 * (hi - lo)
    if not tol > 0:
        raise IpabsError(f"tolerance must be positive, got {tolerance}")
    # chosen once, on the deal as given (a pilot decides under "auto"), then used for every
    # structure so that they all share their random numbers
    sampling = simulate(
        deal,
        paths=1,
        seed=seed,
        threads=threads,
        importance_sampling=importance_sampling,
        importance_tranche=tranche,
    ).sampling

    trials: list[Trial] = []
    cache: dict[float, tuple[Trial, SimulationResult, LoadedDeal]] = {}

    def evaluate(size: float) -> Trial:
        if size not in cache:
            variant = _variant(deal, by, tranche, name, size)
            result = simulate(
                _model(variant), paths=paths, seed=seed, threads=threads, sampling=sampling, progress=progress
            )
            cache[size] = (_trial(result, k, size, criterion, table, rating), result, variant)
            trials.append(cache[size][0])
        return cache[size][0]

    # a bigger tranche is worse for it; a bigger reserve or cap is better
    grows_worse = by == "tranche"
    good, bad = (lo, hi) if grows_worse else (hi, lo)
    if not evaluate(good).meets:
        found = None  # even the best structure in range misses the target
    elif evaluate(bad).meets:
        found = bad
    else:
        for _ in range(MAX_STEPS):
            if abs(bad - good) <= tol:
                break
            mid = 0.5 * (good + bad)
            if evaluate(mid).meets:
                good = mid
            else:
                bad = mid
        found = good
    final_size = found if found is not None else (lo if grows_worse else hi)
    evaluate(final_size)
    trial, _, variant = cache[final_size]
    balances = {t.name: float(t.balance) for t in variant.spec.tranches}
    below = sum(list(balances.values())[k + 1 :])
    total = sum(balances.values())
    return SizingResult(
        tranche=tranche,
        rating=rating,
        criterion=criterion,
        by=by,
        target_name=name,
        size=found,
        balances=balances,
        subordination=below / total if total > 0 else math.nan,
        metric=trial.metric,
        metric_se=trial.metric_se,
        limit=trial.limit,
        horizon_years=trial.horizon_years,
        paths=paths,
        seed=seed,
        table=table.name,
        trials=trials,
        sampling=sampling.method if sampling is not None else "plain",
    )
