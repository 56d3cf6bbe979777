"""Charts of results, each a :class:`matplotlib.figure.Figure` drawn on the non-interactive
Agg canvas (no screen, no pyplot state).

They only read results: the DataFrames of :class:`~ipabs.results.RunResult`, the per-path
outcomes and kept paths of :class:`~ipabs.montecarlo.SimulationResult`, a sweep table
(:func:`ipabs.analytics.sweep.sweep`) and :class:`~ipabs.analytics.sizing.SizingResult`.
Every chart takes ``lang="en"`` or ``"zh"`` (labels in the terms of Chinese trust documents);
see docs/charts.md.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, PercentFormatter

from ipabs.errors import IpabsError
from ipabs.report import fonts

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ipabs.analytics.sizing import SizingResult
    from ipabs.deal.load import LoadedDeal
    from ipabs.montecarlo import SimulationResult
    from ipabs.results import RunResult

LANGS = ("en", "zh")
FAN_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
"""Percentiles of a fan: the 5-95% band, the 25-75% band and the median."""

# key -> (English, Chinese as Chinese trust documents put it)
LABELS: dict[str, tuple[str, str]] = {
    "loss_title": ("Pool loss distribution", "资产池损失分布"),
    "loss_x": ("pool loss (share of the original pool balance)", "资产池损失率（占初始资产池余额）"),
    "probability": ("probability", "概率"),
    "attachment": ("attachment", "起始点"),
    "detachment": ("detachment", "终止点"),
    "notes_as_pool": (
        "attachment points take the pool equal to the notes",
        "分层起止点假设资产池余额等于证券总额",
    ),
    "balances_title": ("Tranche balances", "各档证券未偿本金余额"),
    "balances_fan_title": ("Tranche balances: {n} kept paths", "各档证券未偿本金余额：{n} 条保留路径"),
    "payment_date": ("payment date", "兑付日"),
    "period": ("period", "期次"),
    "balance": ("balance", "余额"),
    "median": ("median", "中位数"),
    "band_90": ("5%-95%", "5%-95% 分位"),
    "band_50": ("25%-75%", "25%-75% 分位"),
    "cash_title": ("Sources and uses of cash", "现金流来源与运用"),
    "cash_y": ("cash in (+) / cash out (-)", "现金流入（+）/ 流出（-）"),
    "pool.interest": ("interest collected", "利息回收"),
    "pool.scheduled_principal": ("scheduled principal", "本金回收"),
    "pool.prepayment": ("prepayments", "提前还款"),
    "pool.recovery": ("recoveries", "违约回收"),
    "pool.guarantee": ("guarantee payments", "担保代偿"),
    "pool.risk_sharing": ("risk-sharing payments", "风险补偿"),
    "pool.insurance": ("guarantee insurance claims", "保证保险赔付"),
    "pool.royalty": ("royalties and income shares", "许可费及收益分成"),
    "deal.call_proceeds": ("clean-up call", "清仓回购"),
    "deal.support_draws": ("support draws", "差额支付及流动性支持"),
    "deal.hedge_received": ("hedge receipts", "利率对冲收入"),
    "deal.advanced_interest": ("servicer advances (interest)", "服务机构垫付利息"),
    "deal.advanced_principal": ("servicer advances (principal)", "服务机构垫付本金"),
    "deal.account_withdrawals": ("account withdrawals", "储备金等账户提取"),
    "deal.cash_brought_forward": ("brought forward", "上期结转"),
    "fees": ("fees", "税费及费用"),
    "interest_paid": ("interest paid", "证券利息"),
    "principal_paid": ("principal paid", "证券本金"),
    "residual_paid": ("residual paid", "次级剩余收益"),
    "support_repaid": ("liquidity repaid", "流动性支持偿还"),
    "deal.hedge_paid": ("hedge payments", "利率对冲支付"),
    "deal.advances_repaid": ("advances repaid", "偿还服务机构垫付"),
    "deal.account_deposits": ("account deposits", "储备金等账户存入"),
    "deal.cash_carried_forward": ("carried forward", "结转下期"),
    "triggers_title": ("Trigger tests", "触发事件测试"),
    "value": ("tested value", "测试值"),
    "threshold": ("threshold", "触发阈值"),
    "breached": ("breached", "触发"),
    "sizing_title": ("Sizing {tranche} for {rating}", "{tranche} 目标评级 {rating} 的信用增级测算"),
    "sizing_x_tranche": (
        "subordination below {tranche} (share of the notes)",
        "{tranche} 的次级支持（占证券总额）",
    ),
    "sizing_x_reserve": ("reserve {name} (share of the notes)", "储备金 {name}（占证券总额）"),
    "sizing_x_deficiency_cap": (
        "deficiency payment cap {name} (share of the notes)",
        "差额支付承诺 {name} 上限（占证券总额）",
    ),
    "expected_loss": ("expected loss", "预期损失率"),
    "default_probability": ("probability of any loss", "违约概率"),
    "target": ("{rating} limit at the tranche's WAL", "{rating} 目标上限（按加权平均期限）"),
    "tried": ("structures tried (95% interval)", "测算结构（95% 置信区间）"),
    "found": ("size found", "测算结果"),
    "heatmap_title": ("Sensitivity of {tranche}: {metric}", "{tranche} 敏感性分析：{metric}"),
    "timing_title": ("Default timing", "违约时间分布"),
    "timing_y": ("share of defaulted balance", "违约金额占比"),
    "timing_paths": ("{n} kept paths", "{n} 条保留路径"),
    "royalty_title": ("Royalty cash", "特许权使用费现金流"),
    "royalty_fan_title": ("Royalty cash: {n} kept paths", "特许权使用费现金流：{n} 条保留路径"),
    "royalty_y": ("royalty and income-share cash", "许可费及收益分成"),
}

_METRIC_LABELS: dict[str, tuple[str, str]] = {
    "expected_loss": ("expected loss", "预期损失率"),
    "probability_of_loss": ("probability of loss", "违约概率"),
    "expected_wal_years": ("expected WAL (years)", "预期加权平均期限（年）"),
    "mean_yield": ("mean yield", "平均收益率"),
    "pool_expected_loss": ("pool expected loss", "资产池预期损失率"),
    "pool_expected_default_rate": ("pool expected default rate", "资产池预期违约率"),
    "loss": ("loss", "损失"),
    "loss_pct": ("loss (share of balance)", "损失率"),
    "wal_years": ("WAL (years)", "加权平均期限（年）"),
    "yield": ("yield", "收益率"),
}
_SHARE_METRICS = {
    "expected_loss",
    "probability_of_loss",
    "mean_yield",
    "pool_expected_loss",
    "pool_expected_default_rate",
    "loss_pct",
    "yield",
}

SOURCES = (
    "pool.interest",
    "pool.scheduled_principal",
    "pool.prepayment",
    "pool.recovery",
    "pool.guarantee",
    "pool.risk_sharing",
    "pool.insurance",
    "pool.royalty",
    "deal.call_proceeds",
    "deal.support_draws",
    "deal.hedge_received",
    "deal.advanced_interest",
    "deal.advanced_principal",
    "deal.account_withdrawals",
    "deal.cash_brought_forward",
)
"""Cash in, per period: the pool's collections by kind, then the deal's other sources."""

USES = (
    "fees",
    "interest_paid",
    "principal_paid",
    "residual_paid",
    "support_repaid",
    "deal.hedge_paid",
    "deal.advances_repaid",
    "deal.account_deposits",
    "deal.cash_carried_forward",
)
"""Cash out, per period: fees, the tranches' interest, principal and residual, liquidity
repayments, payments to hedge counterparties, advances repaid to the servicer, account
deposits and cash carried forward."""


# --------------------------------------------------------------------------- shared pieces


def _lang(lang: str) -> str:
    """The language to label in: ``zh`` falls back to ``en`` (with a warning) without a CJK font."""
    if lang not in LANGS:
        raise IpabsError(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
    if lang == "zh" and fonts.cjk_font() is None:
        fonts.warn_no_cjk_font("Chinese labels")
        return "en"
    return lang


def _t(key: str, lang: str, **fields: Any) -> str:
    text = LABELS[key][LANGS.index(lang)]
    return text.format(**fields) if fields else text


def _show_in_notebooks() -> None:
    """Let IPython show a returned figure as an image: pyplot's inline backend registers that,
    but these figures never go through pyplot."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(Figure)
    except KeyError:
        from IPython.core.pylabtools import print_figure

        formatter.for_type(Figure, lambda fig: print_figure(fig, "png"))


def _figure(rows: int = 1, height: float = 4.5, sharex: bool = False) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(8.0, height * rows if rows > 1 else height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: renders to files and notebooks, never to a screen
    _show_in_notebooks()
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


def _finish(fig: Figure) -> Figure:
    """Draw every text of ``fig`` in the CJK font when there is one (it has Latin glyphs too),
    so that Chinese names stay legible in either language; warn once when there is none."""
    font = fonts.cjk_font()
    texts = [t.get_text() for t in fig.findobj(Text)]
    for ax in fig.axes:
        texts += [t.get_text() for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
    if font is None:
        if fonts.has_cjk(texts):
            fonts.warn_no_cjk_font("Chinese names")
        return fig
    family = [font, "DejaVu Sans"]
    for text in fig.findobj(Text):
        text.set_fontfamily(family)
    for ax in fig.axes:
        ax.tick_params(labelfontfamily=family)
    return fig


def _amount_formatter(lang: str) -> FuncFormatter:
    """Amounts in millions (``95.0m``) or, in Chinese, in 万 (ten thousands); small ones in full."""
    if lang == "zh":
        return FuncFormatter(lambda x, _: f"{x / 1e4:,.0f}万" if abs(x) >= 1e4 else f"{x:,.0f}")
    return FuncFormatter(lambda x, _: f"{x / 1e6:,.1f}m" if abs(x) >= 1e5 else f"{x:,.0f}")


def weighted_quantiles(values: np.ndarray, weights: np.ndarray | None, levels: Sequence[float]) -> np.ndarray:
    """Quantiles of each column of ``values`` (paths x periods) under path ``weights``.

    Parameters
    ----------
    values : ndarray, shape (n, P)
    weights : ndarray, shape (n,), optional
        Likelihood-ratio weights of the paths; None or all equal: plain quantiles (linear
        interpolation, numpy's default).
    levels : sequence of float
        Levels in [0, 1].

    Returns
    -------
    ndarray, shape (len(levels), P)
        With unequal weights, the smallest value whose weighted share of paths at or below it
        reaches the level (the inverse of the weighted empirical distribution).
    """
    values = np.asarray(values, dtype=np.float64)
    q = np.asarray(levels, dtype=np.float64)
    if weights is None or np.all(weights == weights[0]):
        return np.quantile(values, q, axis=0)
    w = np.asarray(weights, dtype=np.float64)
    out = np.empty((len(q), values.shape[1]))
    for j in range(values.shape[1]):
        order = np.argsort(values[:, j], kind="stable")
        cum = np.cumsum(w[order]) / w.sum()
        idx = np.minimum(np.searchsorted(cum, q * (1.0 - 1e-12), side="left"), len(cum) - 1)
        out[:, j] = values[order, j][idx]
    return out


def _kept(sim: SimulationResult) -> tuple[list[RunResult], np.ndarray]:
    """The kept paths' results (by path index) and their weights."""
    if not sim.kept:
        raise IpabsError(
            "this chart needs per-period tables, which the Monte Carlo keeps only for the paths asked "
            "for: run simulate(..., keep=range(200)) and plot again"
        )
    index = sorted(sim.kept)
    return [sim.kept[i] for i in index], sim.weights[index]


def _column_matrix(results: Sequence[RunResult], column: str) -> np.ndarray:
    return np.vstack([r.periods[column].to_numpy(dtype=np.float64) for r in results])


def _fan(
    ax: Axes, x: Any, values: np.ndarray, weights: np.ndarray, label: str, color: str, lang: str, first: bool
) -> None:
    """Median line with 25-75% and 5-95% bands of ``values`` (paths x periods)."""
    q = weighted_quantiles(values, weights, FAN_LEVELS)
    ax.fill_between(
        x, q[0], q[4], color=color, alpha=0.15, lw=0, label=_t("band_90", lang) if first else None
    )
    ax.fill_between(x, q[1], q[3], color=color, alpha=0.3, lw=0, label=_t("band_50", lang) if first else None)
    ax.plot(x, q[2], color=color, lw=2, label=f"{label} ({_t('median', lang)})", gid=f"median:{label}")


def _colors(n: int) -> list[str]:
    return [f"C{i % 10}" for i in range(n)]


# --------------------------------------------------------------------------- 1. pool loss


def tranche_attachments(balances: Sequence[float], pool_balance: float | None = None) -> np.ndarray:
    """Attachment and detachment of each tranche as shares of the pool (most senior first).

    A tranche starts to lose when the pool's loss exceeds the pool balance less the notes
    senior to it and itself (its attachment point) and is wiped out at the pool balance less
    the notes senior to it (its detachment point), both as shares of the pool and clipped to
    [0, 1]. This is hard credit enhancement: excess spread, reserves and external support
    are not counted.

    Parameters
    ----------
    balances : sequence of float
        Original tranche balances, most senior first.
    pool_balance : float, optional
        Original pool balance (default: the sum of the notes).

    Returns
    -------
    ndarray, shape (len(balances), 2)
        ``[attachment, detachment]`` per tranche.
    """
    b = np.asarray(balances, dtype=np.float64)
    pool = float(b.sum()) if pool_balance is None else float(pool_balance)
    if not pool > 0:
        raise IpabsError(f"the pool balance must be positive, got {pool}")
    above_and_self = np.cumsum(b)
    above = above_and_self - b
    attach = np.clip(1.0 - above_and_self / pool, 0.0, 1.0)
    detach = np.clip(1.0 - above / pool, 0.0, 1.0)
    return np.column_stack([attach, detach])


def loss_distribution(
    sim: SimulationResult, *, bins: int = 50, pool_balance: float | None = None, lang: str = "en"
) -> Figure:
    """Histogram of the pool loss rate over the Monte Carlo paths, with each tranche's
    attachment (solid) and detachment (dashed) points.

    Parameters
    ----------
    sim : SimulationResult
    bins : int
        Histogram bins.
    pool_balance : float, optional
        Original pool balance for the attachment points (see :func:`tranche_attachments`).
        Default: the ``pool.balance_start`` of the first period of a kept path when the run
        kept one, else the sum of the notes (then the chart says so).
    lang : {"en", "zh"}

    Returns
    -------
    Figure
        Bar heights are the (likelihood-ratio weighted) probability of each bin; each
        attachment and detachment line has ``gid`` ``"attach:NAME"`` / ``"detach:NAME"``.
    """
    from ipabs.risk.montecarlo_numba_fns import P_LOSS_RATE, P_ROYALTY

    lang = _lang(lang)
    _, pool = sim.per_path("the loss distribution chart")
    loss = pool[:, P_LOSS_RATE]
    w = sim.weights
    assumed = pool_balance is None and not sim.kept
    if pool_balance is None and sim.kept:
        first = sim.kept[min(sim.kept)].periods
        pool_balance = float(first["pool.balance_start"].iloc[0])
    no_balance = pool_balance is not None and not pool_balance > 0
    if no_balance or (assumed and not np.any(loss > 0) and np.any(pool[:, P_ROYALTY] > 0)):
        raise IpabsError(
            f"{sim.deal_name}: the pool has no balance to lose (royalty and income-share streams), so "
            "its loss rate is zero on every path; plot the royalty cash instead (result.plot.royalty())"
        )
    fig, (ax,) = _figure()
    ax.hist(loss, bins=bins, weights=w / w.sum(), color="0.55", label=_t("probability", lang), gid="losses")
    if sim.original_balances is not None:
        points = tranche_attachments(sim.original_balances, pool_balance)
        for (a, d), name, color in zip(points, sim.tranche_names, _colors(len(points)), strict=True):
            ax.axvline(a, color=color, lw=1.5, gid=f"attach:{name}", label=f"{name} {a:.1%}-{d:.1%}")
            ax.axvline(d, color=color, lw=1.5, ls="--", gid=f"detach:{name}")
        inner = points[(points > 0) & (points < 1)]
        top = max(float(loss.max()), float(inner.max()) if inner.size else 0.0)
        ax.set_xlim(0.0, max(top * 1.1, 1e-3))
    if assumed:
        ax.text(0.99, 0.7, _t("notes_as_pool", lang), transform=ax.transAxes, ha="right", fontsize=8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(_t("loss_x", lang))
    ax.set_ylabel(_t("probability", lang))
    ax.set_title(f"{sim.deal_name}: {_t('loss_title', lang)}")
    ax.legend(title=f"{_t('attachment', lang)}-{_t('detachment', lang)}", fontsize=8)
    return _finish(fig)


# --------------------------------------------------------------------------- 2. balances


def balances(result: RunResult, *, lang: str = "en") -> Figure:
    """Each tranche's balance after each payment date of a deterministic run (lines with gid
    ``"balance:NAME"``)."""
    lang = _lang(lang)
    p = result.periods
    fig, (ax,) = _figure()
    for name, color in zip(result.summary.index, _colors(len(result.summary)), strict=True):
        ax.plot(
            p["payment_date"],
            p[f"{name}.balance_end"],
            color=color,
            marker=".",
            label=name,
            gid=f"balance:{name}",
        )
    ax.yaxis.set_major_formatter(_amount_formatter(lang))
    ax.set_xlabel(_t("payment_date", lang))
    ax.set_ylabel(_t("balance", lang))
    ax.set_title(f"{result.deal_name} ({result.scenario}): {_t('balances_title', lang)}")
    ax.legend()
    return _finish(fig)


def balance_fan(sim: SimulationResult, *, lang: str = "en") -> Figure:
    """Percentile fans of each tranche's balance after each payment date, over the paths the
    Monte Carlo kept (``simulate(..., keep=...)``, each rerun through
    :func:`ipabs.montecarlo.run_path`).

    The run keeps per-period tables only for the paths asked for, so the fan describes those
    paths: keep a plain sample (``keep=range(200)``) for a fan of the whole distribution.
    Under importance sampling the percentiles weight each path by its likelihood ratio. The
    median lines have gid ``"median:NAME"``; the bands are 25-75% and 5-95%.
    """
    lang = _lang(lang)
    results, w = _kept(sim)
    dates = results[0].periods["payment_date"]
    fig, (ax,) = _figure()
    for k, (name, color) in enumerate(zip(sim.tranche_names, _colors(len(sim.tranche_names)), strict=True)):
        _fan(ax, dates, _column_matrix(results, f"{name}.balance_end"), w, name, color, lang, k == 0)
    ax.yaxis.set_major_formatter(_amount_formatter(lang))
    ax.set_xlabel(_t("payment_date", lang))
    ax.set_ylabel(_t("balance", lang))
    ax.set_title(f"{sim.deal_name}: {_t('balances_fan_title', lang, n=len(results))}")
    ax.legend(fontsize=8)
    return _finish(fig)


# --------------------------------------------------------------------------- 3. cash


def cash_sources_and_uses(result: RunResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-period cash in and cash out of a run (columns :data:`SOURCES` and :data:`USES`).

    Each period's sources equal its uses (cash conservation; see docs/outputs.md).
    """
    p = result.periods
    cols = p.columns
    tranches = list(result.summary.index)
    # fees are the groups with an `unpaid` column, hedges excepted (they have a counterparty leg)
    fees = [
        c[: -len(".unpaid")]
        for c in cols
        if c.endswith(".unpaid") and f"{c[: -len('.unpaid')]}.counterparty_leg" not in cols
    ]
    supports = [c[: -len(".cumulative_draw")] for c in cols if c.endswith(".cumulative_draw")]

    def total(columns: list[str]) -> pd.Series:
        return p[columns].sum(axis=1) if columns else pd.Series(0.0, index=p.index)

    sources = p[list(SOURCES)].astype(np.float64)
    uses = pd.DataFrame(
        {
            "fees": total([f"{f}.paid" for f in fees]),
            "interest_paid": total([f"{t}.interest_paid" for t in tranches]),
            "principal_paid": total([f"{t}.principal_paid" for t in tranches]),
            "residual_paid": total([f"{t}.residual_paid" for t in tranches]),
            "support_repaid": total(
                [f"{s}.{x}" for s in supports for x in ("principal_repaid", "interest_paid")]
            ),
            "deal.hedge_paid": p["deal.hedge_paid"],
            "deal.advances_repaid": p["deal.advances_repaid"],
            "deal.account_deposits": p["deal.account_deposits"],
            "deal.cash_carried_forward": p["deal.cash_carried_forward"],
        }
    )
    sources.index = uses.index = p["period"].to_numpy()
    return sources, uses


def sources_and_uses(result: RunResult, *, lang: str = "en") -> Figure:
    """Stacked bars per period: cash in above zero (collections by kind, call proceeds, support
    draws, hedge receipts, account withdrawals, cash brought forward), cash out below (fees,
    interest, principal, residual, liquidity repayments, hedge payments, account deposits, cash
    carried forward).

    Kinds that are zero in every period are left out. Each bar container carries its column
    name (:data:`SOURCES`, :data:`USES`) as the ``gid`` of its bars.
    """
    lang = _lang(lang)
    sources, uses = cash_sources_and_uses(result)
    x = sources.index.to_numpy()
    fig, (ax,) = _figure()
    # one colour per kind, none shared between cash in and cash out
    palette = colormaps["tab20"].colors
    colors = iter(palette[i % len(palette)] for i in range(len(SOURCES) + len(USES)))
    for frame, sign in ((sources, 1.0), (uses, -1.0)):
        bottom = np.zeros(len(x))
        for column in frame.columns:
            values = frame[column].to_numpy()
            color = next(colors)
            if not np.any(np.abs(values) > 1e-9):
                continue
            bars = ax.bar(x, sign * values, bottom=bottom, color=color, label=_t(column, lang), width=0.8)
            for patch in bars:
                patch.set_gid(column)
            bottom += sign * values
    ax.axhline(0.0, color="black", lw=0.8)
    ax.yaxis.set_major_formatter(_amount_formatter(lang))
    ax.set_xlabel(_t("period", lang))
    ax.set_ylabel(_t("cash_y", lang))
    ax.set_title(f"{result.deal_name} ({result.scenario}): {_t('cash_title', lang)}")
    ax.legend(fontsize=7, ncol=2)
    return _finish(fig)


# --------------------------------------------------------------------------- 4. triggers


def trigger_thresholds(deal: LoadedDeal | str | Path) -> dict[str, np.ndarray]:
    """Each trigger's threshold per period, as the waterfall compares it with ``value``.

    ``reserve_below_target`` tests against 1 when its threshold is 0; ``interest_shortfall``
    and ``put_unfunded`` against 0 (any unpaid interest, any unfunded put).
    """
    from ipabs.api import _model

    model = _model(deal)
    out = {}
    for g, trig in enumerate(model.spec.triggers):
        thr = np.array(model.cd.trg_threshold[g], dtype=np.float64)
        if trig.kind == "reserve_below_target":
            thr = np.where(thr > 0.0, thr, 1.0)
        elif trig.kind in ("interest_shortfall", "put_unfunded"):
            thr = np.zeros_like(thr)
        out[trig.name] = thr
    return out


def triggers(result: RunResult, deal: LoadedDeal | str | Path, *, lang: str = "en") -> Figure:
    """Each trigger's tested value against its threshold over time, one panel per trigger, with
    the breached dates marked.

    Parameters
    ----------
    result : RunResult
    deal : LoadedDeal, str or Path
        The deal that was run: the thresholds are deal terms, not outputs of the run.
    lang : {"en", "zh"}

    Returns
    -------
    Figure
        Per panel, lines with gid ``"value:NAME"`` and ``"threshold:NAME"`` and breach markers
        ``"breached:NAME"``. A value that cannot be computed (a DSCR with nothing due) is a gap.
    """
    lang = _lang(lang)
    names = list(result.triggers["trigger"])
    if not names:
        raise IpabsError(f"{result.deal_name} has no triggers to plot")
    thresholds = trigger_thresholds(deal)
    p = result.periods
    if list(thresholds) != names or any(len(t) != len(p) for t in thresholds.values()):
        raise IpabsError(
            f"the deal given does not match the run of {result.deal_name}: its triggers or periods differ"
        )
    kinds = dict(zip(result.triggers["trigger"], result.triggers["kind"], strict=True))
    fig, axes = _figure(len(names), height=2.6, sharex=True)
    dates = p["payment_date"]
    for ax, name in zip(axes, names, strict=True):
        value = p[f"{name}.value"].to_numpy(dtype=np.float64)
        value = np.where(np.isfinite(value), value, np.nan)
        ax.plot(dates, value, color="C0", marker=".", label=_t("value", lang), gid=f"value:{name}")
        ax.step(
            dates,
            thresholds[name],
            where="mid",
            color="C3",
            ls="--",
            label=_t("threshold", lang),
            gid=f"threshold:{name}",
        )
        hit = p[f"{name}.breached"].to_numpy() > 0
        ax.plot(
            dates[hit],
            value[hit],
            "o",
            color="C3",
            mfc="none",
            ms=8,
            label=_t("breached", lang),
            gid=f"breached:{name}",
        )
        if kinds[name] in ("cumulative_default_rate",):
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        elif kinds[name] == "interest_shortfall":
            ax.yaxis.set_major_formatter(_amount_formatter(lang))
        ax.set_title(f"{name} ({kinds[name]})", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    axes[-1].set_xlabel(_t("payment_date", lang))
    fig.suptitle(f"{result.deal_name} ({result.scenario}): {_t('triggers_title', lang)}")
    return _finish(fig)


# --------------------------------------------------------------------------- 5. sizing


def sizing_curve_data(sizing: SizingResult) -> pd.DataFrame:
    """The structures tried, sorted by enhancement: columns ``enhancement`` (share of the
    notes), ``size``, ``metric``, ``metric_se``, ``limit``, ``meets``.

    ``enhancement`` is the subordination below the tranche for ``by="tranche"`` (the tranche
    below takes up each change of size, so the notes' total stays fixed) and the reserve's
    initial balance or the deficiency cap over the notes' total otherwise.
    """
    frame = sizing.trials_frame()
    if frame.empty:
        raise IpabsError("the sizing tried no structure")
    names = list(sizing.balances)
    total = sum(sizing.balances.values())
    if sizing.by == "tranche":
        k = names.index(sizing.tranche)
        below = sum(sizing.balances[n] for n in names[k + 1 :])
        enhancement = (below + sizing.balances[sizing.tranche] - frame["size"]) / total
    else:
        enhancement = frame["size"] / total
    frame.insert(0, "enhancement", enhancement)
    return frame.sort_values("enhancement", kind="stable").reset_index(drop=True)


def sizing_curve(sizing: SizingResult, *, lang: str = "en") -> Figure:
    """The tranche's metric (with its 95% interval) against the credit enhancement of each
    structure tried, the rating table's limit, and the size found.

    Lines: ``gid`` ``"metric"`` (the structures tried), ``"limit"``, and ``"found"`` at the
    enhancement found (absent when no structure in range meets the target).
    """
    lang = _lang(lang)
    data = sizing_curve_data(sizing)
    fig, (ax,) = _figure()
    x = data["enhancement"].to_numpy(dtype=np.float64)
    tried = ax.errorbar(
        x,
        data["metric"].to_numpy(dtype=np.float64),
        yerr=1.96 * data["metric_se"].to_numpy(dtype=np.float64),
        marker="o",
        ms=4,
        capsize=2,
        label=_t("tried", lang),
    )
    tried.lines[0].set_gid("metric")
    ax.plot(
        x,
        data["limit"].to_numpy(dtype=np.float64),
        color="C3",
        ls="--",
        label=_t("target", lang, rating=sizing.rating),
        gid="limit",
    )
    if sizing.size is not None:
        found = data.loc[data["size"] == sizing.size, "enhancement"].iloc[0]
        ax.axvline(found, color="C2", label=f"{_t('found', lang)}: {found:.2%}", gid="found")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(_t(f"sizing_x_{sizing.by}", lang, tranche=sizing.tranche, name=sizing.target_name))
    ax.set_ylabel(f"{sizing.tranche}: {_t(sizing.criterion, lang)}")
    ax.set_title(_t("sizing_title", lang, tranche=sizing.tranche, rating=sizing.rating))
    ax.legend(fontsize=8)
    return _finish(fig)


# --------------------------------------------------------------------------- 6. sweep heatmap


def _format(value: float, share: bool) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if not share else f"{value * 100:.3g}%"


def _tick(value: Any) -> str:
    """A swept value as the sweep prints it: amounts grouped (``95,000,000``), rates as given."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:g}"
    return str(value)


def sensitivity_heatmap(
    table: pd.DataFrame,
    *,
    x: str | None = None,
    y: str | None = None,
    metric: str | None = None,
    tranche: str | None = None,
    where: Mapping[str, Any] | None = None,
    lang: str = "en",
) -> Figure:
    """A heatmap of one tranche's metric over two swept parameters of a sweep table.

    Parameters
    ----------
    table : DataFrame
        What :func:`ipabs.analytics.sweep.sweep` returns (or its CSV read back): the swept
        parameters are the columns before ``tranche``.
    x, y : str, optional
        Parameters on the horizontal and vertical axes (default: the second and the first
        swept).
    metric : str, optional
        Metric column (default ``expected_loss`` for a Monte Carlo sweep, ``loss_pct`` for a
        deterministic one).
    tranche : str, optional
        Default: the first tranche of the table.
    where : mapping, optional
        Values of the other swept parameters when more than two were swept.
    lang : {"en", "zh"}

    Returns
    -------
    Figure
        The image's array is the pivoted metric (rows ``y`` ascending, columns ``x``
        ascending); each cell is written out.
    """
    lang = _lang(lang)
    if "tranche" not in table.columns:
        raise IpabsError("not a sweep table: it has no `tranche` column")
    swept = list(table.columns[: list(table.columns).index("tranche")])
    if len(swept) < 2:
        raise IpabsError(f"a heatmap needs two swept parameters; this sweep has {len(swept)}: sweep another")
    y = y or swept[0]
    x = x or (swept[1] if swept[1] != y else swept[0])
    for p in (x, y):
        if p not in swept:
            raise IpabsError(f"{p!r} was not swept; swept parameters: {', '.join(swept)}")
    if x == y:
        raise IpabsError("x and y must be two different swept parameters")
    mc = "expected_loss" in table.columns
    metric = metric or ("expected_loss" if mc else "loss_pct")
    if metric not in table.columns or metric in swept or metric == "tranche":
        raise IpabsError(f"no metric {metric!r} in the sweep table")
    tranches = list(dict.fromkeys(table["tranche"]))
    tranche = tranche or tranches[0]
    if tranche not in tranches:
        raise IpabsError(
            f"no tranche {tranche!r} in the sweep table; tranches: {', '.join(map(str, tranches))}"
        )
    rows = table[table["tranche"] == tranche]
    where = dict(where or {})
    others = [p for p in swept if p not in (x, y)]
    missing = [p for p in others if p not in where]
    if missing:
        raise IpabsError(f"more than two parameters were swept: fix {', '.join(missing)} with where={{...}}")
    for p, v in where.items():
        if p not in others:
            raise IpabsError(f"where: {p!r} is not one of the other swept parameters ({', '.join(others)})")
        rows = rows[rows[p] == v]
    if rows.empty:
        raise IpabsError(f"no rows of the sweep table match where={where}")
    grid = rows.pivot(index=y, columns=x, values=metric).sort_index().sort_index(axis=1)
    values = grid.to_numpy(dtype=np.float64)
    share = metric in _SHARE_METRICS
    fig, (ax,) = _figure(height=5.0)
    image = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis")
    image.set_gid("heatmap")
    ax.set_xticks(range(len(grid.columns)), [_tick(v) for v in grid.columns])
    ax.set_yticks(range(len(grid.index)), [_tick(v) for v in grid.index])
    finite = values[np.isfinite(values)]
    middle = 0.5 * (finite.min() + finite.max()) if finite.size else 0.0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(
                j,
                i,
                _format(values[i, j], share),
                ha="center",
                va="center",
                fontsize=8,
                color="black" if values[i, j] > middle else "white",
            )
    bar = fig.colorbar(image, ax=ax)
    if share:
        bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    label = _METRIC_LABELS.get(metric, (metric, metric))[LANGS.index(lang)]
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fixed = ", ".join(f"{p}={v}" for p, v in where.items())
    deal = table.attrs.get("deal")
    title = _t("heatmap_title", lang, tranche=tranche, metric=label)
    ax.set_title(" | ".join(str(s) for s in (deal, title, fixed) if s))
    return _finish(fig)


# --------------------------------------------------------------------------- 7. default timing


def default_timing_data(results: Sequence[RunResult], weights: np.ndarray | None = None) -> pd.Series:
    """Share of the defaulted balance falling in each period, over runs (paths) weighted by
    ``weights`` (index: period). All zeros when nothing defaulted."""
    defaults = _column_matrix(results, "pool.defaults")
    w = np.ones(len(results)) if weights is None else np.asarray(weights, dtype=np.float64)
    per_period = w @ defaults
    total = per_period.sum()
    share = per_period / total if total > 0 else np.zeros_like(per_period)
    return pd.Series(share, index=results[0].periods["period"].to_numpy(), name="share")


def _timing_figure(share: pd.Series, title: str, lang: str) -> Figure:
    fig, (ax,) = _figure()
    bars = ax.bar(share.index, share.to_numpy(), color="C3", width=0.8)
    for patch in bars:
        patch.set_gid("timing")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(_t("period", lang))
    ax.set_ylabel(_t("timing_y", lang))
    ax.set_title(title)
    return _finish(fig)


def default_timing(sim: SimulationResult, *, lang: str = "en") -> Figure:
    """Which periods defaults fall in: the share of the defaulted balance in each period, over
    the paths the Monte Carlo kept (weighted by their likelihood ratios).

    The run reduces every path to its outcomes and keeps per-period tables only for the paths
    asked for (``simulate(..., keep=range(200))``), so the chart describes those paths.
    Bars: gid ``"timing"``.
    """
    lang = _lang(lang)
    results, w = _kept(sim)
    share = default_timing_data(results, w)
    title = f"{sim.deal_name}: {_t('timing_title', lang)} ({_t('timing_paths', lang, n=len(results))})"
    return _timing_figure(share, title, lang)


def run_default_timing(result: RunResult, *, lang: str = "en") -> Figure:
    """Share of a deterministic run's defaulted balance in each period (bars, gid ``"timing"``)."""
    lang = _lang(lang)
    title = f"{result.deal_name} ({result.scenario}): {_t('timing_title', lang)}"
    return _timing_figure(default_timing_data([result]), title, lang)


# --------------------------------------------------------------------------- 8. royalties


def _check_royalty(values: np.ndarray, deal_name: str) -> None:
    if not np.any(values > 0):
        raise IpabsError(f"{deal_name} collects no royalty or income-share cash: nothing to plot")


def royalty(result: RunResult, *, lang: str = "en") -> Figure:
    """Royalty and income-share cash collected per period of a deterministic run (line, gid
    ``"royalty"``)."""
    lang = _lang(lang)
    p = result.periods
    _check_royalty(p["pool.royalty"].to_numpy(), result.deal_name)
    fig, (ax,) = _figure()
    ax.plot(
        p["payment_date"], p["pool.royalty"], marker=".", color="C1", label=result.scenario, gid="royalty"
    )
    ax.yaxis.set_major_formatter(_amount_formatter(lang))
    ax.set_xlabel(_t("payment_date", lang))
    ax.set_ylabel(_t("royalty_y", lang))
    ax.set_title(f"{result.deal_name} ({result.scenario}): {_t('royalty_title', lang)}")
    ax.legend()
    return _finish(fig)


def royalty_fan(sim: SimulationResult, *, lang: str = "en") -> Figure:
    """Percentile fan of the royalty and income-share cash collected per period over the paths
    the Monte Carlo kept (``simulate(..., keep=range(200))``; weighted by their likelihood
    ratios). Median line gid ``"median:royalty"``."""
    lang = _lang(lang)
    results, w = _kept(sim)
    values = _column_matrix(results, "pool.royalty")
    _check_royalty(values, sim.deal_name)
    fig, (ax,) = _figure()
    _fan(ax, results[0].periods["payment_date"], values, w, "royalty", "C1", lang, True)
    ax.yaxis.set_major_formatter(_amount_formatter(lang))
    ax.set_xlabel(_t("payment_date", lang))
    ax.set_ylabel(_t("royalty_y", lang))
    ax.set_title(f"{sim.deal_name}: {_t('royalty_fan_title', lang, n=len(results))}")
    ax.legend(fontsize=8)
    return _finish(fig)


# --------------------------------------------------------------------------- accessors


class RunPlots:
    """``RunResult.plot``: the charts of a deterministic run."""

    def __init__(self, result: RunResult) -> None:
        self._result = result

    def balances(self, *, lang: str = "en") -> Figure:
        """See :func:`balances`."""
        return balances(self._result, lang=lang)

    def sources_and_uses(self, *, lang: str = "en") -> Figure:
        """See :func:`sources_and_uses`."""
        return sources_and_uses(self._result, lang=lang)

    def triggers(self, deal: LoadedDeal | str | Path, *, lang: str = "en") -> Figure:
        """See :func:`triggers`."""
        return triggers(self._result, deal, lang=lang)

    def default_timing(self, *, lang: str = "en") -> Figure:
        """See :func:`run_default_timing`."""
        return run_default_timing(self._result, lang=lang)

    def royalty(self, *, lang: str = "en") -> Figure:
        """See :func:`royalty`."""
        return royalty(self._result, lang=lang)


class SimulationPlots:
    """``SimulationResult.plot``: the charts of a Monte Carlo run."""

    def __init__(self, sim: SimulationResult) -> None:
        self._sim = sim

    def loss_distribution(
        self, *, bins: int = 50, pool_balance: float | None = None, lang: str = "en"
    ) -> Figure:
        """See :func:`loss_distribution`."""
        return loss_distribution(self._sim, bins=bins, pool_balance=pool_balance, lang=lang)

    def balances(self, *, lang: str = "en") -> Figure:
        """See :func:`balance_fan`."""
        return balance_fan(self._sim, lang=lang)

    def default_timing(self, *, lang: str = "en") -> Figure:
        """See :func:`default_timing`."""
        return default_timing(self._sim, lang=lang)

    def royalty(self, *, lang: str = "en") -> Figure:
        """See :func:`royalty_fan`."""
        return royalty_fan(self._sim, lang=lang)


class SizingPlots:
    """``SizingResult.plot``: the sizing curve."""

    def __init__(self, sizing: SizingResult) -> None:
        self._sizing = sizing

    def curve(self, *, lang: str = "en") -> Figure:
        """See :func:`sizing_curve`."""
        return sizing_curve(self._sizing, lang=lang)
