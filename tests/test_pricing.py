"""Pricing: price, yield, spreads, durations, accrued interest, par coupon, price-yield tables.

Yields, durations, convexity and Z-spreads are checked against QuantLib's ``CashFlows``
functions on every shipped deal's tranches, and against closed forms on a bullet deal.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest

import ipabs
from ipabs.analytics.curve import Curve
from ipabs.analytics.pricing import format_price_table, price, price_table, tranche_flows
from ipabs.cli import main
from ipabs.deal.curve import load_curve
from ipabs.errors import DealError, IpabsError

ql = pytest.importorskip("QuantLib")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
BULLET = ROOT / "tests" / "deals" / "bullet.yaml"
MINIMAL = ROOT / "tests" / "deals" / "minimal.yaml"

DC = ql.Actual365Fixed()


def _qdate(d: dt.date) -> ql.Date:
    return ql.Date(d.day, d.month, d.year)


def _leg(fl: ipabs.analytics.pricing.TrancheFlows, settle: dt.date) -> tuple[list, np.ndarray]:
    keep = [i for i, d in enumerate(fl.dates) if d > settle and fl.cash[i] != 0.0]
    return [ql.SimpleCashFlow(float(fl.cash[i]), _qdate(fl.dates[i])) for i in keep], fl.cash[keep]


def _cases() -> list[tuple[Path, str, str]]:
    out = []
    for path in SHIPPED:
        deal = ipabs.load_deal(path)
        for scenario in deal.spec.scenarios:
            out.extend((path, t.name, scenario) for t in deal.spec.tranches)
    return out


@pytest.mark.parametrize(("path", "tranche", "scenario"), _cases(), ids=lambda x: getattr(x, "stem", x))
def test_yield_duration_convexity_match_quantlib(path: Path, tranche: str, scenario: str) -> None:
    deal = ipabs.load_deal(path)
    fl = tranche_flows(deal, tranche, scenario)
    closing = fl.closing
    mid = closing + dt.timedelta(days=100)
    for settle in (closing, mid):
        if settle >= fl.dates[-1] or not any(
            d > settle and c > 0 for d, c in zip(fl.dates, fl.cash, strict=True)
        ):
            continue
        leg, _ = _leg(fl, settle)
        for quote in (92.5, 100.0, 104.0):
            try:
                r = price(deal, tranche, price=quote, scenario=scenario, settle=settle)
            except IpabsError:  # nothing outstanding on that date
                continue
            dirty = r.dirty_price / 100.0 * r.current_balance
            qs = _qdate(settle)
            try:
                y = ql.CashFlows.yieldRate(
                    leg, dirty, DC, ql.Compounded, ql.Annual, False, qs, qs, 1e-15, 1000, 0.05
                )
            except RuntimeError:  # QuantLib cannot bracket yields near -100% (a near-total loss)
                assert r.yield_ < -0.5
            else:
                assert r.yield_ == pytest.approx(y, abs=1e-10)
            # the yield is the root: QuantLib's NPV at it is the dirty price
            rate = ql.InterestRate(r.yield_, DC, ql.Compounded, ql.Annual)
            npv = ql.CashFlows.npv(leg, rate, False, qs, qs)
            assert npv == pytest.approx(dirty, rel=1e-10)
            yq = (r.yield_, DC, ql.Compounded, ql.Annual)
            mac = ql.CashFlows.duration(leg, *yq, ql.Duration.Macaulay, False, qs, qs)
            mod = ql.CashFlows.duration(leg, *yq, ql.Duration.Modified, False, qs, qs)
            conv = ql.CashFlows.convexity(leg, *yq, False, qs, qs)
            assert r.macaulay_duration == pytest.approx(mac, abs=1e-8)
            assert r.modified_duration == pytest.approx(mod, abs=1e-8)
            assert r.convexity == pytest.approx(conv, abs=1e-8)


def _ql_curve(curve: Curve, settle: dt.date) -> ql.YieldTermStructureHandle:
    dates = [_qdate(settle + dt.timedelta(days=round(t * 365))) for t in curve.times]
    zc = ql.ZeroCurve(dates, list(curve.rates), DC, ql.NullCalendar(), ql.Linear(), ql.Compounded, ql.Annual)
    return ql.YieldTermStructureHandle(zc)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_z_spread_matches_quantlib(path: Path, tmp_path: Path) -> None:
    # tenors in whole days so that QuantLib's dates and our year fractions agree exactly; the
    # curve spans every cash flow (QuantLib extrapolates differently beyond its ends)
    days = [0, 91, 365, 730, 1826, 3652, 10957]
    rates = ["1.6%", "1.7%", "1.9%", "2.2%", "2.6%", "2.9%", "3.1%"]
    f = tmp_path / "gov.csv"
    f.write_text(
        "tenor,rate\n" + "".join(f"{d}d,{r}\n" for d, r in zip(days, rates, strict=True)), encoding="utf-8"
    )
    spec = load_curve(f)
    deal = ipabs.load_deal(path)
    for t in deal.spec.tranches:
        fl = tranche_flows(deal, t.name)
        if not (fl.cash > 0).any():
            continue
        r = price(deal, t.name, price=98.0, curve=spec)
        curve = Curve.from_spec(spec, r.settlement_date)
        handle = _ql_curve(curve, r.settlement_date)
        leg, _ = _leg(fl, r.settlement_date)
        qs = _qdate(r.settlement_date)
        dirty = r.dirty_price / 100.0 * r.current_balance
        z = ql.CashFlows.zSpread(
            leg, dirty, handle.currentLink(), DC, ql.Compounded, ql.Annual, False, qs, qs, 1e-15, 1000, 0.0
        )
        assert r.z_spread == pytest.approx(z, abs=1e-10)
        # pricing at that spread gives the price back
        back = price(deal, t.name, spread=r.z_spread, curve=spec)
        assert back.price == pytest.approx(98.0, abs=1e-8)
        # I-spread: the yield over the curve's zero rate at the WAL (QuantLib's interpolation)
        zero_at_wal = handle.zeroRate(r.wal_years, ql.Compounded, ql.Annual).rate()
        assert r.i_spread == pytest.approx(r.yield_ - zero_at_wal, abs=1e-12)


def test_par_bullet_at_its_coupon_yield_prices_at_100() -> None:
    # 5% paid annually on exact years: the annual effective yield of par is the coupon
    r = price(BULLET, "senior", yld=0.05)
    assert r.price == pytest.approx(100.0, abs=1e-10)
    assert price(BULLET, "senior", price=100.0).yield_ == pytest.approx(0.05, abs=1e-12)
    # closed-form Macaulay duration of a 3-year annual 5% par bond: (1.05/0.05)(1 - 1.05^-3)
    assert r.macaulay_duration == pytest.approx(21.0 * (1 - 1.05**-3), abs=1e-12)
    assert r.wal_years == pytest.approx(3.0)
    assert (r.first_principal_date, r.last_principal_date) == (dt.date(2028, 1, 1), dt.date(2028, 1, 1))


def test_zero_coupon_duration_is_its_maturity() -> None:
    r = price(BULLET, "zero", price=80.0)
    assert r.macaulay_duration == pytest.approx(3.0, abs=1e-12)
    assert r.yield_ == pytest.approx(1.25 ** (1 / 3) - 1, abs=1e-12)
    assert r.modified_duration == pytest.approx(3.0 / (1 + r.yield_), abs=1e-12)
    assert r.convexity == pytest.approx(12.0 / (1 + r.yield_) ** 2, abs=1e-10)


def test_price_yield_price_round_trip() -> None:
    for quote in (85.0, 99.25, 100.0, 107.5):
        for settle in (None, "2024-03-01", "2025-05-20"):
            y = price(MINIMAL, "senior", price=quote, settle=settle).yield_
            assert price(MINIMAL, "senior", yld=y, settle=settle).price == pytest.approx(quote, abs=1e-9)


def test_z_spread_over_a_flat_curve_is_the_yield_spread() -> None:
    for rate in (0.0, 0.02, 0.045):
        r = price(MINIMAL, "senior", price=97.0, curve=rate)
        assert r.z_spread == pytest.approx(r.yield_ - rate, abs=1e-12)
        assert r.i_spread == pytest.approx(r.yield_ - rate, abs=1e-12)
        s = price(MINIMAL, "senior", spread=0.01, curve=rate)
        assert s.yield_ == pytest.approx(rate + 0.01, abs=1e-12)


def test_accrued_interest_on_the_deal_day_count() -> None:
    # minimal deal: ACT/365, closing 2024-01-15, first payment 2024-04-15; 9.5m at 3.2%
    r = price(MINIMAL, "senior", price=100.0, settle="2024-03-01")
    days = (dt.date(2024, 3, 1) - dt.date(2024, 1, 15)).days
    assert r.accrued_amount == pytest.approx(9.5e6 * 0.032 * days / 365.0, rel=1e-12)
    assert r.dirty_price - r.price == pytest.approx(100 * 0.032 * days / 365.0, rel=1e-10)
    # after the first payment the current balance is what was left then
    later = price(MINIMAL, "senior", price=100.0, settle="2024-05-01")
    fl = tranche_flows(MINIMAL, "senior")
    assert later.current_balance == pytest.approx(9.5e6 - fl.principal[0])
    assert later.factor == pytest.approx(later.current_balance / 9.5e6)


def test_par_coupon_closed_form() -> None:
    # a default-free annual bullet with exact-year periods is at par when coupon = yield
    r = price(BULLET, "senior", spread=0.012, curve=0.03)
    assert r.par_coupon == pytest.approx(0.042, abs=1e-10)
    # the waterfall never pays the zero-coupon note interest: no coupon prices it at par
    z = price(BULLET, "zero", spread=0.0, curve=0.03)
    assert math.isnan(z.par_coupon) and z.price < 100.0


def test_scenario_speeds_and_tables() -> None:
    t = price_table(
        MINIMAL, "senior", prices=[99.0, 100.0], scenarios=["base", "cdr=0%,cpr=0%", "cdr=6%,cpr=15%"]
    )
    assert list(t["scenario"].unique()) == ["base", "cdr=0%,cpr=0%", "cdr=6%,cpr=15%"]
    assert len(t) == 6
    # faster prepayments and defaults shorten the senior note
    wal = t.groupby("scenario", sort=False)["wal_years"].first()
    assert wal["cdr=6%,cpr=15%"] < wal["cdr=0%,cpr=0%"]
    # each cell is the single-price result
    one = price(MINIMAL, "senior", price=99.0, scenario="cdr=6%,cpr=15%")
    row = t[(t.scenario == "cdr=6%,cpr=15%") & (t.price == 99.0)].iloc[0]
    assert row["yield"] == one.yield_ and row["modified_duration"] == one.modified_duration
    text = format_price_table(t)
    assert "cdr=6%,cpr=15%" in text and "WAL (y)" in text
    with pytest.raises(IpabsError, match="not a speed"):
        price_table(MINIMAL, "senior", prices=[99.0], scenarios=["cdr=2%,foo=1"])
    with pytest.raises(IpabsError, match="no scenario"):
        price(MINIMAL, "senior", price=99.0, scenario="bsae")


def test_bad_quotes_are_refused() -> None:
    with pytest.raises(IpabsError, match="positive"):
        price(MINIMAL, "senior", price=0.0)
    with pytest.raises(IpabsError, match="needs a curve"):
        price(MINIMAL, "senior", spread=0.01)
    with pytest.raises(IpabsError, match="exactly one"):
        price(MINIMAL, "senior", price=99.0, yld=0.03)
    with pytest.raises(IpabsError, match="settlement date"):
        price(MINIMAL, "senior", price=99.0, settle="2030-01-01")


def test_unknown_tranche_is_located_at_the_tranches() -> None:
    with pytest.raises(DealError) as exc:
        price(MINIMAL, "senoir", price=99.0)
    (issue,) = exc.value.issues
    assert (issue.line, issue.column) == (35, 3)
    assert "did you mean 'senior'" in str(issue)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("tenor,rate\n1,2%\n2,\n3,3%\n", (3, 3), "rate is missing"),
        ("tenor,rate\n1,2%\n3,2.5%\n2,3%\n", (4, 1), "not sorted"),
        ("tenor,rate\n1,2%\n1y,2.5%\n", (3, 1), "duplicate tenor 1"),
        ("date,rate\n2025-01-01,2%\n2024-06-30,2.5%\n", (3, 1), "not sorted"),
        ("tenor,rate\n1,2%\nabc,3%\n", (3, 1), "not a tenor"),
        ("maturity,rate\n1,2%\n", (1, 1), "not a curve header"),
    ],
)
def test_bad_csv_curves_are_located(tmp_path: Path, text: str, where: tuple[int, int], message: str) -> None:
    f = tmp_path / "curve.csv"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(DealError) as exc:
        load_curve(f)
    issue = exc.value.issues[0]
    assert (issue.line, issue.column) == where, str(issue)
    assert message in str(issue)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("points:\n  - {tenor: 1, rate: 2%}\n  - {tenor: 2}\n", (3, 5), "missing required field 'rate'"),
        ("points:\n  - {tenor: 2, rate: 2%}\n  - {tenor: 1, rate: 3%}\n", (3, 13), "not sorted"),
        ("points:\n  - {tenor: 1, rate: 2%}\n  - {date: 2030-01-01, rate: 3%}\n", (3, 12), "mixed"),
        ("points:\n  - {tenor: 1, date: 2030-01-01, rate: 3%}\n", (2, 5), "exactly one of `tenor` or `date`"),
        ("points: []\n", (1, 9), "points"),
    ],
)
def test_bad_yaml_curves_are_located(tmp_path: Path, text: str, where: tuple[int, int], message: str) -> None:
    f = tmp_path / "curve.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(DealError) as exc:
        load_curve(f)
    issue = exc.value.issues[0]
    assert (issue.line, issue.column) == where, str(issue)
    assert message in str(issue)


def test_curve_interpolation_and_dates(tmp_path: Path) -> None:
    f = tmp_path / "gov.yaml"
    f.write_text("name: gov\npoints:\n  - {date: 2025-01-15, rate: 2%}\n  - {date: 2026-01-15, rate: 6%}\n")
    curve = Curve.from_spec(load_curve(f), dt.date(2024, 1, 15))
    assert curve.times.tolist() == [366 / 365, 731 / 365]
    mid = 0.5 * (curve.times[0] + curve.times[1])
    # linear in the continuously compounded rate, flat beyond the ends
    assert curve.zero(mid) == pytest.approx(math.sqrt(1.02 * 1.06) - 1, abs=1e-14)
    assert curve.zero(0.1) == pytest.approx(0.02) and curve.zero(9.0) == pytest.approx(0.06)


def test_cli_price_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["price", str(MINIMAL), "--tranche", "senior", "--price", "99.5", "--curve", "2%", "--json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    r = price(MINIMAL, "senior", price=99.5, curve=0.02)
    assert doc["yield"] == r.yield_ and doc["z_spread"] == r.z_spread and doc["price"] == 99.5
    assert main(["price", str(MINIMAL), "--tranche", "senior", "--spread", "120bp", "--curve", "2%"]) == 0
    assert "Z-spread" in capsys.readouterr().out
    out = tmp_path / "t.csv"
    args = ["table", str(MINIMAL), "--tranche", "senior", "--prices", "99", "101"]
    assert main([*args, "--scenarios", "base", "cdr=5%,cpr=10%", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["rows"]) == 4 and out.exists()
    assert main(["price", str(MINIMAL), "--tranche", "senoir", "--price", "99"]) == 2
    assert "minimal.yaml:35:3" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("tenor,rate\n1,2%\n2,\n", encoding="utf-8")
    assert main(["price", str(MINIMAL), "--tranche", "senior", "--price", "99", "--curve", str(bad)]) == 2
    assert "bad.csv:3:3" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["price", str(MINIMAL), "--tranche", "senior", "--price", "-1"])
    assert exit_.value.code == 2
    assert main(["price", str(MINIMAL), "--tranche", "senior", "--price", "99", "--scenario", "nope"]) == 2


def test_monte_carlo_price_discounts_each_path_at_the_curve() -> None:
    from ipabs.analytics.pricing import mc_price
    from ipabs.risk.montecarlo_numba_fns import O_PV_RECEIVED, O_YIELD

    deal = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
    model = ipabs.compile_deal(ipabs.load_deal(deal))
    keep = [0, 7]
    sim = ipabs.simulate(model, paths=400, seed=3, keep=keep)
    k = 0
    orig = float(model.cd.tr_balance[k])
    # at the coupon's annual effective rate, each path's price is the kernel's PV at the coupon
    coupon = float(model.cd.tr_rate[k, 0])
    y = (1 + coupon / 4) ** 4 - 1  # quarterly notes
    at_coupon = mc_price(model, "senior", y, paths=400, seed=3)
    assert np.allclose(
        at_coupon.per_path_price / 100 * orig, sim.tranche_outcomes[:, k, O_PV_RECEIVED], rtol=1e-12
    )
    assert np.array_equal(at_coupon.per_path_yield, sim.tranche_outcomes[:, k, O_YIELD], equal_nan=True)
    # on a curve plus spread: each kept path's full cash flows discounted by hand
    spec_points = (0.015, 0.02, 0.03)
    curve = Curve("test", np.array([0.0, 1.0, 3.0]), np.array(spec_points))
    r = mc_price(model, "senior", curve, spread=0.004, paths=400, seed=3)
    for i in keep:
        flows = sim.kept[i].tranche_flows
        f = flows[flows.tranche == "senior"]
        cash = (f.interest_paid + f.principal_paid + f.residual_paid).to_numpy()
        t = np.array(
            [(d.date() - tranche_flows(model, "senior").closing).days / 365.0 for d in f.payment_date]
        )
        z = np.expm1(np.interp(t, curve.times, np.log1p(curve.rates)))
        assert r.per_path_price[i] == pytest.approx(
            100 * np.sum(cash * (1 + z + 0.004) ** -t) / orig, rel=1e-12
        )
    # the estimate and its standard error are the sample mean and its error (plain sampling)
    assert r.expected_price == pytest.approx(r.per_path_price.mean(), rel=1e-14)
    assert r.expected_price_se == pytest.approx(r.per_path_price.std(ddof=1) / math.sqrt(400), rel=1e-12)
    q = r.yield_quantiles
    assert q[0.01][0] <= q[0.5][0] <= q[0.99][0]
    assert r.to_dict()["expected_price"] == r.expected_price


def test_cli_price_with_monte_carlo(capsys: pytest.CaptureFixture[str]) -> None:
    deal = str(ROOT / "scenarios" / "caohejing_ip_pledge.yaml")
    args = ["price", deal, "--tranche", "senior", "--price", "99.8", "--curve", "2%"]
    assert main([*args, "--paths", "300", "--seed", "5", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    from ipabs.analytics.pricing import mc_price

    mc = mc_price(deal, "senior", 0.02, spread=doc["z_spread"], paths=300, seed=5)
    assert doc["monte_carlo"]["expected_price"] == mc.expected_price
    assert main([*args, "--paths", "300"]) == 0
    assert "expected price at flat 0.02" in capsys.readouterr().out
    assert main(["price", deal, "--tranche", "senior", "--price", "99", "--paths", "10"]) == 2
    assert "give --curve" in capsys.readouterr().err


@pytest.mark.parametrize("settle", [None, "2025-05-10"])
def test_par_coupon_reprices_the_deal_at_par(settle: str | None) -> None:
    # the senior notes of this deal are turbo-paid, so the price is not monotone in the coupon
    # up to 100%; the par coupon written into the deal file prices the notes at 100
    path = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
    r = price(
        path, "senior", spread=0.008, curve=ROOT / "scenarios/curves/illustrative_cgb.yaml", settle=settle
    )
    assert 0.0 < r.par_coupon < 0.1
    text = path.read_text(encoding="utf-8").replace("coupon: 2.30%", f"coupon: {r.par_coupon!r}", 1)
    deal = ipabs.parse_deal(text, "par.yaml", base_dir=path.parent)
    again = price(
        deal, "senior", spread=0.008, curve=ROOT / "scenarios/curves/illustrative_cgb.yaml", settle=settle
    )
    assert again.price == pytest.approx(100.0, abs=1e-8)


def test_pricing_docs_examples_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import re
    import shlex

    monkeypatch.chdir(ROOT)
    text = (ROOT / "docs" / "pricing.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block is not None
    for line in block.group(1).replace("\\\n", " ").splitlines():
        args = shlex.split(line)[1:]
        if "--paths" in args:  # the Monte Carlo is checked above with fewer paths
            continue
        assert main(args) == 0, line
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    exec(compile(code.group(1), "docs/pricing.md", "exec"), {})
    assert "cdr=4%,cpr=10%" in capsys.readouterr().out
