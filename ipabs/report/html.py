"""The report as one self-contained HTML file: every chart embedded as a base64 PNG, the style
inline, no script and no external asset. Every string from the deal or the user (deal, tranche,
scenario, trigger names, messages) goes through :func:`html.escape`."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

import yaml

from ipabs.format import estimate, money, number, pct, pct_estimate
from ipabs.labels import label
from ipabs.report.build import ReportData

SECTIONS = (
    ("terms", "deal terms"),
    ("assumptions", "assumptions"),
    ("cash-flows", "cash flows"),
    ("monte-carlo", "Monte Carlo"),
    ("ratings", "ratings"),
    ("breakeven", "breakeven"),
    ("sizing", "sizing"),
    ("triggers", "triggers"),
    ("pricing", "pricing"),
    ("early-warning", "early warning"),
    ("charts", "charts"),
    ("notes", "notes"),
)
"""Section ids (anchors) and headings, in order."""

_STYLE = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",Arial,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}
pre{background:#f7f7f7;padding:8px;font-size:12px}
img{max-width:100%;border:1px solid #eee}
.warn{color:#a00}
nav a{margin-right:1em}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], lang: str) -> str:
    """An HTML table; headings translated, cells escaped, cells that look numeric aligned right."""
    head = "".join(f"<th>{_e(label(h, lang))}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell)
            cls = ' class="n"' if i and text[:1].lstrip("-+").isdigit() else ""
            cells.append(f"<td{cls}>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _yaml(obj: Any) -> str:
    text = yaml.safe_dump(obj, allow_unicode=True, sort_keys=False, default_flow_style=False)
    return f"<pre>{_e(text)}</pre>"


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_none=True)


def _wal(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def render_html(data: ReportData) -> str:
    """The report as an HTML document (a string).

    Parameters
    ----------
    data : ReportData
        From :func:`ipabs.report.build.build_report`.

    Returns
    -------
    str
        A complete, self-contained HTML5 document.
    """
    lang = data.lang
    deal = data.deal
    parts: dict[str, str] = {
        "terms": _terms(data),
        "assumptions": _assumptions(data),
        "cash-flows": _cash_flows(data),
        "monte-carlo": _monte_carlo(data),
        "ratings": _ratings(data),
        "breakeven": _breakeven(data),
        "sizing": _sizing(data),
        "triggers": _triggers(data),
        "pricing": _pricing(data),
        "early-warning": _early_warning(data),
        "charts": _charts(data),
        "notes": _notes(data),
    }
    title = f"{deal.spec.deal.name}: {label('report', lang)}"
    nav = " ".join(f'<a href="#{sid}">{_e(label(h, lang))}</a>' for sid, h in SECTIONS)
    body = "\n".join(
        f'<section id="{sid}">\n<h2>{_e(label(h, lang))}</h2>\n{parts[sid]}\n</section>'
        for sid, h in SECTIONS
    )
    return (
        f'<!DOCTYPE html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}">\n'
        '<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{_e(title)}</h1>\n"
        f"<nav>{nav}</nav>\n{body}\n</body>\n</html>\n"
    )


def _terms(data: ReportData) -> str:
    lang = data.lang
    d = data.deal.spec.deal
    rows = [
        ["deal", d.name],
        ["currency", d.currency],
        ["closing date", d.closing_date],
        ["first payment date", d.first_payment_date],
        ["payment frequency", d.payment_frequency],
        ["legal final date", d.legal_final_date],
        ["day count", d.day_count],
    ]
    terms = _table(["item", "value"], [[label(k, lang), v] for k, v in rows], lang)
    s = data.base.summary
    tranches = _table(
        ["tranche", "balance", "coupon"],
        [[name, money(r["original_balance"]), pct(r["coupon"])] for name, r in s.iterrows()],
        lang,
    )
    return terms + tranches


def _assumptions(data: ReportData) -> str:
    lang = data.lang
    out = [f"<h3>{_e(label('scenarios', lang))}</h3>"]
    for name, sc in data.deal.spec.scenarios.items():
        out.append(f"<h4>{_e(name)}</h4>{_yaml(_dump(sc))}")
    source = f" ({_e(data.risk_file)})" if data.risk_file else ""
    out.append(f"<h3>{_e(label('risk model', lang))}{source}</h3>{_yaml(_dump(data.deal.spec.risk))}")
    return "\n".join(out)


def _run_summary(result: Any, lang: str) -> str:
    rows = []
    for name, r in result.summary.iterrows():
        rows.append(
            [
                name,
                money(r["original_balance"]),
                _wal(r["wal_years"]),
                pct(r["yield"]),
                money(r["interest_paid"]),
                money(r["principal_paid"] + r["residual_paid"]),
                money(r["loss"]),
                str(r["final_payment_date"] or "-"),
            ]
        )
    return _table(
        [
            "tranche",
            "balance",
            "WAL (y)",
            "yield",
            "interest paid",
            "principal+residual",
            "loss",
            "final payment",
        ],
        rows,
        lang,
    )


def _cash_flows(data: ReportData) -> str:
    lang = data.lang
    out = []
    for i, (name, result) in enumerate(data.runs.items()):
        kind = label("base case" if i == 0 else "stress scenario", lang)
        desc = data.deal.spec.scenarios[name].description or ""
        out.append(f"<h3>{_e(kind)}: {_e(name)}</h3>")
        if desc:
            out.append(f"<p>{_e(desc)}</p>")
        out.append(_run_summary(result, lang))
    return "\n".join(out)


def _monte_carlo(data: ReportData) -> str:
    lang = data.lang
    sim = data.sim
    method = "plain" if sim.sampling is None else sim.sampling.method
    reason = "" if sim.sampling is None else sim.sampling.reason
    head = (
        f"<p>{_e(label('paths', lang))}: {sim.paths:,}; {_e(label('seed', lang))}: {sim.seed}; "
        f"{_e(label('sampling', lang))}: {_e(method)} ({_e(reason)})</p>"
    )
    if sim.sampling is not None and method == "importance":
        vrf = {r["tranche"]: r.get("expected_loss_vrf", math.nan) for r in sim.tranche_summary}
        shift = ", ".join(f"{x:.3f}" for x in sim.sampling.shift)
        p = sim.pool_summary
        head += (
            f'<p id="importance-sampling">factor shift [{_e(shift)}]; variance reduction of '
            f"{_e(sim.sampling.tranche)}'s expected loss {number(vrf.get(sim.sampling.tranche, math.nan))}x; "
            "expected loss and P(loss) are mean(w x), E[WAL] and mean yield self-normalised "
            f"sum(w x) / sum(w); mean weight {_e(estimate(p['mean_weight'], p['mean_weight_se']))}</p>"
        )
    rows = [
        [
            r["tranche"],
            money(r["original_balance"]),
            pct_estimate(r["expected_loss"], r["expected_loss_se"]),
            pct_estimate(r["probability_of_loss"], r["probability_of_loss_se"]),
            _wal(r["expected_wal_years"]),
            pct(r["mean_yield"]),
        ]
        for r in sim.tranche_summary
    ]
    table = _table(
        ["tranche", "balance", "expected loss ± se", "P(loss) ± se", "E[WAL] (y)", "mean yield"], rows, lang
    )
    p = sim.pool_summary
    pool = _table(
        ["metric", "estimate"],
        [
            [label("expected loss ± se", lang), pct_estimate(p["expected_loss"], p["expected_loss_se"])],
            [f"{label('loss quantile', lang)} 95%", pct(p["loss_q95"])],
            [f"{label('loss quantile', lang)} 99%", pct(p["loss_q99"])],
            [f"{label('loss quantile', lang)} 99.9%", pct(p["loss_q99.9"])],
            [f"{label('expected shortfall', lang)} 95%", pct(p["expected_shortfall_95"])],
            [f"{label('expected shortfall', lang)} 99%", pct(p["expected_shortfall_99"])],
            [label("expected defaults", lang), number(p["expected_defaults"])],
        ],
        lang,
    )
    warn = ""
    if sim.warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in sim.warnings)
        warn = (
            f'<div class="warn" id="mc-warnings"><h3>{_e(label("warnings", lang))}</h3><ul>{items}</ul></div>'
        )
    return head + table + f"<h3>{_e(label('pool', lang))}</h3>" + pool + warn


def _ratings(data: ReportData) -> str:
    lang = data.lang
    r = data.ratings
    rows = [
        [
            t.tranche,
            pct_estimate(t.expected_loss, t.expected_loss_se),
            t.el_rating or "below table",
            " .. ".join(str(x or "below") for x in t.el_rating_range),
            pct_estimate(t.probability_of_loss, t.probability_of_loss_se),
            t.pd_rating or "below table",
            f"{t.horizon_years:.2f}",
        ]
        for t in r.tranches
    ]
    out = [
        f"<p>{_e(label('rating table', lang))}: {_e(r.table_name)}; {r.paths:,} "
        f"{_e(label('paths', lang))}, {_e(label('seed', lang))} {r.seed} ({_e(r.sampling)})</p>",
        _table(
            ["tranche", "expected loss", "EL rating", "range", "P(loss)", "PD rating", "WAL (y)"], rows, lang
        ),
    ]
    if r.breakeven_applies:
        rows = [
            [
                t.tranche,
                pct(t.bdr),
                t.bdr_stress or "-",
                "n/a" if math.isnan(t.bdr_multiple) else f"{t.bdr_multiple:.2f}x",
                t.bdr_rating_quantile or "below table",
                t.bdr_rating_multiple or "below table",
            ]
            for t in r.tranches
        ]
        out.append(
            _table(
                ["tranche", "BDR", "stress", "multiple", "rating (TDR quantile)", "rating (TDR multiple)"],
                rows,
                lang,
            )
        )
    else:
        out.append(
            f"<p>{_e(label('breakeven', lang))}: {_e(label('does not apply', lang))}: "
            f"{_e(r.breakeven_reason)}</p>"
        )
    out += [f"<p>{_e(t.tranche)}: {_e(t.note)}</p>" for t in r.tranches if t.note]
    out += [f"<p>{_e(n)}</p>" for n in r.notes]
    return "\n".join(out)


def _breakeven(data: ReportData) -> str:
    lang = data.lang
    if not data.breakeven:
        return (
            f'<p id="breakeven-not-applicable">{_e(label("does not apply", lang))}: '
            f"{_e(data.ratings.breakeven_reason)}</p>"
        )
    out = []
    for tranche, be in data.breakeven.items():
        out.append(
            f"<h3>{_e(tranche)}</h3><p>{_e(label('base case', lang))}: {pct(be.base_rate)} "
            f"({_e(be.base_basis)})</p>"
        )
        rows = [
            [
                row.stress,
                pct(row.bdr),
                "n/a" if math.isnan(row.multiple) else f"{row.multiple:.2f}x",
                money(row.loss_above),
            ]
            for row in be.table.itertuples()
        ]
        out.append(_table(["stress", "BDR", "multiple", "loss above BDR"], rows, lang))
        out += [f"<p>{_e(n)}</p>" for n in be.notes]
    return "\n".join(out)


def _sizing(data: ReportData) -> str:
    lang = data.lang
    s = data.sizing
    if s is None:
        return f"<p>{_e(label('not asked', lang))} (--size TRANCHE:TARGET)</p>"
    found = "-" if s.size is None else money(s.size)
    rows = [
        ["tranche", s.tranche],
        ["target", s.rating],
        ["size found", found],
        ["subordination", pct(s.subordination)],
        [s.criterion.replace("_", " "), pct_estimate(s.metric, s.metric_se)],
        ["limit", pct(s.limit)],
    ]
    return _table(["item", "value"], [[label(k, lang), v] for k, v in rows], lang) + _table(
        ["tranche", "balance"], [[k, money(v)] for k, v in s.balances.items()], lang
    )


def _triggers(data: ReportData) -> str:
    lang = data.lang
    rows = []
    for name, result in data.runs.items():
        for t in result.triggers.itertuples():
            fired = t.periods_active > 0
            rows.append(
                [
                    name,
                    t.trigger,
                    t.kind,
                    label("fired" if fired else "not fired", lang),
                    str(t.first_active_date or "-"),
                    str(t.periods_active),
                ]
            )
    if not rows:
        return "<p>-</p>"
    return _table(
        ["scenario", "triggers", "kind", "fired", "first active date", "periods active"], rows, lang
    )


def _early_warning(data: ReportData) -> str:
    """The tables of ``ipabs monitor`` (docs/monitor.md), when the report has a state."""
    lang = data.lang
    m = data.monitor
    if m is None:
        return f"<p>{_e(label('not asked', lang))} (--state FILE)</p>"
    out = [
        f"<p>{_e(m.report_date)} ({_e(label('period', lang))} {m.period}); {m.paths:,} "
        f"{_e(label('paths', lang))}, {_e(label('seed', lang))} {m.seed}; {_e(m.rating_table)}</p>"
    ]
    rows = [
        [
            t.tranche,
            pct_estimate(t.expected_loss_closing, t.expected_loss_closing_se),
            pct_estimate(t.expected_loss_now, t.expected_loss_now_se),
            pct_estimate(t.probability_of_loss_now, t.probability_of_loss_now_se),
            t.rating_closing or "-",
            t.rating_now or "-",
            "-" if t.drift_notches is None else f"{t.drift_notches:+d}",
        ]
        for t in m.tranches
    ]
    out.append(
        _table(
            ["tranche", "EL at closing", "EL now", "P(loss) now", "rating at closing", "now", "drift"],
            rows,
            lang,
        )
    )
    horizons = list(m.triggers[0].probability) if m.triggers else []
    rows = [
        [t.trigger, label("fired" if t.in_effect_now else "not fired", lang)]
        + [pct_estimate(t.probability[h], t.probability_se[h]) for h in horizons]
        for t in m.triggers
    ]
    if rows:
        out.append(_table(["trigger", "in effect now", *[f"{h} months" for h in horizons]], rows, lang))
    rows = [
        [
            o.obligor,
            o.status,
            "-" if o.days_past_due is None else str(o.days_past_due),
            money(o.balance),
            "-" if o.coverage != o.coverage else f"{o.coverage:.2f}",
            pct_estimate(o.contribution, o.contribution_se) + ("" if o.trusted else " *"),
        ]
        for o in m.watch_list
    ]
    if rows:
        out.append(f"<p>{_e(m.target)}</p>")
        out.append(_table(["obligor", "status", "dpd", "balance", "coverage", "contribution"], rows, lang))
    c = m.concentration
    if c.obligors:
        out.append(
            f"<p>Herfindahl {c.herfindahl:.4f} (1/H = {c.effective_obligors:.1f}); "
            f"{_e(label('balance', lang))} {money(c.balance)}</p>"
        )
        out.append(
            _table(
                ["industry", "balance", "share"],
                [[x["industry"], money(x["balance"]), pct(x["share"], 3)] for x in c.industries],
                lang,
            )
        )
    if m.warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in m.warnings)
        out.append(f'<p class="warn">{_e(label("warnings", lang))}</p><ul class="warn">{items}</ul>')
    return "\n".join(out)


def _pricing(data: ReportData) -> str:
    """Each tranche priced at par on the base case: its yield, and duration and convexity at
    that yield (conventions: docs/pricing.md)."""
    lang = data.lang
    if not data.pricing:
        return f"<p>{_e(label('priced at par on the base case; not priced', lang))}</p>"
    rows = [
        [
            r.tranche,
            f"{r.price:.2f}",
            pct(r.yield_),
            f"{r.modified_duration:.3f}",
            f"{r.convexity:.3f}",
            _wal(r.wal_years),
            str(r.first_principal_date or "-"),
            str(r.last_principal_date or "-"),
        ]
        for r in data.pricing
    ]
    scenario = data.pricing[0].scenario
    note = f"<p>{_e(label('scenario', lang))}: {_e(scenario)}</p>"
    return note + _table(
        [
            "tranche",
            "price",
            "yield",
            "modified duration",
            "convexity",
            "WAL (y)",
            "first principal date",
            "last principal date",
        ],
        rows,
        lang,
    )


def _charts(data: ReportData) -> str:
    out = []
    for chart in data.charts:
        src = "data:image/png;base64," + base64.b64encode(chart.png).decode("ascii")
        out.append(
            f'<figure><img src="{src}" alt="{_e(chart.caption)}" data-file="{_e(chart.name)}">'
            f"<figcaption>{_e(chart.caption)}</figcaption></figure>"
        )
    return "\n".join(out)


def _notes(data: ReportData) -> str:
    if not data.notes:
        return "<p>-</p>"
    return "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in data.notes) + "</ul>"
