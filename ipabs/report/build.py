"""Everything one report shows, computed once: the deal's deterministic runs under every named
scenario, one Monte Carlo run, implied ratings both ways, breakeven default rates, optional
sizing and sensitivities, and the charts rendered to PNG. :mod:`ipabs.report.html` and
:mod:`ipabs.report.workbook` only lay these out; nothing here writes a file."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipabs.cluster import accepts_client
from ipabs.errors import IpabsError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ipabs.analytics.breakeven import BreakevenResult
    from ipabs.analytics.implied import RatingReport
    from ipabs.analytics.monitor import MonitorReport
    from ipabs.analytics.pricing import PriceResult
    from ipabs.analytics.sizing import SizingResult
    from ipabs.deal.load import LoadedDeal
    from ipabs.engine.compile import CompiledModel
    from ipabs.montecarlo import SimulationResult
    from ipabs.results import RunResult

SENSITIVITY_MULTIPLIERS = (1.0, 1.5, 2.0)
"""Values of ``risk.pd_multiplier`` of the default sensitivity sweep (``--sensitivities``)."""

KEPT_PATHS = 200
"""Paths whose per-period tables the Monte Carlo keeps for the fan charts."""


@dataclass(frozen=True)
class Chart:
    """One chart of a report: its file name, caption (in the report's language) and PNG bytes."""

    name: str
    caption: str
    png: bytes


@dataclass
class ReportData:
    """The contents of one report.

    Attributes
    ----------
    deal : LoadedDeal
    lang : {"en", "zh"}
    runs : dict of str to RunResult
        Every named scenario of the deal, the first being the base case.
    sim : SimulationResult
    ratings : RatingReport
    breakeven : dict of str to BreakevenResult
        Per tranche (empty when the breakeven does not apply: ``ratings.breakeven_reason``).
    sizing : SizingResult or None
        Only when asked for (``--size``).
    sensitivities : DataFrame or None
        A small sweep of ``risk.pd_multiplier``, only when asked for.
    pricing : list of PriceResult
        Each tranche priced at par on the base case (yield, duration and convexity at that
        yield, WAL, principal window; see :func:`ipabs.analytics.pricing.price`); a tranche that
        cannot be priced is left out with a note.
    charts : list of Chart
    notes : list of str
        What the report leaves out and why (a chart that does not apply, a missing font).
    monitor : MonitorReport or None
        Early warning on a report date, only when a state is given (``--state``;
        :func:`ipabs.analytics.monitor.monitor`).
    """

    deal: LoadedDeal
    lang: str
    runs: dict[str, RunResult]
    sim: SimulationResult
    ratings: RatingReport
    breakeven: dict[str, BreakevenResult]
    sizing: SizingResult | None = None
    sensitivities: pd.DataFrame | None = None
    pricing: list[PriceResult] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    risk_file: str | None = None
    monitor: MonitorReport | None = None

    @property
    def base(self) -> RunResult:
        """The base case: the deal's first scenario."""
        return next(iter(self.runs.values()))


def parse_size(text: str) -> tuple[str, str]:
    """Split ``--size TRANCHE:TARGET``.

    Raises
    ------
    IpabsError
        When either part is missing.
    """
    tranche, sep, target = text.partition(":")
    if not sep or not tranche.strip() or not target.strip():
        raise IpabsError(f"--size {text}: give TRANCHE:TARGET, e.g. --size senior:AAA")
    return tranche.strip(), target.strip()


def check_size(deal: LoadedDeal, text: str, table: Any = None) -> tuple[str, str]:
    """Check ``--size TRANCHE:TARGET`` against the deal and the rating table before any work.

    Raises
    ------
    IpabsError
        Naming the flag, the deal file and what is known, for an unknown tranche or rating.
    """
    from ipabs.analytics.ratings import load_rating_table

    tranche, target = parse_size(text)
    names = list(_tranche_names(deal))
    if tranche not in names:
        raise IpabsError(
            f"--size {text}: {deal.source.file} has no tranche {tranche!r}; "
            f"known tranches: {', '.join(names)}"
        )
    from ipabs.analytics.sizing import _check

    try:
        _check(deal, tranche, "tranche", None)  # e.g. the most junior tranche cannot be sized
    except IpabsError as exc:
        raise IpabsError(f"--size {text}: {exc}") from None
    rating_table = load_rating_table(table)
    try:
        rating_table.canonical(target)
    except (IpabsError, KeyError, ValueError):
        raise IpabsError(
            f"--size {text}: no rating {target!r} in the rating table; known ratings: "
            f"{', '.join(rating_table.ratings)}"
        ) from None
    return tranche, target


def _tranche_names(deal: LoadedDeal) -> list[str]:
    tranches = deal.spec.tranches
    return list(tranches) if isinstance(tranches, dict) else [t.name for t in tranches]


@accepts_client
def build_report(
    deal: LoadedDeal,
    *,
    paths: int,
    seed: int = 0,
    lang: str = "en",
    risk: str | Path | None = None,
    size: tuple[str, str] | None = None,
    sensitivities: bool = False,
    threads: int | None = None,
    progress: bool | None = False,
    state: str | Path | None = None,
) -> ReportData:
    """Compute everything a report shows.

    Parameters
    ----------
    deal : LoadedDeal
        A deal with a ``risk`` section (or ``risk`` given).
    paths, seed : int
        Monte Carlo paths and seed (also for the sizing and the sensitivities).
    lang : {"en", "zh"}
        Language of the charts and captions.
    risk : str or Path, optional
        Risk assumptions file replacing the deal's ``risk``.
    size : (str, str), optional
        ``(tranche, target rating)`` to size the tranche to (see :func:`check_size`).
    sensitivities : bool
        Run the small default sweep of ``risk.pd_multiplier``.
    threads : int, optional
    progress : bool or None
        Progress bars on standard error (None: only on a terminal).
    state : str or Path, optional
        A state file of the deal (docs/surveillance.md): adds the early-warning section of
        ``ipabs monitor`` on its report date (docs/monitor.md).
    client : distributed.Client, optional
        Run the Monte Carlo paths on this Dask cluster (docs/cluster.md); results are the
        same, bit for bit.

    Returns
    -------
    ReportData
    """
    from ipabs.analytics.breakeven import breakeven
    from ipabs.analytics.implied import implied_ratings, replace_risk
    from ipabs.api import _model, run
    from ipabs.montecarlo import simulate

    if risk is not None:
        deal = replace_risk(deal, risk)
    if deal.spec.risk is None:
        raise IpabsError(
            f"{deal.source.file}: a report needs a `risk` section (the Monte Carlo model) or --risk FILE"
        )
    model = _model(deal)
    runs = {name: run(model, name) for name in deal.spec.scenarios}
    sim = simulate(
        model,
        paths=paths,
        seed=seed,
        threads=threads,
        keep=range(min(paths, KEPT_PATHS)),
        importance_sampling="auto",
        progress=progress,
    )
    # implied ratings read quantiles across the whole pool default distribution, for which
    # `ipabs rate` uses plain sampling: reuse the run only when it is plain, else run plainly
    plain = sim.sampling is None or sim.sampling.method == "plain"
    ratings = implied_ratings(
        deal,
        paths=paths,
        seed=seed,
        threads=threads,
        result=sim if plain else None,
        progress=progress,
    )
    be: dict[str, BreakevenResult] = {}
    if ratings.breakeven_applies:
        for t in ratings.tranches:
            be[t.tranche] = breakeven(model, t.tranche, progress=progress)
    sizing = None
    if size is not None:
        from ipabs.analytics.sizing import size_structure

        sizing = size_structure(
            deal, size[0], size[1], paths=paths, seed=seed, threads=threads, progress=progress
        )
    sens = None
    if sensitivities:
        from ipabs.analytics.sweep import sweep

        sens = sweep(
            deal,
            {"risk.pd_multiplier": list(SENSITIVITY_MULTIPLIERS)},
            paths=paths,
            seed=seed,
            threads=threads,
            progress=progress,
        )
    watch = None
    if state is not None:
        from ipabs.analytics.monitor import monitor

        watch = monitor(deal, state, paths=paths, seed=seed, threads=threads, progress=progress)
    data = ReportData(
        deal=deal,
        lang=lang,
        runs=runs,
        sim=sim,
        ratings=ratings,
        breakeven=be,
        sizing=sizing,
        sensitivities=sens,
        risk_file=None if risk is None else str(risk),
        monitor=watch,
    )
    _price_tranches(data, model)
    _draw_charts(data)
    return data


def _price_tranches(data: ReportData, model: CompiledModel) -> None:
    """Price every tranche with a balance at par on the base case; a tranche the pricing
    cannot price (no cash at all, say) is noted instead."""
    from ipabs.analytics.pricing import price

    base = next(iter(data.runs))
    for name, balance in zip(model.tranche_names, model.cd.tr_balance, strict=True):
        if not balance > 0.0:
            continue
        try:
            data.pricing.append(price(model, name, price=100.0, scenario=base))
        except IpabsError as exc:
            data.notes.append(f"{name}: not priced ({exc})")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _safe(name: str) -> str:
    """A scenario name as part of a file name (ASCII letters, digits, ``_`` and ``-``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "scenario"


def _draw_charts(data: ReportData) -> None:
    """Render every chart that applies to the deal into ``data.charts``; a chart that does not
    apply (a loss distribution of a royalty-only deal) is left out with a note. A missing CHINESE
    font is noted once rather than raised as a warning."""
    from ipabs.labels import label
    from ipabs.report.fonts import FontWarning

    lang = data.lang
    sim, base = data.sim, data.base
    todo: list[tuple[str, str, Any]] = [
        (
            "loss_distribution.png",
            label("loss distribution", lang),
            lambda: sim.plot.loss_distribution(lang=lang),
        ),
        (
            "balances_fan.png",
            f"{label('Monte Carlo', lang)}: {label('balance', lang)}",
            lambda: sim.plot.balances(lang=lang),
        ),
        (
            "default_timing.png",
            f"{label('Monte Carlo', lang)}: {label('timing', lang)}",
            lambda: sim.plot.default_timing(lang=lang),
        ),
        (
            "royalty_fan.png",
            f"{label('Monte Carlo', lang)}: {label('royalty', lang)}",
            lambda: sim.plot.royalty(lang=lang),
        ),
        (
            "sources_and_uses.png",
            f"{label('base case', lang)}: {label('cash flows', lang)}",
            lambda: base.plot.sources_and_uses(lang=lang),
        ),
    ]
    if data.deal.spec.triggers:
        todo.append(
            (
                "triggers.png",
                f"{label('base case', lang)}: {label('triggers', lang)}",
                lambda: base.plot.triggers(data.deal, lang=lang),
            )
        )
    for i, (name, result) in enumerate(data.runs.items()):
        todo.append(
            (
                f"balances_{i + 1}_{_safe(name)}.png",
                f"{label('scenario', lang)} {name}: {label('balance', lang)}",
                lambda r=result: r.plot.balances(lang=lang),
            )
        )
    if data.sizing is not None:
        sizing = data.sizing
        todo.append(("sizing_curve.png", label("sizing", lang), lambda: sizing.plot.curve(lang=lang)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FontWarning)
        for name, caption, draw in todo:
            try:
                fig = draw()
            except IpabsError as exc:  # the chart does not apply to this deal
                data.notes.append(f"{name}: {exc}")
                continue
            data.charts.append(Chart(name, caption, _png(fig)))
    for w in caught:
        if issubclass(w.category, FontWarning):
            data.notes.append(f"charts: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
