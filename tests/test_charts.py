"""Charts (ipabs.report): each chart's data matches the result it reads, labels follow the
language asked for, and every chart renders to a PNG. No test needs a CJK font."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import ipabs
from ipabs.analytics.sizing import SizingResult, Trial, size_structure
from ipabs.analytics.sweep import sweep
from ipabs.errors import IpabsError
from ipabs.montecarlo import SimulationResult, simulate
from ipabs.report import charts, fonts
from ipabs.results import RunResult, conservation_residual
from ipabs.risk.montecarlo_numba_fns import P_LOSS_RATE

ROOT = Path(__file__).resolve().parents[1]
CAOHEJING = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
ROYALTY = ROOT / "scenarios" / "royalty_dscr.yaml"
HOSPITAL = ROOT / "scenarios" / "hospital_income_share.yaml"
KEEP = 30


@pytest.fixture(scope="module")
def deal() -> Any:
    return ipabs.load_deal(CAOHEJING)


@pytest.fixture(scope="module")
def run(deal: Any) -> RunResult:
    return ipabs.run(deal, "cdr_stress")


@pytest.fixture(scope="module")
def sim(deal: Any) -> SimulationResult:
    return simulate(deal, paths=2_000, seed=3, keep=range(KEEP), threads=1)


@pytest.fixture(scope="module")
def royalty_deal() -> Any:
    return ipabs.load_deal(ROYALTY)


@pytest.fixture(scope="module")
def royalty_sim(royalty_deal: Any) -> SimulationResult:
    return simulate(royalty_deal, paths=KEEP, seed=5, keep=range(KEEP), threads=1)


@pytest.fixture(scope="module")
def sweep_table(deal: Any) -> pd.DataFrame:
    settings = {"risk.pd_multiplier": [1, 2], "tranches.senior.balance": ["90m", "95m"]}
    return sweep(deal, settings, paths=300, seed=1, threads=1)


@pytest.fixture(scope="module")
def sizing(deal: Any) -> SizingResult:
    return size_structure(
        deal, "senior", "A2", paths=300, tolerance=5e6, threads=1, importance_sampling=False
    )


@pytest.fixture
def no_cjk_font(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without any CJK font, not yet warned."""
    monkeypatch.setattr(fonts, "cjk_font", lambda: None)
    monkeypatch.setattr(fonts, "_warned", False)


@pytest.fixture
def cjk_font(monkeypatch: pytest.MonkeyPatch) -> str:
    """A machine with a CJK font (only its name: these tests do not render)."""
    monkeypatch.setattr(fonts, "cjk_font", lambda: "Noto Sans CJK SC")
    return "Noto Sans CJK SC"


def _line(fig: Figure, gid: str) -> Line2D:
    found = [a for a in fig.findobj(Line2D) if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {len(found)} lines"
    return found[0]


def _bars(fig: Figure, gid: str) -> np.ndarray:
    """Signed heights of the bars with ``gid``, by x position."""
    ax = fig.axes[0]
    patches = sorted((p for p in ax.patches if p.get_gid() == gid), key=lambda p: p.get_x())
    return np.array([p.get_height() for p in patches])


# --------------------------------------------------------------------------- 1. pool loss


def test_attachment_points_hand_computed() -> None:
    # notes 80 / 15 / 5 over a pool of 100: hard enhancement 20%, 5% and 0%
    points = charts.tranche_attachments([80.0, 15.0, 5.0])
    np.testing.assert_allclose(points, [[0.2, 1.0], [0.05, 0.2], [0.0, 0.05]])
    # over-collateralised: notes 80 / 10 over a pool of 100 leave 10% below the junior notes
    points = charts.tranche_attachments([80.0, 10.0], pool_balance=100.0)
    np.testing.assert_allclose(points, [[0.2, 1.0], [0.1, 0.2]])
    with pytest.raises(IpabsError, match="positive"):
        charts.tranche_attachments([1.0], pool_balance=0.0)


def test_loss_distribution_data(sim: SimulationResult, deal: Any) -> None:
    fig = sim.plot.loss_distribution(bins=20)
    ax = fig.axes[0]
    loss = sim.pool_outcomes[:, P_LOSS_RATE]
    expected, _ = np.histogram(loss, bins=20)
    heights = np.array([p.get_height() for p in ax.patches if p.get_gid() == "losses"])
    np.testing.assert_allclose(heights, expected / len(loss))
    # 95m senior over a 5m sub and a 100m pool of loans (the deal's terms)
    pool = sum(float(loan.balance) for p in deal.spec.pools for loan in p.loans)
    senior, sub = (float(t.balance) for t in deal.spec.tranches)
    assert _line(fig, "attach:senior").get_xdata()[0] == pytest.approx(1 - senior / pool)
    assert _line(fig, "detach:senior").get_xdata()[0] == pytest.approx(1.0)
    assert _line(fig, "attach:sub").get_xdata()[0] == pytest.approx(max(0.0, 1 - (senior + sub) / pool))
    assert _line(fig, "detach:sub").get_xdata()[0] == pytest.approx(1 - senior / pool)
    assert ax.get_xlabel() == "pool loss (share of the original pool balance)"
    assert "Pool loss distribution" in ax.get_title()


def test_loss_distribution_without_kept_paths_says_what_it_assumes(deal: Any) -> None:
    bare = simulate(deal, paths=200, seed=3, threads=1)
    fig = bare.plot.loss_distribution(bins=10)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("pool equal to the notes" in t for t in texts)
    # an explicit pool balance is taken as given
    fig = bare.plot.loss_distribution(bins=10, pool_balance=200e6)
    assert _line(fig, "attach:senior").get_xdata()[0] == pytest.approx(1 - 95e6 / 200e6)


def test_no_loss_distribution_for_a_royalty_pool(royalty_deal: Any, royalty_sim: SimulationResult) -> None:
    with pytest.raises(IpabsError, match="no balance to lose"):
        royalty_sim.plot.loss_distribution()
    with pytest.raises(IpabsError, match="no balance to lose"):
        simulate(royalty_deal, paths=20, seed=5, threads=1).plot.loss_distribution()


# --------------------------------------------------------------------------- 2. balances


def test_balances_lines_are_the_runs_balances(run: RunResult) -> None:
    fig = run.plot.balances()
    for name in run.summary.index:
        line = _line(fig, f"balance:{name}")
        np.testing.assert_array_equal(line.get_ydata(), run.periods[f"{name}.balance_end"].to_numpy())
    assert fig.axes[0].get_ylabel() == "balance"


def test_balance_fan_is_the_kept_paths_percentiles(sim: SimulationResult) -> None:
    fig = sim.plot.balances()
    for name in sim.tranche_names:
        paths = np.vstack([sim.kept[i].periods[f"{name}.balance_end"].to_numpy() for i in range(KEEP)])
        np.testing.assert_allclose(_line(fig, f"median:{name}").get_ydata(), np.median(paths, axis=0))
    assert f"{KEEP} kept paths" in fig.axes[0].get_title()


def test_weighted_quantiles_match_numpy() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(40, 3))
    w = rng.uniform(0.1, 3.0, size=40)
    levels = [0.05, 0.5, 0.95]
    ours = charts.weighted_quantiles(values, w, levels)
    for j in range(3):
        ref = np.quantile(values[:, j], levels, method="inverted_cdf", weights=w)
        np.testing.assert_allclose(ours[:, j], ref)
    np.testing.assert_allclose(
        charts.weighted_quantiles(values, np.ones(40), levels), np.quantile(values, levels, axis=0)
    )


def test_fans_need_kept_paths(deal: Any) -> None:
    bare = simulate(deal, paths=50, seed=3, threads=1)
    for chart in (bare.plot.balances, bare.plot.default_timing, bare.plot.royalty):
        with pytest.raises(IpabsError, match=r"keep=range"):
            chart()


# --------------------------------------------------------------------------- 3. cash


@pytest.mark.parametrize("path, scenario", [(CAOHEJING, "cdr_stress"), (ROYALTY, "licensee_default")])
def test_sources_and_uses_bars(path: Path, scenario: str) -> None:
    result = ipabs.run(ipabs.load_deal(path), scenario)
    fig = result.plot.sources_and_uses()
    p = result.periods
    n = len(p)
    cash_in = np.zeros(n)
    cash_out = np.zeros(n)
    for gid in charts.SOURCES:
        heights = _bars(fig, gid)
        if heights.size:
            np.testing.assert_allclose(heights, p[gid].to_numpy())
            cash_in += heights
        else:  # a kind left out is zero throughout
            assert np.allclose(p[gid], 0.0)
    for gid in charts.USES:
        heights = _bars(fig, gid)
        if heights.size:
            assert np.all(heights <= 1e-9)
            cash_out -= heights
    # what comes in goes out: the deal's own conservation check
    assert np.abs(conservation_residual(result.tables)).max() < 1e-6
    np.testing.assert_allclose(cash_in, cash_out, rtol=1e-9, atol=1e-6)
    tranches = list(result.summary.index)
    np.testing.assert_allclose(
        -_bars(fig, "interest_paid"), p[[f"{t}.interest_paid" for t in tranches]].sum(axis=1).to_numpy()
    )


# --------------------------------------------------------------------------- 4. triggers


def test_triggers_against_thresholds(run: RunResult, deal: Any) -> None:
    fig = run.plot.triggers(deal)
    p = run.periods
    spec = {t.name: t for t in deal.spec.triggers}
    assert spec["cumulative_default_3pct"].threshold == pytest.approx(0.03)
    np.testing.assert_allclose(_line(fig, "threshold:cumulative_default_3pct").get_ydata(), 0.03)
    np.testing.assert_allclose(_line(fig, "threshold:senior_interest_shortfall").get_ydata(), 0.0)
    for name in spec:
        np.testing.assert_allclose(_line(fig, f"value:{name}").get_ydata(), p[f"{name}.value"].to_numpy())
        hits = _line(fig, f"breached:{name}").get_xdata()
        assert list(pd.to_datetime(hits)) == list(p.loc[p[f"{name}.breached"] > 0, "payment_date"])
    # the stressed run breaches the 3% cumulative default test
    assert len(_line(fig, "breached:cumulative_default_3pct").get_xdata()) > 0


def test_dscr_thresholds_and_gaps(royalty_deal: Any) -> None:
    result = ipabs.run(royalty_deal, "licensee_default")
    fig = result.plot.triggers(royalty_deal)
    for trig in royalty_deal.spec.triggers:
        expected = trig.threshold if isinstance(trig.threshold, float) else trig.threshold[-1]
        assert _line(fig, f"threshold:{trig.name}").get_ydata()[-1] == pytest.approx(expected)
        values = result.periods[f"{trig.name}.value"].to_numpy()
        drawn = _line(fig, f"value:{trig.name}").get_ydata()
        finite = np.isfinite(values)
        np.testing.assert_allclose(drawn[finite], values[finite])
        assert np.all(np.isnan(drawn[~finite]))


def test_triggers_need_the_matching_deal(run: RunResult) -> None:
    with pytest.raises(IpabsError, match="does not match"):
        run.plot.triggers(ROYALTY)
    bare = ipabs.run(ipabs.load_deal(ROOT / "scenarios" / "patent_sublicence_gz.yaml"))
    with pytest.raises(IpabsError, match="no triggers"):
        bare.plot.triggers(ROOT / "scenarios" / "patent_sublicence_gz.yaml")


# --------------------------------------------------------------------------- 5. sizing


def _hand_sizing(by: str = "tranche", size: float | None = 80.0) -> SizingResult:
    trials = [
        Trial(0.0, 0.0, 0.0, 0.001, 1.0, True),
        Trial(100.0, 0.02, 0.001, 0.0012, 1.0, False),
        Trial(50.0, 0.0001, 0.0001, 0.0011, 1.0, True),
        Trial(80.0, 0.0009, 0.0002, 0.0011, 1.0, True),
    ]
    return SizingResult(
        tranche="senior",
        rating="A2",
        criterion="expected_loss",
        by=by,
        target_name="senior" if by == "tranche" else "reserve",
        size=size,
        balances={"senior": 80.0, "sub": 20.0} if by == "tranche" else {"senior": 95.0, "sub": 5.0},
        subordination=0.2 if by == "tranche" else 0.05,
        metric=0.0009,
        metric_se=0.0002,
        limit=0.0011,
        horizon_years=1.0,
        paths=100,
        seed=0,
        table="t",
        trials=trials,
    )


def test_sizing_curve_by_tranche() -> None:
    fig = _hand_sizing().plot.curve()
    # senior + sub = 100 throughout: a senior of s leaves 100 - s below it
    x = _line(fig, "metric").get_xdata()
    np.testing.assert_allclose(x, [0.0, 0.2, 0.5, 1.0])
    np.testing.assert_allclose(_line(fig, "metric").get_ydata(), [0.02, 0.0009, 0.0001, 0.0])
    np.testing.assert_allclose(_line(fig, "limit").get_ydata(), [0.0012, 0.0011, 0.0011, 0.001])
    assert _line(fig, "found").get_xdata()[0] == pytest.approx(0.2)  # the result's subordination
    assert fig.axes[0].get_xlabel() == "subordination below senior (share of the notes)"


def test_sizing_curve_by_reserve_and_not_found() -> None:
    fig = _hand_sizing("reserve", None).plot.curve()
    np.testing.assert_allclose(_line(fig, "metric").get_xdata(), [0.0, 0.5, 0.8, 1.0])
    assert not [a for a in fig.findobj(Line2D) if a.get_gid() == "found"]


def test_sizing_curve_of_a_real_sizing(sizing: SizingResult) -> None:
    fig = sizing.plot.curve()
    found = _line(fig, "found").get_xdata()[0]
    assert found == pytest.approx(sizing.subordination)
    assert len(_line(fig, "metric").get_xdata()) == len(sizing.trials)


# --------------------------------------------------------------------------- 6. heatmap


def _grid_table(extra: bool = False) -> pd.DataFrame:
    rows = []
    for c in [1, 2] if extra else [None]:
        for a in [0.1, 0.2, 0.3]:
            for b in [90e6, 95e6]:
                for t in ("senior", "sub"):
                    row = {"a": a, "b": b}
                    if extra:
                        row["c"] = c
                    rows.append({**row, "tranche": t, "expected_loss": a * b / 1e9 + (t == "sub") + (c or 0)})
    return pd.DataFrame(rows)


def test_heatmap_cells_are_the_pivoted_metric() -> None:
    table = _grid_table()
    fig = charts.sensitivity_heatmap(table, tranche="senior")
    image = next(a for a in fig.axes[0].images if a.get_gid() == "heatmap")
    expected = np.array([[a * b / 1e9 for b in (90e6, 95e6)] for a in (0.1, 0.2, 0.3)])
    np.testing.assert_allclose(image.get_array(), expected)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("b", "a")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["90,000,000", "95,000,000"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.1", "0.2", "0.3"]
    cells = {t.get_text() for t in ax.texts}
    assert f"{expected[0, 0] * 100:.3g}%" in cells
    swapped = charts.sensitivity_heatmap(table, x="a", y="b", tranche="sub")
    np.testing.assert_allclose(swapped.axes[0].images[0].get_array(), expected.T + 1)


def test_heatmap_with_three_parameters_needs_where() -> None:
    table = _grid_table(extra=True)
    with pytest.raises(IpabsError, match="fix c"):
        charts.sensitivity_heatmap(table)
    fig = charts.sensitivity_heatmap(table, where={"c": 2})
    expected = np.array([[a * b / 1e9 + 2 for b in (90e6, 95e6)] for a in (0.1, 0.2, 0.3)])
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), expected)
    with pytest.raises(IpabsError, match="two swept parameters"):
        charts.sensitivity_heatmap(table.drop(columns=["b", "c"]))
    with pytest.raises(IpabsError, match="no metric"):
        charts.sensitivity_heatmap(table, where={"c": 2}, metric="nope")


def test_heatmap_of_a_real_sweep(sweep_table: pd.DataFrame) -> None:
    fig = charts.sensitivity_heatmap(sweep_table)
    senior = sweep_table[sweep_table["tranche"] == "senior"]
    grid = senior.pivot(index="risk.pd_multiplier", columns="tranches.senior.balance", values="expected_loss")
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), grid.to_numpy())


# --------------------------------------------------------------------------- 7. default timing


def test_default_timing_is_the_kept_paths_share(sim: SimulationResult) -> None:
    fig = sim.plot.default_timing()
    defaults = np.vstack([sim.kept[i].periods["pool.defaults"].to_numpy() for i in range(KEEP)])
    assert defaults.sum() > 0, "pick a seed whose kept paths see defaults"
    expected = defaults.sum(axis=0) / defaults.sum()
    np.testing.assert_allclose(_bars(fig, "timing"), expected)
    assert _bars(fig, "timing").sum() == pytest.approx(1.0)


def test_default_timing_of_a_run(run: RunResult) -> None:
    d = run.periods["pool.defaults"].to_numpy()
    np.testing.assert_allclose(_bars(run.plot.default_timing(), "timing"), d / d.sum())


# --------------------------------------------------------------------------- 8. royalties


def test_royalty_fan_is_the_kept_paths_percentiles(royalty_sim: SimulationResult) -> None:
    fig = royalty_sim.plot.royalty()
    paths = np.vstack([royalty_sim.kept[i].periods["pool.royalty"].to_numpy() for i in range(KEEP)])
    np.testing.assert_allclose(_line(fig, "median:royalty").get_ydata(), np.median(paths, axis=0))
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() == pytest.approx(np.quantile(paths, 0.95, axis=0).max())


def test_royalty_line_of_a_run_and_deals_without_royalties(run: RunResult) -> None:
    hospital = ipabs.run(ipabs.load_deal(HOSPITAL))
    fig = hospital.plot.royalty()
    np.testing.assert_array_equal(
        _line(fig, "royalty").get_ydata(), hospital.periods["pool.royalty"].to_numpy()
    )
    with pytest.raises(IpabsError, match="no royalty"):
        run.plot.royalty()


# --------------------------------------------------------------------------- language and fonts


def test_chinese_labels(cjk_font: str, sim: SimulationResult, run: RunResult) -> None:
    fig = sim.plot.loss_distribution(lang="zh")
    ax = fig.axes[0]
    assert "资产池损失分布" in ax.get_title()
    assert ax.get_xlabel() == "资产池损失率（占初始资产池余额）"
    assert ax.title.get_fontfamily()[0] == cjk_font
    fig = run.plot.sources_and_uses(lang="zh")
    labels = {t.get_text() for t in fig.axes[0].get_legend().get_texts()}
    assert {"违约回收", "证券本金"} <= labels
    assert "触发事件" in run.plot.triggers(CAOHEJING, lang="zh").get_suptitle()


def test_without_a_cjk_font_chinese_falls_back_to_english_with_one_warning(
    no_cjk_font: None, sim: SimulationResult
) -> None:
    with pytest.warns(fonts.FontWarning, match="fonts-noto-cjk"):
        fig = sim.plot.loss_distribution(lang="zh")
    assert "Pool loss distribution" in fig.axes[0].get_title()
    fig = sim.plot.loss_distribution(lang="zh")  # once only: warnings are errors here
    assert fig.axes[0].get_xlabel()


def test_unknown_language(run: RunResult) -> None:
    with pytest.raises(IpabsError, match="lang must be one of en, zh"):
        run.plot.balances(lang="fr")


def test_cjk_detection() -> None:
    assert fonts.has_cjk(["senior", "优先级"])
    assert not fonts.has_cjk(["senior", "sub", "5.0%"])


def test_lower_layers_do_not_import_the_report_package() -> None:
    code = (
        "import sys, ipabs, ipabs.montecarlo, ipabs.analytics.sizing, ipabs.analytics.sweep, ipabs.cli;"
        "assert not [m for m in sys.modules if m.startswith('ipabs.report')], 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --------------------------------------------------------------------------- rendering

CHARTS: dict[str, Callable[[dict[str, Any]], Figure]] = {
    "loss_distribution": lambda r: r["sim"].plot.loss_distribution(),
    "balances": lambda r: r["run"].plot.balances(),
    "balance_fan": lambda r: r["sim"].plot.balances(),
    "sources_and_uses": lambda r: r["run"].plot.sources_and_uses(),
    "triggers": lambda r: r["run"].plot.triggers(r["deal"]),
    "sizing_curve": lambda r: r["sizing"].plot.curve(),
    "heatmap": lambda r: charts.sensitivity_heatmap(r["sweep"]),
    "default_timing": lambda r: r["sim"].plot.default_timing(),
    "royalty_fan": lambda r: r["royalty_sim"].plot.royalty(),
}


@pytest.mark.parametrize("name", list(CHARTS))
def test_renders_to_png(
    name: str,
    tmp_path: Path,
    deal: Any,
    run: RunResult,
    sim: SimulationResult,
    royalty_sim: SimulationResult,
    sweep_table: pd.DataFrame,
    sizing: SizingResult,
) -> None:
    results = {
        "deal": deal,
        "run": run,
        "sim": sim,
        "royalty_sim": royalty_sim,
        "sweep": sweep_table,
        "sizing": sizing,
    }
    fig = CHARTS[name](results)
    assert isinstance(fig, Figure)
    out = tmp_path / f"{name}.png"
    fig.savefig(out, dpi=50)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2_000


def test_every_chart_is_documented() -> None:
    text = (ROOT / "docs" / "charts.md").read_text(encoding="utf-8")
    for accessor, prefix in (
        (charts.RunPlots, "run"),
        (charts.SimulationPlots, "sim"),
        (charts.SizingPlots, "sizing"),
    ):
        for name in (n for n in vars(accessor) if not n.startswith("_")):
            assert f"{prefix}.plot.{name}(" in text, f"{prefix}.plot.{name} is not documented"
    assert "charts.sensitivity_heatmap(table" in text


def test_a_notebook_shows_the_figure_as_an_image(run: RunResult, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from IPython.core.formatters import PNGFormatter

    png = PNGFormatter()
    shell = SimpleNamespace(display_formatter=SimpleNamespace(formatters={"image/png": png}))
    monkeypatch.setitem(sys.modules, "IPython", SimpleNamespace(get_ipython=lambda: shell))
    fig = run.plot.balances()
    assert png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
