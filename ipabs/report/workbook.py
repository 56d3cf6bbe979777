"""The report as an Excel workbook (openpyxl): summary, pool cash flows, tranche cash flows in
the layout of a Chinese trust's cash-flow allocation table (现金流分配表: per payment date, each
tranche's interest and principal paid and balance, the fees and the reserve), the Monte Carlo
summary, the loss distribution and the sensitivities. Numbers are stored as numbers with
number formats; every sheet has its header rows frozen and its columns sized."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ipabs.labels import label
from ipabs.report.build import ReportData

MONEY = "#,##0.00"
PERCENT = "0.00%"
PERCENT_FINE = "0.0000%"
DATE = "yyyy-mm-dd"
DECIMAL = "0.000"
INTEGER = "#,##0"

SHEETS = (
    "summary",
    "pool cash flows",
    "tranche cash flows",
    "Monte Carlo summary",
    "loss distribution",
    "sensitivities",
    "early warning",
)
"""Sheets, in order (their names are translated with ``--lang``)."""

LOSS_BINS = 50
"""Bins of the loss-distribution sheet."""


def sheet_names(lang: str) -> list[str]:
    """The workbook's sheet names in ``lang``."""
    return [label(s, lang) for s in SHEETS]


def _cell_value(v: Any) -> Any:
    """A value as a cell holds it: NumPy scalars as Python numbers, NaN as empty, timestamps as dates."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "to_pydatetime"):
        return v.to_pydatetime().date()
    if type(v).__name__ in ("NaTType", "NAType"):
        return None
    return v


def _write_rows(
    ws: Any, headers: Sequence[Sequence[str]], rows: Sequence[Sequence[Any]], formats: Sequence[str | None]
) -> None:
    """Write header rows then data rows, applying ``formats`` per column, freezing the headers
    (and the first column) and sizing the columns."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    for header in headers:
        ws.append(list(header))
    for r in range(1, len(headers) + 1):
        for c in ws[r]:
            c.font = Font(bold=True)
            c.alignment = Alignment(horizontal="center", wrap_text=True)
    for row in rows:
        ws.append([_cell_value(v) for v in row])
    start = len(headers) + 1
    for j, fmt in enumerate(formats, start=1):
        if fmt is None:
            continue
        for (cell,) in ws.iter_rows(min_row=start, min_col=j, max_col=j):
            if isinstance(cell.value, (int, float, dt.date)):
                cell.number_format = fmt
    ws.freeze_panes = ws.cell(row=start, column=2)
    for j in range(1, ws.max_column + 1):
        width = max((_width(ws.cell(row=i, column=j).value) for i in range(1, ws.max_row + 1)), default=8)
        ws.column_dimensions[get_column_letter(j)].width = min(max(width + 2, 10), 60)


def _width(v: Any) -> int:
    """Display width of a cell's text (wide characters count twice)."""
    if v is None:
        return 0
    if isinstance(v, float):
        text = f"{v:,.2f}"
    elif isinstance(v, dt.date):
        text = "2000-01-01"
    else:
        text = str(v)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def build_workbook(data: ReportData) -> Any:
    """The report's workbook.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    openpyxl.Workbook
        Save it with ``.save(path)``.
    """
    from openpyxl import Workbook

    lang = data.lang
    wb = Workbook()
    wb.remove(wb.active)
    names = dict(zip(SHEETS, sheet_names(lang), strict=True))
    _summary(wb.create_sheet(names["summary"]), data)
    _pool(wb.create_sheet(names["pool cash flows"]), data)
    _tranches(wb.create_sheet(names["tranche cash flows"]), data)
    _monte_carlo(wb.create_sheet(names["Monte Carlo summary"]), data)
    _loss_distribution(wb.create_sheet(names["loss distribution"]), data)
    _sensitivities(wb.create_sheet(names["sensitivities"]), data)
    _early_warning(wb.create_sheet(names["early warning"]), data)
    return wb


def save_workbook(data: ReportData, target: str | Path) -> None:
    """Build and save the workbook to ``target``."""
    build_workbook(data).save(target)


def _summary(ws: Any, data: ReportData) -> None:
    lang = data.lang
    d = data.deal.spec.deal
    sim = data.sim
    rows: list[list[Any]] = [
        [label("deal", lang), d.name, None],
        [label("currency", lang), d.currency, None],
        [label("closing date", lang), d.closing_date, None],
        [label("legal final date", lang), d.legal_final_date, None],
        [label("paths", lang), sim.paths, None],
        [label("seed", lang), sim.seed, None],
    ]
    fmts: list[str | None] = [None, None, DATE, DATE, INTEGER, INTEGER]
    ws.append([label("item", lang), label("value", lang), label("se", lang)])
    for row, fmt in zip(rows, fmts, strict=True):
        ws.append([_cell_value(v) for v in row])
        if fmt:
            ws.cell(row=ws.max_row, column=2).number_format = fmt
    ratings = {t.tranche: t for t in data.ratings.tranches}
    for r in sim.tranche_summary:
        name = r["tranche"]
        items = [
            (label("balance", lang), r["original_balance"], None, MONEY),
            (label("coupon", lang), data.base.summary.loc[name, "coupon"], None, PERCENT),
            (label("expected loss", lang), r["expected_loss"], r["expected_loss_se"], PERCENT_FINE),
            (label("P(loss)", lang), r["probability_of_loss"], r["probability_of_loss_se"], PERCENT_FINE),
            (label("E[WAL] (y)", lang), r["expected_wal_years"], None, DECIMAL),
        ]
        for what, value, se, fmt in items:
            ws.append([f"{name}: {what}", _cell_value(value), _cell_value(se)])
            ws.cell(row=ws.max_row, column=2).number_format = fmt
            ws.cell(row=ws.max_row, column=3).number_format = fmt
        t = ratings.get(name)
        if t is not None:
            ws.append([f"{name}: {label('EL rating', lang)}", t.el_rating or "below table", None])
            ws.append([f"{name}: {label('PD rating', lang)}", t.pd_rating or "below table", None])
            if data.ratings.breakeven_applies:
                ws.append([f"{name}: {label('BDR', lang)}", _cell_value(t.bdr), None])
                ws.cell(row=ws.max_row, column=2).number_format = PERCENT
    _write_rows(ws, [], [], [])
    ws.freeze_panes = "B2"


OPTIONAL_POOL_COLUMNS = (
    ("collateral value", "pool.collateral_value"),
    ("delinquent 30-59 days", "pool.delinquent_30"),
    ("delinquent 60-89 days", "pool.delinquent_60"),
    ("delinquent 90+ days", "pool.delinquent_90"),
    ("servicer advances outstanding", "deal.advances_outstanding"),
)
"""Columns of the pool sheet shown only when some scenario of the deal has them."""


def _pool(ws: Any, data: ReportData) -> None:
    lang = data.lang
    columns = [
        ("period", "period", INTEGER),
        ("payment date", "payment_date", DATE),
        ("pool interest", "pool.interest", MONEY),
        ("scheduled principal", "pool.scheduled_principal", MONEY),
        ("prepayment", "pool.prepayment", MONEY),
        ("recovery", "pool.recovery", MONEY),
        ("guarantee", "pool.guarantee", MONEY),
        ("risk sharing", "pool.risk_sharing", MONEY),
        ("insurance", "pool.insurance", MONEY),
        ("royalty", "pool.royalty", MONEY),
        ("defaults", "pool.defaults", MONEY),
        ("loss", "pool.loss", MONEY),
        ("pool balance", "pool.balance_end", MONEY),
    ]
    # what only some deals have: shown when a scenario has it
    for heading, column in OPTIONAL_POOL_COLUMNS:
        if any(column in r.periods and (r.periods[column] != 0).any() for r in data.runs.values()):
            columns.append((heading, column, MONEY))
    headers = [label("scenario", lang)] + [label(h, lang) for h, _, _ in columns]
    rows = []
    for name, result in data.runs.items():
        p = result.periods
        for i in range(len(p)):
            rows.append([name] + [p[c].iloc[i] for _, c, _ in columns])
    _write_rows(ws, [headers], rows, [None] + [f for _, _, f in columns])


def _tranches(ws: Any, data: ReportData) -> None:
    """现金流分配表 of the base case: two header rows (the tranche, fee or account; then what)."""
    from openpyxl.styles import Alignment

    lang = data.lang
    base = data.base
    p = base.periods
    tranche_names = list(base.summary.index)
    fees = [f.name for f in data.deal.spec.fees]
    accounts = [a.name for a in data.deal.spec.accounts]
    top = [label("scenario", lang), label("period", lang), label("payment date", lang)]
    sub = ["", "", ""]
    cols: list[tuple[str, str]] = []
    for t in tranche_names:
        for field, what in (
            ("interest_paid", "interest"),
            ("principal_paid", "principal"),
            ("balance_end", "balance"),
        ):
            top.append(t)
            sub.append(label(what, lang))
            cols.append((f"{t}.{field}", MONEY))
    for f in fees:
        top.append(f"{label('fees', lang)}: {f}")
        sub.append(label("paid", lang))
        cols.append((f"{f}.paid", MONEY))
    for a in accounts:
        top.append(f"{label('reserve', lang)}: {a}")
        sub.append(label("account balance", lang))
        cols.append((f"{a}.balance_end", MONEY))
    rows = [
        [base.scenario, p["period"].iloc[i], p["payment_date"].iloc[i]] + [p[c].iloc[i] for c, _ in cols]
        for i in range(len(p))
    ]
    _write_rows(ws, [top, sub], rows, [None, INTEGER, DATE] + [f for _, f in cols])
    # one merged heading over each tranche's three columns
    col = 4
    for _ in tranche_names:
        ws.merge_cells(start_row=1, start_column=col, end_row=1, end_column=col + 2)
        ws.cell(row=1, column=col).alignment = Alignment(horizontal="center")
        col += 3
    ws.freeze_panes = "D3"


_PLAIN_METRICS = ("expected_wal", "wal_years", "mean_duration", "expected_defaults", "defaults_")
"""Monte Carlo metrics that are not shares (years, numbers of defaults): a plain decimal format."""


def metric_format(metric: str) -> str:
    """Number format of a Monte Carlo metric of :meth:`SimulationResult.metrics`: counts of
    paths as integers, years, numbers of defaults, effective path counts and variance ratios as
    decimals, and every share (losses, probabilities, rates, yields) as a percentage."""
    if metric == "loss_paths":
        return INTEGER
    if metric.startswith(_PLAIN_METRICS) or metric.endswith(("_vs_plain", "_effective_paths")):
        return "#,##0.0000"
    return PERCENT_FINE


def _monte_carlo(ws: Any, data: ReportData) -> None:
    lang = data.lang
    m = data.sim.metrics()
    headers = [label(str(c).replace("_", " "), lang) for c in m.columns]
    _write_rows(ws, [headers], m.itertuples(index=False), [None] * len(m.columns))
    numeric = [j for j, c in enumerate(m.columns, start=1) if m[c].dtype.kind in "fi"]
    for i, metric in enumerate(m["metric"], start=2):
        fmt = metric_format(str(metric))
        for j in numeric:
            ws.cell(row=i, column=j).number_format = fmt


def _loss_distribution(ws: Any, data: ReportData) -> None:
    from ipabs.risk.montecarlo_numba_fns import P_LOSS_RATE

    lang = data.lang
    sim = data.sim
    loss = sim.per_path("the workbook's loss distribution")[1][:, P_LOSS_RATE]
    w = sim.weights / sim.weights.sum()
    if not np.any(loss > 0.0):
        # royalty and income-share streams have no balance to lose: every path's loss rate is 0
        ws.append([label("notes", lang)])
        ws.append([f"{label('pool loss', lang)}: 0 ({sim.paths:,} {label('paths', lang)})"])
        ws.freeze_panes = "A2"
        ws.column_dimensions["A"].width = 60
        return
    top = float(loss.max())
    edges = np.linspace(0.0, top, LOSS_BINS + 1)
    prob, _ = np.histogram(loss, bins=edges, weights=w)
    cum = np.cumsum(prob)
    rows = [[edges[i], edges[i + 1], prob[i], cum[i]] for i in range(LOSS_BINS)]
    headers = labels_of(["loss rate from", "loss rate to", "probability", "cumulative probability"], lang)
    _write_rows(ws, [headers], rows, [PERCENT_FINE, PERCENT_FINE, PERCENT_FINE, PERCENT_FINE])


def labels_of(texts: list[str], lang: str) -> list[str]:
    """:func:`ipabs.labels.label` of each text."""
    return [label(t, lang) for t in texts]


def _not_asked(ws: Any, lang: str, option: str) -> None:
    """A sheet the report was not asked for: a note saying which option asks for it."""
    ws.append([label("notes", lang)])
    ws.append([f"{label('not asked', lang)}: ipabs report ... {option}"])
    ws.freeze_panes = "A2"
    ws.column_dimensions["A"].width = 60


def _sensitivities(ws: Any, data: ReportData) -> None:
    lang = data.lang
    s = data.sensitivities
    if s is None:
        _not_asked(ws, lang, "--sensitivities")
        return
    fmts: list[str | None] = []
    for c in s.columns:
        kind = s[c].dtype.kind
        if kind in "fi" and "balance" in str(c):
            fmts.append(MONEY)
        elif kind == "f" and any(k in str(c) for k in ("loss", "probability", "yield", "rate")):
            fmts.append(PERCENT_FINE)
        elif kind == "f":
            fmts.append("#,##0.0000")
        else:
            fmts.append(None)
    headers = [label(str(c).replace("_", " ") if "." not in str(c) else str(c), lang) for c in s.columns]
    _write_rows(ws, [headers], s.itertuples(index=False), fmts)


def _early_warning(ws: Any, data: ReportData) -> None:
    """The watch list of ``ipabs monitor`` (docs/monitor.md), when the report has a state."""
    lang = data.lang
    m = data.monitor
    if m is None:
        _not_asked(ws, lang, "--state FILE")
        return
    headers = labels_of(
        ["obligor", "status", "dpd", "balance", "coverage", "industry", "contribution", "se", "of EL"], lang
    )
    rows = [
        [
            o.obligor,
            o.status,
            o.days_past_due,
            o.balance,
            None if o.coverage != o.coverage else o.coverage,
            o.industry,
            o.contribution,
            o.contribution_se,
            o.share_of_expected_loss,
        ]
        for o in m.watch_list
    ]
    _write_rows(
        ws, [headers], rows, [None, None, INTEGER, MONEY, DECIMAL, None, PERCENT_FINE, PERCENT_FINE, PERCENT]
    )
