"""Implied ratings of every tranche, two ways side by side.

1. **Expected loss or default probability against a rating table** (Moody's and S&P/Fitch
   style): the tranche's Monte Carlo expected loss (share of its balance) and its probability of
   any loss, each looked up in the rating table at a horizon equal to the tranche's expected
   WAL. The 95% interval of each estimate gives the range of ratings it is consistent with.
2. **Breakeven against target default rates** (Chinese agencies and S&P): the tranche's BDR is
   the lowest breakeven cumulative default rate over the stress scenarios
   (:mod:`ipabs.analytics.breakeven`); a rating's TDR is either the quantile of the simulated
   pool cumulative default rate at one minus the rating's default probability (at the tranche's
   expected WAL), or the base-case default rate times the rating's stress multiple. The tranche
   gets the best rating whose TDR does not exceed its BDR.

Default stress multiples (an illustrative convention of this project, in the range rating
agencies publish for SME pools, not any agency's table): Aaa/AAA 5, Aa/AA 4, A 3, Baa/BBB 2,
Ba/BB 1.5, B 1.25, below B 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ipabs.cluster import accepts_client
from ipabs.errors import IpabsError

if TYPE_CHECKING:
    import pandas as pd

    from ipabs.analytics.ratings import RatingTable
    from ipabs.analytics.stress import Stress
    from ipabs.deal.load import LoadedDeal
    from ipabs.deal.risk import RiskModel
    from ipabs.montecarlo import SimulationResult

# broad grade (Moody's, then S&P-style prefix) -> stress multiple
DEFAULT_MULTIPLES = (
    (("Aaa", "AAA"), 5.0),
    (("Aa", "AA"), 4.0),
    (("A",), 3.0),
    (("Baa", "BBB"), 2.0),
    (("Ba", "BB"), 1.5),
    (("B",), 1.25),
    (("Caa", "Ca", "CCC", "CC", "C"), 1.0),
)


TDR_COLUMNS = (
    "tranche",
    "rating",
    "horizon_years",
    "default_probability",
    "tdr_quantile",
    "tdr_quantile_ci_low",
    "tdr_quantile_ci_high",
    "multiple",
    "tdr_multiple",
)
"""Columns of :attr:`RatingReport.tdr`."""


def default_multiples(table: RatingTable) -> dict[str, float]:
    """Stress multiple of each rating of ``table`` from :data:`DEFAULT_MULTIPLES`, matching the
    rating's letters (``Baa2`` -> ``Baa``, ``BBB-`` -> ``BBB``); ratings whose letters are not
    recognised get none."""
    out = {}
    for rating in table.ratings:
        names = [rating, *table.aliases[table.ratings.index(rating)]]
        for name in names:
            letters = re.sub(r"[^A-Za-z]", "", name.removesuffix("sf"))
            hit = next((m for grades, m in DEFAULT_MULTIPLES if letters in grades), None)
            if hit is not None:
                out[rating] = hit
                break
    return out


@dataclass(frozen=True)
class TrancheRating:
    """One tranche's metrics and its implied ratings."""

    tranche: str
    expected_loss: float
    expected_loss_se: float
    probability_of_loss: float
    probability_of_loss_se: float
    horizon_years: float
    el_rating: str | None
    el_rating_range: tuple[str | None, str | None]
    pd_rating: str | None
    pd_rating_range: tuple[str | None, str | None]
    bdr: float
    bdr_stress: str
    bdr_multiple: float
    bdr_rating_quantile: str | None
    bdr_rating_multiple: str | None
    note: str = ""


@dataclass(frozen=True)
class RatingReport:
    """Implied ratings of a deal's tranches and the tables used.

    Attributes
    ----------
    tranches : list of TrancheRating
    tdr : pandas.DataFrame
        Per tranche and rating: the target default rate from the simulated distribution
        (``tdr_quantile`` with its 95% interval) and from the stress multiple (``tdr_multiple``).
    base_rate, base_basis
        The base-case cumulative default rate the multiples apply to, and where it comes from.
    breakeven_applies : bool
        Whether the second way applies: False when the pools hold no loans or leases (royalty
        streams only), so there is no pool default rate to break even on or take quantiles of;
        the BDR fields are then NaN and ``tdr`` is empty.
    breakeven_reason : str
        Why the second way does not apply (empty when it does).
    """

    deal_name: str
    table_name: str
    paths: int
    seed: int
    sampling: str
    base_rate: float
    base_basis: str
    multiples: dict[str, float]
    tranches: list[TrancheRating]
    tdr: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    breakeven_applies: bool = True
    breakeven_reason: str = ""

    def to_frame(self) -> pd.DataFrame:
        """One row per tranche: metrics and both kinds of implied rating."""
        import pandas as pd

        rows = []
        for t in self.tranches:
            row = dict(t.__dict__)
            row["el_rating_range"] = " .. ".join(str(x) for x in t.el_rating_range)
            row["pd_rating_range"] = " .. ".join(str(x) for x in t.pd_rating_range)
            rows.append(row)
        return pd.DataFrame(rows).set_index("tranche")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        from ipabs.io import json_value

        return {
            "deal": self.deal_name,
            "rating_table": self.table_name,
            "paths": self.paths,
            "seed": self.seed,
            "sampling": self.sampling,
            "base_case": {"default_rate": json_value(self.base_rate), "basis": self.base_basis},
            "breakeven": {"applies": self.breakeven_applies, "reason": self.breakeven_reason},
            "multiples": self.multiples,
            "tranches": [
                {
                    "name": t.tranche,
                    **{
                        k: (list(v) if isinstance(v, tuple) else json_value(v))
                        for k, v in t.__dict__.items()
                        if k != "tranche"
                    },
                }
                for t in self.tranches
            ],
            "tdr": [{k: json_value(v) for k, v in r.items()} for r in self.tdr.to_dict("records")],
            "notes": self.notes,
        }


def load_multiples(path: str | Path, table: RatingTable) -> dict[str, float]:
    """Read a stress-multiple file: a YAML mapping of rating (a name or alias of ``table``) to
    a positive stress multiple, e.g. ``AAA: 5``.

    Parameters
    ----------
    path : str or Path
        The file.
    table : RatingTable
        The rating table whose names and aliases the ratings must be.

    Returns
    -------
    dict
        The table's name of each rating -> its multiple.

    Raises
    ------
    DealError
        With every problem located as ``file:line:column``: not a mapping, a multiple that is
        not a positive number, an unknown rating, a rating given twice (under two names).
    """
    from pydantic import ValidationError

    from ipabs.deal.ratingtable import MultiplesFile
    from ipabs.deal.source import read_yaml
    from ipabs.deal.validate import suggest, translate
    from ipabs.errors import DealError, Issue

    data, smap = read_yaml(path)
    if not isinstance(data, dict):
        line, col = smap.locate(())
        raise DealError(
            [
                Issue(
                    smap.file,
                    line,
                    col,
                    "",
                    "a multiples file is a mapping of rating to a positive stress multiple",
                    "write one `RATING: MULTIPLE` per line, e.g. `AAA: 5`",
                )
            ]
        )
    issues: list[Issue] = []
    given: dict[str, float] = {}
    try:
        given = MultiplesFile.model_validate(data).root
    except ValidationError as exc:  # reported with the names' problems below
        issues += translate(exc, data, smap, MultiplesFile)
    out: dict[str, float] = {}
    first: dict[str, tuple[str, int]] = {}
    names = [
        n for i, r in enumerate(table.ratings) for n in (r, *(table.aliases[i] if table.aliases else ()))
    ]
    for key in data:
        text = str(key)
        line, col = smap.locate((key,), key=True)
        try:
            rating = table.canonical(text)
        except IpabsError:
            hint = suggest(text, names)
            issues.append(
                Issue(
                    smap.file,
                    line,
                    col,
                    text,
                    f"unknown rating {text!r} in rating table {table.name!r}",
                    hint or "known ratings, best first: " + ", ".join(table.ratings),
                )
            )
            continue
        if rating in first:
            was, at_line = first[rating]
            issues.append(
                Issue(
                    smap.file,
                    line,
                    col,
                    text,
                    f"{rating!r} is given twice (first as {was!r} at line {at_line})",
                    "give each rating one multiple",
                )
            )
            continue
        first[rating] = (text, line)
        out[rating] = float(given.get(text, math.nan))
    if issues:
        raise DealError(issues)
    return out


def replace_risk(deal: LoadedDeal, risk: RiskModel | str | Path) -> LoadedDeal:
    """``deal`` with its ``risk`` section replaced by a risk model or a risk assumptions file
    (read as ``ipabs mc --risk`` reads it, with located errors).

    Raises
    ------
    DealError
        For an invalid risk file.
    IpabsError
        When the risk model does not fit the deal (e.g. names an obligor it does not have).
    """
    import dataclasses

    from ipabs.deal.load import load_risk
    from ipabs.deal.risk import RiskModel

    model = risk if isinstance(risk, RiskModel) else load_risk(risk)
    replaced = dataclasses.replace(deal, spec=deal.spec.model_copy(update={"risk": model}))
    from ipabs.api import _model
    from ipabs.risk.model import compile_risk

    compile_risk(_model(replaced))  # a risk model that does not fit the deal fails here, once
    return replaced


def rating_range(
    lookup: Any, value: float, se: float, horizon: float
) -> tuple[str | None, str | None, str | None]:
    """(rating at the estimate, at the interval's upper end, at its lower end)."""
    if math.isnan(value):
        return None, None, None
    se = 0.0 if math.isnan(se) else se
    return (
        lookup(value, horizon),
        lookup(value + 1.959963984540054 * se, horizon),
        lookup(max(value - 1.959963984540054 * se, 0.0), horizon),
    )


def _best_rating(table: RatingTable, tdr: Mapping[str, float], bdr: float) -> str | None:
    """The best rating whose TDR does not exceed ``bdr``."""
    if math.isnan(bdr):
        return None
    for rating in table.ratings:
        t = tdr.get(rating, math.nan)
        if not math.isnan(t) and t <= bdr:
            return rating
    return None


@accepts_client
def implied_ratings(
    deal: LoadedDeal | str | Path,
    *,
    paths: int = 100_000,
    seed: int = 0,
    threads: int | None = None,
    table: RatingTable | str | Path | None = None,
    stresses: Sequence[Stress] | str | Path | None = None,
    multiples: Mapping[str, float] | str | Path | None = None,
    importance_sampling: bool | str = False,
    result: SimulationResult | None = None,
    risk: RiskModel | str | Path | None = None,
    progress: bool | None = False,
) -> RatingReport:
    """Implied ratings of every tranche by expected loss, by default probability and by
    breakeven against target default rates (see the module notes).

    Parameters
    ----------
    deal : LoadedDeal, str or Path
        A deal with a ``risk`` section.
    paths, seed, threads
        Monte Carlo settings (ignored when ``result`` is given).
    table : RatingTable, str or Path, optional
        Rating table (default: the shipped one).
    stresses : sequence of Stress, str or Path, optional
        Stress scenarios for the BDR (default: the shipped set) or a stress file.
    multiples : mapping, str or Path, optional
        Rating -> stress multiple for the multiple-based TDR, or a multiples file (see
        :func:`load_multiples`; default: :func:`default_multiples`).
    importance_sampling : bool or "auto"
        Passed to :func:`ipabs.simulate`. Plain sampling is the default: the pool default
        distribution's quantiles are wanted across the whole range.
    result : SimulationResult, optional
        An existing Monte Carlo run of the same deal to use.
    risk : RiskModel, str or Path, optional
        A risk model or risk assumptions file replacing the deal's ``risk`` section (for the
        Monte Carlo and the base-case default rate alike).
    progress : bool or None
        Show progress bars of the Monte Carlo and of each tranche's breakeven, with the time
        left, on standard error (None: only on a terminal).
    client : distributed.Client, optional
        Run the Monte Carlo paths on this Dask cluster (docs/cluster.md); results are the
        same, bit for bit.

    Returns
    -------
    RatingReport

    Examples
    --------
    >>> from ipabs.analytics.implied import implied_ratings
    >>> report = implied_ratings("scenarios/caohejing_ip_pledge.yaml", paths=50_000, seed=1)  # doctest: +SKIP
    >>> report.to_frame()[["el_rating", "pd_rating", "bdr", "bdr_rating_quantile"]]  # doctest: +SKIP
    """
    import pandas as pd

    from ipabs.analytics import metrics
    from ipabs.analytics.breakeven import base_default_rate, breakeven
    from ipabs.analytics.ratings import load_rating_table
    from ipabs.analytics.stress import load_stresses
    from ipabs.api import _model
    from ipabs.deal.load import LoadedDeal, load_deal
    from ipabs.montecarlo import simulate
    from ipabs.risk.montecarlo_numba_fns import P_DEFAULT_RATE

    if not isinstance(deal, LoadedDeal):
        deal = load_deal(deal)
    if risk is not None:
        deal = replace_risk(deal, risk)
    if deal.spec.risk is None:
        raise IpabsError(
            f"{deal.source.file}: implied ratings need a `risk` section (the Monte Carlo model) "
            "or a risk file"
        )
    table = load_rating_table(table)
    if isinstance(stresses, (str, Path)):
        stresses = load_stresses(stresses)
    model = _model(deal)
    if result is None:
        result = simulate(
            model,
            paths=paths,
            seed=seed,
            threads=threads,
            importance_sampling=importance_sampling,
            progress=progress,
        )
    if multiples is None:
        mult = default_multiples(table)
    elif isinstance(multiples, (str, Path)):
        mult = load_multiples(multiples, table)
    else:
        mult = {table.canonical(r): float(m) for r, m in multiples.items()}
    notes: list[str] = []
    # the second way needs a pool balance that can default: loans or leases
    applies = float(model.cd.original_pool_balance) > 0.0
    reason = (
        ""
        if applies
        else "the pools hold no loans or leases (original pool balance 0), only royalty or income "
        "streams: there is no pool default rate to break even on or to take quantiles of; stress "
        "such deals through their scenarios (ipabs run) and rate them by expected loss and "
        "default probability"
    )
    if applies and model.spec.revolving is not None:
        applies = False
        reason = (
            "breakeven stresses do not reach the assets a revolving period buys yet: the deal is "
            "rated by expected loss and default probability only"
        )
    base_rate, base_basis = math.nan, reason
    if applies:
        try:
            base_rate, base_basis = base_default_rate(model)
        except IpabsError as exc:
            base_rate, base_basis = math.nan, str(exc)
    pool_default = result.per_path("implied ratings (the pool's default rates)")[1][:, P_DEFAULT_RATE]
    w = result.weights
    rows: list[TrancheRating] = []
    tdr_rows: list[dict[str, Any]] = []
    for summary in result.tranche_summary:
        name = summary["tranche"]
        if summary["original_balance"] <= 0.0:
            continue
        horizon = summary["expected_wal_years"]
        horizon = 0.0 if math.isnan(horizon) else float(horizon)
        el, el_se = summary["expected_loss"], summary["expected_loss_se"]
        pl, pl_se = summary["probability_of_loss"], summary["probability_of_loss_se"]
        el_at, el_hi, el_lo = rating_range(table.rating_for_expected_loss, el, el_se, horizon)
        pd_at, pd_hi, pd_lo = rating_range(table.rating_for_default_probability, pl, pl_se, horizon)
        tdr_q: dict[str, float] = {}
        tdr_m: dict[str, float] = {}
        for rating in table.ratings if applies else ():
            level = 1.0 - table.default_probability(rating, horizon)
            e = metrics.quantile(pool_default, min(max(level, 0.0), 1.0), w)
            tdr_q[rating] = e.value
            tdr_m[rating] = base_rate * mult[rating] if rating in mult else math.nan
            tdr_rows.append(
                {
                    "tranche": name,
                    "rating": rating,
                    "horizon_years": horizon,
                    "default_probability": 1.0 - level,
                    "tdr_quantile": e.value,
                    "tdr_quantile_ci_low": e.ci_low,
                    "tdr_quantile_ci_high": e.ci_high,
                    "multiple": mult.get(rating, math.nan),
                    "tdr_multiple": tdr_m[rating],
                }
            )
        note = ""
        bdr, stress, multiple = math.nan, "", math.nan
        if applies:
            try:
                be = breakeven(model, name, stresses, progress=progress).minimum
                bdr, stress, multiple = be["bdr"], be["stress"], be["multiple"]
            except IpabsError as exc:
                note = str(exc)
        rows.append(
            TrancheRating(
                tranche=name,
                expected_loss=el,
                expected_loss_se=el_se,
                probability_of_loss=pl,
                probability_of_loss_se=pl_se,
                horizon_years=horizon,
                el_rating=el_at,
                el_rating_range=(el_lo, el_hi),
                pd_rating=pd_at,
                pd_rating_range=(pd_lo, pd_hi),
                bdr=bdr,
                bdr_stress=stress,
                bdr_multiple=multiple,
                bdr_rating_quantile=_best_rating(table, tdr_q, bdr),
                bdr_rating_multiple=_best_rating(table, tdr_m, bdr),
                note=note,
            )
        )
    sampling = result.sampling.method if result.sampling is not None else "plain"
    if sampling == "importance":
        notes.append("importance sampling: the pool default quantiles are weighted estimates")
    if applies and np.isnan(base_rate):
        notes.append(f"no base-case default rate: {base_basis}")
    return RatingReport(
        deal_name=result.deal_name,
        table_name=table.name,
        paths=result.paths,
        seed=result.seed,
        sampling=sampling,
        base_rate=base_rate,
        base_basis=base_basis,
        multiples=mult,
        tranches=rows,
        tdr=pd.DataFrame(tdr_rows, columns=list(TDR_COLUMNS)),
        notes=notes,
        breakeven_applies=applies,
        breakeven_reason=reason,
    )
